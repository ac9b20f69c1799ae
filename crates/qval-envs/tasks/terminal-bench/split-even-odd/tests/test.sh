#!/bin/bash
# Harbor verifier: the checks below; the reward (1 when all pass, else 0) goes to
# /logs/verifier/reward.txt.
mkdir -p /logs/verifier
checks() {
  want_even="28 30 32 40 4 16 36 8 20 6 12 26 10 38 18 24 14 2 34 22"
  want_odd="13 35 19 37 39 15 29 33 27 9 3 21 25 1 23 5 11 31 17 7"
  got_even="$(tr '\n' ' ' < /app/even.txt | sed 's/ $//')" || exit 1
  got_odd="$(tr '\n' ' ' < /app/odd.txt | sed 's/ $//')" || exit 1
  [ "$got_even" = "$want_even" ] || { echo "FAILED even.txt: $got_even"; exit 1; }
  [ "$got_odd" = "$want_odd" ] || { echo "FAILED odd.txt: $got_odd"; exit 1; }
  echo "PASSED even and odd"
}
if (checks); then
  echo 1 > /logs/verifier/reward.txt
else
  echo 0 > /logs/verifier/reward.txt
fi
