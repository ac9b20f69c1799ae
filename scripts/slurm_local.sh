#!/usr/bin/env bash
# Start/stop a throw-away single-node SLURM cluster (Debian packages) for tests.
#
#   scripts/slurm_local.sh up   DIR   # prints "export SLURM_CONF=DIR/slurm.conf" on stdout
#   scripts/slurm_local.sh down DIR
#   scripts/slurm_local.sh status DIR
#
# Typical use:   eval "$(scripts/slurm_local.sh up /tmp/slurmtest)"; ...; scripts/slurm_local.sh down /tmp/slurmtest
#
# Everything the cluster writes lives under DIR: slurm.conf, state/, spool/, log/, run/ (pid
# files), munge/ (a private munged: its own key, socket, pid, log and seed). The system munged
# and /etc/slurm are never used or touched. Every daemon is started with the environment marker
# SLURM_LOCAL_DIR=DIR, which `down` uses (besides the pid files) to find what to stop, including
# slurmstepd processes left by jobs. All progress messages go to stderr; stdout has only the export line.
#
# Environment knobs:
#   SLURM_LOCAL_CTLD_PORT  slurmctld port (default: first free pair from 16817 upwards)
#   SLURM_LOCAL_SLURMD_PORT slurmd port   (default: SLURM_LOCAL_CTLD_PORT+1)
#   SLURM_LOCAL_TIMEOUT    seconds to wait for the node to become idle (default 60)
#   SLURM_LOCAL_MEM_MARGIN_MB  memory kept back from RealMemory (default max(1024, 10% of RAM))
#   SLURM_LOCAL_DEF_MEM_PER_CPU  DefMemPerCPU in MB for jobs without --mem (default 256)
#   SLURM_LOCAL_NO_INSTALL=1  never call apt-get (fail if a package is missing)
set -euo pipefail

PROG=$(basename "$0")
log() { echo "[$PROG] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() {
    echo "usage: $PROG up|down|status DIR, or $PROG install (the Debian packages only)" >&2
    exit 2
}

[ $# -eq 2 ] || [ "${1:-}" = install ] || usage
CMD=${1:-}
DIR_ARG=${2:-}
# `install` needs no cluster folder.
if [ "$CMD" = install ]; then DIR_ARG=${DIR_ARG:-/tmp}; fi

# Daemons must run as root (SlurmUser=root, slurmd launches jobs); re-exec through sudo otherwise.
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "must run as root (sudo not available)"
    exec sudo -E -- "$0" "$@"
fi

mkdir -p -- "$DIR_ARG"
DIR=$(cd -- "$DIR_ARG" && pwd -P)
case "$DIR" in
    *[[:space:]]* | *'#'* | *'='*) die "DIR must not contain spaces, '#' or '=' (slurm.conf cannot quote paths): $DIR" ;;
    /) die "refusing DIR=/" ;;
esac

CONF=$DIR/slurm.conf
MUNGE_DIR=$DIR/munge
MUNGE_SOCK=$MUNGE_DIR/munge.socket
MUNGE_KEY=$MUNGE_DIR/key/munge.key
MARKER="SLURM_LOCAL_DIR=$DIR"
HOST=$(hostname -s)

