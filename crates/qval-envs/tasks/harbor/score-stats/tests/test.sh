#!/bin/bash
# Harbor verifier: reward.json, half a point per correct number.
mkdir -p /logs/verifier
exec python3 - <<'PY'
import json
def read(p):
    try:
        return float(open(p).read().strip())
    except Exception:
        return None
score = 0.0
score += 0.5 if read("/app/sum.txt") == 75 else 0.0
score += 0.5 if read("/app/median.txt") == 12 else 0.0
json.dump({"reward": score}, open("/logs/verifier/reward.json", "w"))
print("reward", score)
PY
