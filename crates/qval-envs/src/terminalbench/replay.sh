# qval, restore = "replay": the state's earlier commands (/.qval/replay/*) run again in this
# one container, each as a step runs it (wrapper.sh, its folder and variables carried to the
# next, its own time limit, its output discarded), so the processes they started (a server,
# a daemon) still run; then the step's command (/.qval/step, through $QVAL_LAST: wrapper.sh
# or the tmux script) or the verifier (QVAL_LAST=verify: the lines of QVAL_VERIFY_ARGV with
# the variables of QVAL_VERIFY_ENV, /tests put back as qval gave it), its output the screen.
# Everything the commands could change (the files under /.qval, /tests) is read into memory
# before the first of them runs. QVAL_LIMIT: seconds per replayed command; QVAL_LAST_LIMIT:
# seconds for the last (the step's command or the verifier); QVAL_VOLATILE: variables a state
# does not keep. Replays read no terminal, with the tmux shell too.
limit=$QVAL_LIMIT last_limit=$QVAL_LAST_LIMIT last=$QVAL_LAST volatile=" $QVAL_VOLATILE " cwd=$QVAL_CWD
mapfile -t verify_argv <<< "$QVAL_VERIFY_ARGV"
mapfile -t verify_env <<< "$QVAL_VERIFY_ENV"
unset QVAL_LIMIT QVAL_LAST_LIMIT QVAL_LAST QVAL_VOLATILE QVAL_CWD QVAL_VERIFY_ARGV QVAL_VERIFY_ENV
history=()
for f in /.qval/replay/*; do
  [ -e "$f" ] || break
  history+=("$(cat -- "$f")")
done
step=$(cat /.qval/step 2>/dev/null)
wrapper=$(cat /.qval/wrapper.sh)
entry=""
if [ "$last" != verify ]; then entry=$(cat -- "$last"); fi
tests=""
if [ "$last" = verify ] && [ -d /tests ]; then
  tests=$(set -o pipefail; tar -C /tests -cf - . | base64 -w0) || { echo "qval: cannot pack /tests" >&2; exit 125; }
  rm -rf /tests
fi
put() { rm -rf -- "$1" && printf '%s\n' "$2" > "$1"; }
vars=()
keep() {
  local kv
  vars=()
  while IFS= read -r -d '' kv; do
    [[ $volatile == *" ${kv%%=*} "* ]] || vars+=("$kv")
  done
}
keep < <(/usr/bin/env -0)
for command in "${history[@]}"; do
  mkdir -p /.qval && put /.qval/command "$command" && put /.qval/wrapper.sh "$wrapper"
  rm -rf /.qval/cwd /.qval/env
  timeout -k 1 "$limit" /usr/bin/env -i "${vars[@]}" QVAL_CWD="$cwd" /bin/bash /.qval/wrapper.sh \
    </dev/null >/dev/null 2>&1
  if [ -s /.qval/cwd ]; then cwd=$(head -c 4096 /.qval/cwd); fi
  if [ -f /.qval/env ]; then keep < <(head -c 1048576 /.qval/env); fi
done
mkdir -p /.qval
rm -rf /.qval/cwd /.qval/env /.qval/command /.qval/timed-out
exec 2>&1
if [ "$last" = verify ]; then
  rm -rf /tests /logs/verifier && mkdir -p /tests /logs/verifier
  if [ -n "$tests" ]; then base64 -d <<< "$tests" | tar -C /tests -xf -; fi
  exec timeout -k 1 "$last_limit" /usr/bin/env -i "${verify_env[@]}" "${verify_argv[@]}"
fi
put /.qval/command "$step" && put /.qval/wrapper.sh "$wrapper" && put "$last" "$entry"
SECONDS=0
timeout -k 1 "$last_limit" /usr/bin/env -i "${vars[@]}" QVAL_CWD="$cwd" /bin/bash "$last"
status=$?
if [ "$status" = 124 ] && [ "$SECONDS" -ge "$((${last_limit%.*} - 1))" ]; then : > /.qval/timed-out; fi
exit "$status"
