#!/usr/bin/env bash
# Regenerates the TextWorld games shipped in crates/qval-envs/data/textworld/ with TextWorld's
# own generator (`tw-make`, offline: the textworld wheel ships the Inform 7 compiler), fixed
# seeds, and TextWorld 1.6.2.
#
#   scripts/gen_textworld_games.sh           # regenerate the committed games
#   scripts/gen_textworld_games.sh --check   # regenerate in a temp folder and compare
#
# tw-make tw-cooking fails under numpy >= 2.4 (`int()` of a 1-element array), so the
# generator runs in its own virtual environment (textworld 1.6.2, numpy 2.3.5) at
# $QVAL_TW_VENV (default /tmp/qval-textworld-gen; its path is recorded in the games' .json, so
# keep it fixed for byte-identical output). PYTHONHASHSEED=0 fixes the order of a set TextWorld
# writes into the .json. Each game is a .z8 story file (played by jericho) and its .json
# (TextWorld's game data: quests, walkthrough, logic; the adapter needs both).
set -euo pipefail
cd "$(dirname "$0")/.."
out=crates/qval-envs/data/textworld
venv=${QVAL_TW_VENV:-/tmp/qval-textworld-gen}
if ! "$venv/bin/python" -c "import textworld" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet textworld==1.6.2 numpy==2.3.5
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
make() {  # NAME tw-make-ARGS...
  local name=$1
  shift
  (cd "$tmp" && PYTHONHASHSEED=0 "$venv/bin/tw-make" "$@" --output "$name.z8" -f --silent)
  rm -f "$tmp/$name.ni"
}
# Custom quests of lengths 1, 3 and 5.
make tw-custom-q1 custom --world-size 2 --nb-objects 4 --quest-length 1 --seed 1
make tw-custom-q3 custom --world-size 3 --nb-objects 6 --quest-length 3 --seed 2
make tw-custom-q5 custom --world-size 4 --nb-objects 8 --quest-length 5 --seed 3
# The cooking recipes (First TextWorld Problems): 1 ingredient in the kitchen; 2 ingredients
# in 6 rooms, with doors to open, cooking and cutting.
make tw-cooking-r1 tw-cooking --recipe 1 --take 1 --go 1 --cut --seed 4
make tw-cooking-r2 tw-cooking --recipe 2 --take 2 --go 6 --open --cook --cut --seed 5
if [ "${1:-}" = "--check" ]; then
  diff -r "$tmp" "$out" && echo "the committed games are what tw-make generates"
else
  rm -f "$out"/*.z8 "$out"/*.json
  cp "$tmp"/*.z8 "$tmp"/*.json "$out"/
  ls -l "$out"
fi
