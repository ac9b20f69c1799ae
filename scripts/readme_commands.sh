#!/usr/bin/env bash
# Runs every shell command the README shows, as shown, and fails on the first that fails.
#
#   scripts/readme_commands.sh [--already-run COMMAND]... [--timeout SECS] [--list]
#
# Commands are the lines of the README's ```sh blocks (a line ending in `\` continues on the
# next; comments and blank lines are skipped), run in order with bash from the repository
# root, as a user who has just cloned it would: they write only under runs/ (ignored by git),
# and running them again finds their runs finished. `cargo install` installs into a temporary
# folder (CARGO_INSTALL_ROOT) whose bin folder comes first on PATH, so no `qval` outside the
# repository is replaced. (Not from a copy of the tree: a copy sharing the target folder would
# leave it with builds that point into the copy, e.g. TerminalBench's tasks folder.)
#
# - A block right after the line `<!-- readme-commands: not run: REASON -->` is not run (it
#   needs your own model server or an API key): its commands are listed with the reason.
# - A command ending in `&` (`qval serve-oracle ... &`) runs in the background; the URL it
#   prints first gives the port that replaces `PORT` in the commands after it. Background
#   commands are stopped when the script ends, however it ends.
# - `--already-run COMMAND`: a command (its text without the trailing comment) the caller has
#   just run itself (.ci/run runs scripts/test.sh before); listed, not run again.
# - `--timeout SECS` (default 2400): the time all commands together may take; one that is
#   still running then is stopped and counts as failed.
# - `--list`: print the commands and what would be done with each, run nothing.
# Afterwards no new file may appear that git would track (the commands write under runs/).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
readme=$repo/README.md
budget=2400
list=false
already=()
while [ $# -gt 0 ]; do
  case "$1" in
    --already-run) already+=("$2"); shift 2 ;;
    --timeout) budget=$2; shift 2 ;;
    --list) list=true; shift ;;
    *) echo "readme_commands.sh: unknown argument \`$1\`" >&2; exit 2 ;;
  esac
done

# The README's commands, one per entry: "run<TAB>COMMAND" or "skip<TAB>REASON<TAB>COMMAND".
commands=()
in_block=false block_lang="" marker="" pending="" prev=""
while IFS= read -r line || [ -n "$line" ]; do
  if ! $in_block; then
    if [[ $line =~ ^\`\`\`([a-z]*) ]]; then
      in_block=true block_lang=${BASH_REMATCH[1]} marker=""
      if [[ $prev =~ ^\<!--\ readme-commands:\ not\ run:\ (.*)\ --\>$ ]]; then marker=${BASH_REMATCH[1]}; fi
    fi
    prev=$line
    continue
  fi
  if [[ $line =~ ^\`\`\` ]]; then
    in_block=false prev=$line
    continue
  fi
  [ "$block_lang" = sh ] || continue
  if [[ $line =~ ^(.*)\\$ ]]; then
    pending+="${BASH_REMATCH[1]}"
    continue
  fi
  line="$pending$line" pending=""
  [[ $line =~ ^[[:space:]]*(#.*)?$ ]] && continue
  if [ -n "$marker" ]; then commands+=("skip"$'\t'"$marker"$'\t'"$line"); else commands+=("run"$'\t'"$line"); fi
done < "$readme"
if $in_block; then echo "readme_commands.sh: $readme: a code block is not closed" >&2; exit 2; fi
[ ${#commands[@]} -gt 0 ] || { echo "readme_commands.sh: no commands found in $readme" >&2; exit 2; }

# A command without its trailing comment (`  # ...`) and surrounding spaces.
bare() { sed -E 's/[[:space:]]+#[[:space:]].*$//; s/^[[:space:]]+//; s/[[:space:]]+$//' <<<"$1"; }

work=$(mktemp -d "${TMPDIR:-/tmp}/qval-readme.XXXXXX")
background=()
cleanup() {
  local pid
  for pid in "${background[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Files git does not ignore that nobody asked git to track: the commands must add none.
untracked() { git -C "$repo" ls-files -o --exclude-standard | sort; }
if ! $list; then
  untracked >"$work/untracked-before"
  mkdir -p "$work/install"
  export CARGO_INSTALL_ROOT=$work/install
  export PATH="$work/install/bin:$PATH"
fi

start=$SECONDS
port=""
ran=0 skipped=0
for entry in "${commands[@]}"; do
  kind=${entry%%$'\t'*}
  rest=${entry#*$'\t'}
  if [ "$kind" = skip ]; then
    echo "-- not run ($(cut -f1 <<<"$rest")): $(cut -f2- <<<"$rest")"
    skipped=$((skipped + 1))
    continue
  fi
  cmd=$rest
  plain=$(bare "$cmd")
  for a in "${already[@]}"; do
    if [ "$plain" = "$a" ]; then
      echo "-- run by the caller before: $cmd"
      skipped=$((skipped + 1))
      continue 2
    fi
  done
  if [[ $plain == *PORT* ]]; then
    if [ -z "$port" ] && ! $list; then
      echo "README command uses PORT, but no command before it started a server: $cmd" >&2
      exit 1
    fi
    cmd=${cmd//:PORT\//:${port:-PORT}/}
  fi
  if $list; then
    echo "-- would run: $cmd"
    continue
  fi
  left=$((budget - (SECONDS - start)))
  if [ "$left" -le 0 ]; then
    echo "README commands: out of time (--timeout $budget) before: $cmd" >&2
    exit 1
  fi
  ran=$((ran + 1))
  if [[ $plain == *"&" ]]; then
    echo "== (background) $cmd"
    log=$work/background-$ran.log
    (cd "$repo" && exec bash -c "exec ${plain%&}") >"$log" 2>&1 &
    background+=($!)
    url=""
    for _ in $(seq 300); do
      url=$(grep -m1 -oE 'http://127\.0\.0\.1:[0-9]+' "$log" 2>/dev/null || true)
      [ -n "$url" ] && break
      kill -0 "${background[-1]}" 2>/dev/null || break
      sleep 0.1
    done
    if [ -z "$url" ]; then
      cat "$log" >&2
      echo "README command failed: it printed no http://127.0.0.1:PORT URL: $cmd" >&2
      exit 1
    fi
    port=${url##*:}
    echo "   serving on port $port"
    continue
  fi
  echo "== $cmd"
  t0=$SECONDS
  status=0
  (cd "$repo" && timeout -k 10 "$left" bash -o pipefail -c "$cmd") || status=$?
  if [ "$status" -ne 0 ]; then
    if [ "$status" -eq 124 ]; then
      echo "README command timed out (the commands' budget of $budget s ran out): $cmd" >&2
    else
      echo "README command failed (exit status $status): $cmd" >&2
    fi
    exit 1
  fi
  echo "   ($((SECONDS - t0)) s)"
done
if ! $list; then
  untracked | comm -13 "$work/untracked-before" - >"$work/untracked-new"
  if [ -s "$work/untracked-new" ]; then
    echo "README commands left files outside runs/ (or someone created them meanwhile):" >&2
    cat "$work/untracked-new" >&2
    exit 1
  fi
  echo "README commands: $ran run in $((SECONDS - start)) s, $skipped not run (listed above)"
fi
