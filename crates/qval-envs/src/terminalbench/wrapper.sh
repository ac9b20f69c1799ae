# qval: runs one command in a fresh shell restored to the state's folder and variables,
# then records where the shell ended and what it exported (also after `exit`).
__qval_save() {
    __qval_status=$?
    builtin pwd > /.qval/cwd 2>/dev/null
    /usr/bin/env -0 > /.qval/env 2>/dev/null
    exit "$__qval_status"
}
trap __qval_save EXIT
builtin cd -- "$QVAL_CWD" 2>/dev/null || builtin cd /app
unset QVAL_CWD
builtin source /.qval/command
