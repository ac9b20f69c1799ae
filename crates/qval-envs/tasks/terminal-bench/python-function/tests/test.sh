#!/bin/bash
# Harbor verifier: every test_* function of /tests/test_outputs.py must pass; the reward
# (1 or 0) goes to /logs/verifier/reward.txt.
mkdir -p /logs/verifier
cd /app
if python3 -B /tests/test_outputs.py; then
  echo 1 > /logs/verifier/reward.txt
else
  echo 0 > /logs/verifier/reward.txt
fi
