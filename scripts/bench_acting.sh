#!/usr/bin/env bash
# Acting's speed (issue 25), in one go:
#   1. offline: episodes per second at k = 8, guided by the distance heuristic on the
#      published FrozenLake maps (256 episodes);
#   2. against `qval serve-oracle --latency-ms 50`: the wall time of the oracle-guided
#      strategy at k = 8 against the ideal, requests / concurrency x latency (the backend's
#      concurrency, 32, bounds what is in flight).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p qval-cli
qval=target/release/qval
work=$(mktemp -d)
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
head='name = "bench-acting"
seed = 42
[environment]
type = "frozenlake"
maps = "published"
max_steps = 30
gamma = 0.95
[dataset]
trajectories = 20
collector = { type = "epsilon-greedy", epsilon = 0.5 }
[[labels]]
method = "exact"
'
printf '%s\n[[methods]]\ntype = "heuristic"\nname = "distance"\n[acting]\nactor = { type = "epsilon-greedy", epsilon = 0.5 }\nk = [8]\nguided = ["distance"]\nrandom = false\nsamples_per_task = 32\n' "$head" >"$work/offline.toml"
line=$($qval run "$work/offline.toml" --out "$work/offline" | grep '^6. act       distance-q k=8')
secs=$(sed -E 's/.*, ([0-9.]+)s$/\1/' <<<"$line")
episodes=$(sed -E 's/.* of ([0-9]+) episodes.*/\1/' <<<"$line")
echo "offline, k = 8: $episodes episodes in ${secs}s: $(awk -v e="$episodes" -v s="$secs" 'BEGIN { printf "%.0f", e / s }') episodes/s"

$qval serve-oracle --latency-ms 50 >"$work/oracle.log" &
server=$!
for _ in $(seq 100); do grep -q '^http' "$work/oracle.log" 2>/dev/null && break; sleep 0.1; done
url=$(head -1 "$work/oracle.log")
printf '%s\n[backends.oracle]\nbase_url = "%s"\nmodel = "oracle"\n[[methods]]\ntype = "direct"\nname = "oracle"\nbackend = "oracle"\n[acting]\nactor = { type = "epsilon-greedy", epsilon = 0.5 }\nk = [8]\nguided = ["oracle"]\nrandom = false\nsamples_per_task = 2\n' "$head" "$url" >"$work/latency.toml"
line=$($qval run "$work/latency.toml" --out "$work/latency" | grep '^6. act       oracle-q k=8')
secs=$(sed -E 's/.*, ([0-9.]+)s$/\1/' <<<"$line")
requests=$(sed -E 's/.*succeeded, ([0-9]+) requests.*/\1/' <<<"$line")
ideal=$(awk -v r="$requests" 'BEGIN { printf "%.2f", r / 32 * 0.05 }')
echo "oracle at 50 ms, k = 8: $requests requests in ${secs}s; ideal ${ideal}s; ratio $(awk -v s="$secs" -v i="$ideal" 'BEGIN { printf "%.2f", s / i }')"
