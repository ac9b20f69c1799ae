#!/bin/bash
# Harbor verifier: half the reward for each listing.
mkdir -p /logs/verifier
score=0
expected_after=$(tree /app/project)
[ -f /app/project/docs/README.md ] && [ "$(cat /app/tree-after.txt 2>/dev/null)" = "$expected_after" ] && score=$((score + 1))
rm -f /app/project/docs/README.md
[ "$(cat /app/tree.txt 2>/dev/null)" = "$(tree /app/project)" ] && score=$((score + 1))
python3 -c "print($score / 2)" > /logs/verifier/reward.txt
