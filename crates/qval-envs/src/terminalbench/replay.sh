# qval, restore = "replay": the state's earlier commands (/.qval/replay/*) run again in this
# one container, each as a step runs it (wrapper.sh, its folder and variables carried to the
# next, its own time limit, its output discarded), so the processes they started (a server,
# a daemon) still run; then the step's command (/.qval/step, through $QVAL_LAST: wrapper.sh
# or the tmux script) or the verifier (QVAL_LAST=verify: /.qval/verify.argv with the
# variables of /.qval/verify.env), its output the screen. QVAL_LIMIT: seconds per command;
# QVAL_VOLATILE: variables a state does not keep.
limit=$QVAL_LIMIT last=$QVAL_LAST volatile=" $QVAL_VOLATILE " cwd=$QVAL_CWD
unset QVAL_LIMIT QVAL_LAST QVAL_VOLATILE QVAL_CWD
vars=()
keep() {
  local kv
  vars=()
  while IFS= read -r -d '' kv; do
    [[ $volatile == *" ${kv%%=*} "* ]] || vars+=("$kv")
  done
}
keep < <(/usr/bin/env -0)
for f in /.qval/replay/*; do
  [ -e "$f" ] || break
  cp -- "$f" /.qval/command
  rm -f /.qval/cwd /.qval/env
  timeout -k 1 "$limit" /usr/bin/env -i "${vars[@]}" QVAL_CWD="$cwd" /bin/bash /.qval/wrapper.sh \
    </dev/null >/dev/null 2>&1
  if [ -s /.qval/cwd ]; then cwd=$(cat /.qval/cwd); fi
  if [ -f /.qval/env ]; then keep < /.qval/env; fi
done
rm -f /.qval/cwd /.qval/env /.qval/command
exec 2>&1
if [ "$last" = verify ]; then
  mapfile -d '' argv < /.qval/verify.argv
  keep < /.qval/verify.env
  exec /usr/bin/env -i "${vars[@]}" "${argv[@]}"
fi
cp -- /.qval/step /.qval/command
SECONDS=0
timeout -k 1 "$limit" /usr/bin/env -i "${vars[@]}" QVAL_CWD="$cwd" /bin/bash "$last"
status=$?
if [ "$status" = 124 ] && [ "$SECONDS" -ge "$((${limit%.*} - 1))" ]; then : > /.qval/timed-out; fi
exit "$status"
