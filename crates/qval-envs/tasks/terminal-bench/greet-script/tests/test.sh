#!/bin/bash
# Harbor verifier: the checks below; the reward (1 when all pass, else 0) goes to
# /logs/verifier/reward.txt.
mkdir -p /logs/verifier
checks() {
  set -u
  fail=0
  check() { if [ "$1" = "$2" ]; then echo "PASSED $3"; else echo "FAILED $3: got '$1', want '$2'"; fail=1; fi; }
  [ -x /app/greet.sh ] && echo "PASSED executable" || { echo "FAILED /app/greet.sh is not executable"; exit 1; }
  check "$(NAME=Ada /app/greet.sh)" "Hello, Ada!" named
  check "$(env -u NAME /app/greet.sh)" "Hello, stranger!" unset
  check "$(NAME= /app/greet.sh)" "Hello, stranger!" empty
  exit $fail
}
if (checks); then
  echo 1 > /logs/verifier/reward.txt
else
  echo 0 > /logs/verifier/reward.txt
fi