# ---------------------------------------------------------------------------------------------
# Process discovery. Ours are: processes whose initial environment carries the marker (munged,
# slurmctld, slurmscriptd, slurmd); slurmstepd processes (slurmd gives them a clean environment)
# whose cwd or open files are inside DIR; job processes (SLURM_JOB_ID set and SLURM_CONF=DIR/slurm.conf).
# The script itself and its ancestors are never listed.
cluster_pids() {
    local p pid env comm skip=" $$ " a=$$
    while [ "$a" -gt 1 ] 2>/dev/null; do
        a=$(awk '/^PPid:/ {print $2}' "/proc/$a/status" 2>/dev/null || echo 0)
        skip+="$a "
    done
    for p in /proc/[0-9]*; do
        pid=${p#/proc/}
        case "$skip" in *" $pid "*) continue ;; esac
        env=$({ tr '\0' '\n' <"$p/environ"; } 2>/dev/null) || continue
        if grep -qxF -- "$MARKER" <<<"$env"; then echo "$pid"; continue; fi
        if grep -qxF -- "SLURM_CONF=$CONF" <<<"$env" && grep -q '^SLURM_JOB_ID=' <<<"$env"; then echo "$pid"; continue; fi
        comm=$(cat "$p/comm" 2>/dev/null) || continue
        if [ "$comm" = slurmstepd ]; then
            case "$(readlink "$p/cwd" 2>/dev/null)" in "$DIR"/*) echo "$pid"; continue ;; esac
            if find "$p/fd" -maxdepth 1 -type l -lname "$DIR/*" 2>/dev/null | grep -q .; then echo "$pid"; fi
        fi
    done
}

# cluster pids whose comm is one of the given names
cluster_pids_named() {
    local pid comm
    for pid in $(cluster_pids); do
        comm=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
        for n in "$@"; do [ "$comm" = "$n" ] && echo "$pid"; done
    done
    return 0
}

# pid from a pid file, only if that process is alive and carries our marker
pidfile_pid() {
    local f=$1 pid
    [ -s "$f" ] || return 0
    pid=$(tr -dc '0-9' <"$f")
    [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 0
    if { tr '\0' '\n' <"/proc/$pid/environ"; } 2>/dev/null | grep -qxF -- "$MARKER"; then echo "$pid"; fi
}

alive_any() {
    local pid
    for pid in "$@"; do [ -d "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null && return 0; done
    return 1
}

# stop the given pids: SIGTERM, wait up to $2 seconds, then SIGKILL
stop_pids() {
    local what=$1 timeout=$2
    shift 2
    [ $# -gt 0 ] || return 0
    log "stopping $what (pid $*)"
    kill -TERM "$@" 2>/dev/null || true
    local i
    for ((i = 0; i < timeout * 10; i++)); do
        alive_any "$@" || return 0
        sleep 0.1
    done
    log "$what did not exit after ${timeout}s, sending SIGKILL"
    kill -KILL "$@" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        alive_any "$@" || return 0
        sleep 0.1
    done
    log "WARNING: $what still alive: $*"
}

tail_logs() {
    local f
    for f in "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" "$MUNGE_DIR/munged.log"; do
        [ -f "$f" ] || continue
        echo "----- tail -n 25 $f -----" >&2
        tail -n 25 "$f" >&2 || true
    done
}

# ---------------------------------------------------------------------------------------------
do_down() {
    local quiet=${1:-}
    local ctld

    # 1. cancel jobs so that slurmstepd/job processes go away cleanly
    ctld=$(pidfile_pid "$DIR/run/slurmctld.pid")
    if [ -n "$ctld" ] && [ -f "$CONF" ]; then
        local jobs
        jobs=$(SLURM_CONF=$CONF timeout 10 squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ' || true)
        if [ -n "${jobs// /}" ]; then
            log "cancelling jobs: $jobs"
            SLURM_CONF=$CONF timeout 10 scancel $jobs 2>/dev/null || true
            local i
            for ((i = 0; i < 100; i++)); do
                [ -z "$(SLURM_CONF=$CONF timeout 5 squeue -h -o %A 2>/dev/null || true)" ] && break
                sleep 0.1
            done
        fi
    fi

    # 2. slurmd + slurmstepd, then slurmctld, then munged (last: the others need it to talk)
    stop_pids "slurmd/slurmstepd" 10 $(cluster_pids_named slurmd slurmstepd)
    stop_pids "slurmctld" 15 $(cluster_pids_named slurmctld slurmscriptd)
    stop_pids "munged" 10 $(cluster_pids_named munged)
    # 3. anything else of ours still alive (e.g. orphaned job processes)
    stop_pids "leftover processes" 5 $(cluster_pids)

    rm -f "$DIR/run/"*.pid "$MUNGE_DIR/munged.pid" 2>/dev/null || true
    [ -n "$quiet" ] || log "cluster in $DIR is down"
}

# ---------------------------------------------------------------------------------------------
ensure_packages() {
    local missing=() need
    command -v slurmctld >/dev/null 2>&1 || missing+=(slurmctld)
    command -v slurmd >/dev/null 2>&1 || missing+=(slurmd)
    command -v sinfo >/dev/null 2>&1 || missing+=(slurm-client)
    command -v munged >/dev/null 2>&1 || missing+=(munge)
    [ ${#missing[@]} -eq 0 ] && return 0
    [ -z "${SLURM_LOCAL_NO_INSTALL:-}" ] || die "missing packages: ${missing[*]} (SLURM_LOCAL_NO_INSTALL set)"
    log "installing: ${missing[*]}"
    # Keep the packages' init scripts from starting system-wide daemons (no-op in Docker-style
    # images that already ship a policy-rc.d). Only a file we created is removed again.
    local created_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        created_policy=1
    fi
    local rc=0
    {
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" ||
            { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"; }
    } >&2 || rc=$?
    [ -z "$created_policy" ] || rm -f /usr/sbin/policy-rc.d
    [ $rc -eq 0 ] || die "apt-get install ${missing[*]} failed"
    for need in slurmctld slurmd sinfo munged; do
        command -v "$need" >/dev/null 2>&1 || die "$need still missing after install"
    done
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pick_ports() {
    if [ -n "${SLURM_LOCAL_CTLD_PORT:-}" ]; then
        CTLD_PORT=$SLURM_LOCAL_CTLD_PORT
        SLURMD_PORT=${SLURM_LOCAL_SLURMD_PORT:-$((CTLD_PORT + 1))}
        port_in_use "$CTLD_PORT" && die "port $CTLD_PORT (SLURM_LOCAL_CTLD_PORT) is in use"
        port_in_use "$SLURMD_PORT" && die "port $SLURMD_PORT (slurmd) is in use"
        return 0
    fi
    local p
    for ((p = 16817; p < 17817; p += 2)); do
        if ! port_in_use "$p" && ! port_in_use $((p + 1)); then
            CTLD_PORT=$p
            SLURMD_PORT=$((p + 1))
            return 0
        fi
    done
    die "no free port pair in 16817-17816"
}

write_conf() {
    local cpus mem_total_mb margin mem_mb defmem
    cpus=$(nproc)
    mem_total_mb=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024))
    margin=${SLURM_LOCAL_MEM_MARGIN_MB:-$((mem_total_mb / 10 > 1024 ? mem_total_mb / 10 : 1024))}
    mem_mb=$((mem_total_mb - margin))
    [ "$mem_mb" -ge 256 ] || mem_mb=256
    defmem=${SLURM_LOCAL_DEF_MEM_PER_CPU:-256}
    [ "$defmem" -le "$mem_mb" ] || defmem=$((mem_mb / cpus))

    cat >"$CONF" <<EOF
# generated by $PROG for a local single-node test cluster; everything lives in $DIR
ClusterName=localtest
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCK
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$DIR/plugstack.conf
# no cgroups inside containers
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$defmem
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
# finished jobs stay visible to 'scontrol show job' / 'squeue -t all' for this many seconds
MinJobAge=300
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
    : >"$DIR/plugstack.conf"
}

start_munged() {
    # munged insists on: socket dir executable by all, key dir/key private, no world-writable parents
    mkdir -p "$MUNGE_DIR/key"
    chmod 755 "$MUNGE_DIR"
    chmod 700 "$MUNGE_DIR/key"
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --keyfile="$MUNGE_KEY" --force >&2
    else
        dd if=/dev/urandom of="$MUNGE_KEY" bs=1 count=1024 status=none
    fi
    chmod 400 "$MUNGE_KEY"
    if [ ${#MUNGE_SOCK} -ge 100 ]; then die "munge socket path too long (${#MUNGE_SOCK} chars): use a shorter DIR"; fi
    # --force: downgrade munged's ownership/permission checks on DIR's parents to warnings (test-only cluster)
    env "$MARKER" munged --force \
        --socket="$MUNGE_SOCK" --key-file="$MUNGE_KEY" --pid-file="$MUNGE_DIR/munged.pid" \
        --log-file="$MUNGE_DIR/munged.log" --seed-file="$MUNGE_DIR/key/munged.seed" >&2 ||
        { tail_logs; die "munged failed to start"; }
    local i
    for ((i = 0; i < 50; i++)); do
        if munge -n --socket="$MUNGE_SOCK" 2>/dev/null | unmunge --socket="$MUNGE_SOCK" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    tail_logs
    die "munged on $MUNGE_SOCK does not answer"
}

fail_up() {
    log "ERROR: $*"
    tail_logs
    do_down quiet
    exit 1
}

do_up() {
    local t0=$SECONDS
    ensure_packages
    # a previous run in the same DIR may still be alive (or have crashed): stop it and wipe state
    do_down quiet
    rm -rf -- "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/run" "$MUNGE_DIR" "$CONF" "$DIR/plugstack.conf"
    mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/run"
    chmod 755 "$DIR" "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/run"

    pick_ports
    write_conf
    start_munged

    env "$MARKER" SLURM_CONF="$CONF" slurmctld -f "$CONF" >&2 || fail_up "slurmctld failed to start"
    env "$MARKER" SLURM_CONF="$CONF" slurmd -f "$CONF" >&2 || fail_up "slurmd failed to start"

    local timeout=${SLURM_LOCAL_TIMEOUT:-60} state="" i
    for ((i = 0; i < timeout * 4; i++)); do
        state=$(SLURM_CONF=$CONF timeout 5 sinfo -h -n "$HOST" -o %T 2>/dev/null || true)
        case "$state" in
            idle) break ;;
            *drain* | *down* | *fail* | *inval*)
                # with ReturnToService=2 a node registering late may pass through down; give it a moment
                [ "$i" -lt 40 ] || fail_up "node $HOST is '$state': $(SLURM_CONF=$CONF sinfo -h -R 2>/dev/null)"
                ;;
        esac
        [ -n "$(pidfile_pid "$DIR/run/slurmctld.pid")" ] || [ "$i" -lt 8 ] || fail_up "slurmctld died"
        [ -n "$(pidfile_pid "$DIR/run/slurmd.pid")" ] || [ "$i" -lt 8 ] || fail_up "slurmd died"
        sleep 0.25
    done
    [ "$state" = idle ] || fail_up "node $HOST not idle after ${timeout}s (state: '${state:-no answer}')"
    log "cluster up in $((SECONDS - t0))s: node $HOST idle, slurmctld port $CTLD_PORT, slurmd port $SLURMD_PORT, $(slurmctld -V)"
    echo "export SLURM_CONF=$CONF"
}

do_status() {
    local p
    for p in slurmctld slurmd; do
        echo "$p: $(pidfile_pid "$DIR/run/$p.pid")"
    done
    echo "munged: $(pidfile_pid "$MUNGE_DIR/munged.pid")"
    [ -f "$CONF" ] && SLURM_CONF=$CONF timeout 5 sinfo 2>&1 || true
}

case "$CMD" in
    install) ensure_packages ;;
    up) do_up ;;
    down) do_down ;;
    status) do_status ;;
    *) usage ;;
esac
