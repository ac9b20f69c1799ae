#!/bin/bash
# Harbor verifier: the reward goes to /logs/verifier/reward.txt.
mkdir -p /logs/verifier
if [ "$(cat /app/sorted.txt 2>/dev/null)" = "$(printf 'alice\nbob\ncarol\ndave')" ]; then
  echo 1 > /logs/verifier/reward.txt
else
  echo "sorted.txt is missing or not sorted"
  echo 0 > /logs/verifier/reward.txt
fi
