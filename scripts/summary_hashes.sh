#!/usr/bin/env bash
# Runs the shipped offline experiments into a temp folder and prints the sha256 of each
# summary.json (and, with --trajectories, of each trajectories.jsonl: two runs of the same
# commit must print the same), so that a change meant to keep behaviour can be checked byte
# for byte:
#
#   scripts/summary_hashes.sh > before.txt   # on the old commit
#   scripts/summary_hashes.sh > after.txt    # on the new one
#   diff before.txt after.txt
#
# Needs gymnasium and textworld (scripts/test.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
trajectories=false
[[ ${1:-} == --trajectories ]] && trajectories=true
cargo build --release -q -p qval-cli
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
run() {
  local name=$1
  shift
  target/release/qval run "$@" --out "$out/$name" --quiet >/dev/null 2>"$out/$name.err" \
    || { cat "$out/$name.err" >&2; echo "$name: failed" >&2; exit 1; }
  echo "$(sha256sum <"$out/$name/summary.json" | cut -d' ' -f1)  $name"
  if $trajectories; then
    echo "$(sha256sum <"$out/$name/trajectories.jsonl" | cut -d' ' -f1)  $name trajectories"
  fi
}
run quickstart experiments/quickstart.toml
for env in frozenlake taxi cliffwalking textworld; do
  run "python-$env" "experiments/python-$env.toml"
done
run terminalbench experiments/qval-v1/terminalbench.toml --only random heuristic
