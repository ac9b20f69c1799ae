#!/bin/bash
# Harbor verifier: the checks below; the reward (1 when all pass, else 0) goes to
# /logs/verifier/reward.txt.
mkdir -p /logs/verifier
checks() {
  [ -L /app/current ] || { echo "FAILED /app/current is not a symbolic link"; exit 1; }
  [ "$(readlink /app/current)" = "releases/v2" ] || { echo "FAILED target $(readlink /app/current)"; exit 1; }
  [ "$(cat /app/current/VERSION)" = "2.0.0" ] || { echo "FAILED VERSION through the link"; exit 1; }
  echo "PASSED"
}
if (checks); then
  echo 1 > /logs/verifier/reward.txt
else
  echo 0 > /logs/verifier/reward.txt
fi
