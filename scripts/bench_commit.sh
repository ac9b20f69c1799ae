#!/usr/bin/env bash
# The alternative to qval's layer snapshots, measured: a state as an image committed after
# each step (`podman commit`), restored by creating a container from it. Prints, per depth,
# the commit time and the time to create, start (a no-op command) and remove a container of
# the committed image, against the same on the task's own image; compare with the restore
# and snapshot times of `cargo run --release --example bench_containers`.
#
#   sudo bash scripts/bench_commit.sh [depth]      # default 12; needs podman and the base image
set -euo pipefail
depth=${1:-12}
p=(podman --runtime runc --cgroup-manager cgroupfs)
# nofile and nproc at or below the host's hard limits (runc refuses more), as qval sets them.
cap() { if [ "$1" = unlimited ] || [ "$1" -gt "$2" ]; then echo "$2"; else echo "$1"; fi; }
n=$(cap "$(ulimit -Hn)" 1024); u=$(cap "$(ulimit -Hu)" 4096)
lim=(--ulimit "nofile=$n:$n" --ulimit "nproc=$u:$u")
base=${QVAL_BASE_IMAGE:-localhost/qval-base:bookworm}
tag=localhost/qval-bench-commit
now() { date +%s%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1e6 }'; }
cleanup() { "${p[@]}" rm -f qval-bench-commit >/dev/null 2>&1 || true
  for i in $(seq 0 "$depth"); do "${p[@]}" rmi -f "$tag:$i" >/dev/null 2>&1 || true; done; }
trap cleanup EXIT
"${p[@]}" tag "$base" "$tag:0"
echo "| depth | commit (ms) | create+start+rm from the committed image (ms) | image layers |"
echo "|---:|---:|---:|---:|"
for i in $(seq 1 "$depth"); do
  "${p[@]}" run "${lim[@]}" --name qval-bench-commit --network none "$tag:$((i-1))" \
    /bin/bash -c "mkdir -p /app && seq $((i*1000)) > /app/f$i && echo $i >> /app/depth.log" >/dev/null
  t0=$(now); "${p[@]}" commit -q qval-bench-commit "$tag:$i" >/dev/null; t1=$(now)
  "${p[@]}" rm qval-bench-commit >/dev/null
  t2=$(now); "${p[@]}" run "${lim[@]}" --rm --network none "$tag:$i" /bin/true; t3=$(now)
  layers=$("${p[@]}" image inspect --format '{{len .RootFS.Layers}}' "$tag:$i")
  echo "| $i | $(ms "$t0" "$t1") | $(ms "$t2" "$t3") | $layers |"
done
t2=$(now); "${p[@]}" run "${lim[@]}" --rm --network none "$tag:0" /bin/true; t3=$(now)
echo "create+start+rm from the base image: $(ms "$t2" "$t3") ms"
