#!/usr/bin/env bash
# The runner's speed against a model with a known latency: `qval run` on an experiment (default
# the QVal-v1 FrozenLake text experiment) against `qval serve-oracle` with 50 ms per reply,
# wall time against the ideal (LLM requests / backend concurrency x latency), then the same
# run again from the run's LLM cache (`--redo predict`: every method rebuilt and rerun, no
# request sent).
#
#   scripts/bench_run.sh [EXPERIMENT] [LATENCY_MS]
set -euo pipefail
cd "$(dirname "$0")/.."
exp=${1:-experiments/qval-v1/frozenlake-text.toml}
latency=${2:-50}
flock /tmp/qval-cargo.lock cargo build --release -q -p qval-cli 2>/dev/null || cargo build --release -q -p qval-cli
qval=target/release/qval
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
$qval serve-oracle --latency-ms "$latency" > "$work/server.txt" &
server=$!
for _ in $(seq 100); do grep -q http "$work/server.txt" 2>/dev/null && break; sleep 0.1; done
url=$(head -1 "$work/server.txt")

secs() { python3 -c 'import sys,time; print(time.time())'; }
t0=$(secs)
$qval run "$exp" --out "$work/run" --base-url "$url" --model oracle -q
t1=$(secs)
cp "$work/run/run.json" "$work/first.json"
$qval run "$exp" --out "$work/run" --base-url "$url" --model oracle -q --redo predict
t2=$(secs)
python3 - "$work/first.json" "$work/run/run.json" "$t0" "$t1" "$t2" "$latency" <<'PY'
import json, sys
run, rerun = sys.argv[1], sys.argv[2]
t0, t1, t2 = map(float, sys.argv[3:6])
latency = float(sys.argv[6]) / 1000
m = json.load(open(run))
stages = m["stages"]
concurrency = 32
print(f"{'stage':34} {'seconds':>8} {'requests':>9} {'ideal s':>8}")
total_req, total_llm_s = 0, 0.0
for name, s in stages.items():
    req = s.get("requests", 0)
    ideal = req / concurrency * latency
    total_req += req
    if req:
        total_llm_s += s["seconds"]
    print(f"{name:34} {s['seconds']:8.2f} {req:9d} {ideal:8.2f}")
ideal = total_req / concurrency * latency
print(f"\nfirst run: {t1 - t0:.1f} s wall for {total_req} requests; ideal {ideal:.1f} s "
      f"(requests / {concurrency} x {latency * 1000:.0f} ms); LLM stages {total_llm_s:.1f} s = {total_llm_s / max(ideal, 1e-9):.2f} x ideal")
print(f"rerun from the cache (--redo predict): {t2 - t1:.1f} s wall, "
      f"{sum(s.get('requests', 0) for s in json.load(open(rerun))['stages'].values())} requests sent")
PY
