#!/usr/bin/env bash
# Starts a local docker daemon for qval's container tests when none answers, and loads qval's
# base image into it from podman (scripts/base_image.sh makes it there first). The daemon
# runs with the cgroupfs driver (these machines have hybrid cgroups and no systemd), the
# overlay2 storage driver qval reads layers from, and no bridge or iptables rules: qval's
# test containers have no network (a task with allow_internet needs a dockerd with its default
# bridge). Needs root and docker.io (scripts/test.sh installs it).
#
#   bash scripts/docker_local.sh          # log: /var/log/qval-dockerd.log
set -euo pipefail
IMAGE=${QVAL_BASE_IMAGE:-localhost/qval-base:bookworm}
podman=(podman --runtime runc --cgroup-manager cgroupfs)

for tool in dockerd docker; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install docker.io" >&2; exit 1; }
done
if ! docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
  echo "== dockerd: starting (log /var/log/qval-dockerd.log)"
  setsid dockerd --exec-opt native.cgroupdriver=cgroupfs --storage-driver overlay2 \
    --iptables=false --ip-masq=false --bridge=none </dev/null >/var/log/qval-dockerd.log 2>&1 &
  for _ in $(seq 100); do
    docker version --format '{{.Server.Version}}' >/dev/null 2>&1 && break
    sleep 0.3
  done
  docker version --format '{{.Server.Version}}' >/dev/null 2>&1 \
    || { tail -20 /var/log/qval-dockerd.log >&2; echo "dockerd did not start" >&2; exit 1; }
fi
echo "== dockerd: $(docker version --format '{{.Server.Version}}') answers"
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "== base image $IMAGE in docker: present"
else
  "${podman[@]}" image exists "$IMAGE" \
    || { echo "no $IMAGE in podman to load: bash scripts/base_image.sh first" >&2; exit 1; }
  "${podman[@]}" save "$IMAGE" 2>/dev/null | docker load >/dev/null
  echo "== base image $IMAGE in docker: loaded from podman"
fi
