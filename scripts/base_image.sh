#!/usr/bin/env bash
# Makes qval's local container base image, localhost/qval-base:bookworm, from the Debian
# package archive (no image registry needed): debootstrap --variant=minbase with python3
# and tmux, plus a local apt repository of a few packages the host does not have (tree,
# datamash, dos2unix), so a task's Dockerfile can `apt-get install` them with no network.
# Needs root, podman and runc, debootstrap and dpkg-dev (scripts/test.sh installs them).
# About 60 s and 230 MB the first time; does nothing when the image exists.
set -euo pipefail
IMAGE=${QVAL_BASE_IMAGE:-localhost/qval-base:bookworm}
SUITE=bookworm
MIRROR=${QVAL_DEBIAN_MIRROR:-http://deb.debian.org/debian}
EXTRA_DEBS=(tree datamash dos2unix)
podman=(podman --runtime runc --cgroup-manager cgroupfs)

if "${podman[@]}" image exists "$IMAGE"; then
  echo "== base image $IMAGE: present"
  exit 0
fi
for tool in podman runc debootstrap dpkg-scanpackages; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install podman runc debootstrap dpkg-dev" >&2; exit 1; }
done
work=$(mktemp -d /var/tmp/qval-base.XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "== base image $IMAGE: debootstrap $SUITE (minbase, python3, tmux)"
debootstrap --variant=minbase --include=python3,tmux "$SUITE" "$work/rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
echo "== base image $IMAGE: local apt repository (${EXTRA_DEBS[*]})"
repo="$work/rootfs/opt/qval-apt"
mkdir -p "$repo"
(cd "$repo" && apt-get download -q "${EXTRA_DEBS[@]}" >/dev/null 2>&1)
(cd "$repo" && dpkg-scanpackages --multiversion . /dev/null 2>/dev/null > Packages)
echo "deb [trusted=yes] file:/opt/qval-apt ./" > "$work/rootfs/etc/apt/sources.list"
rm -f "$work/rootfs/etc/apt/sources.list.d/"* 2>/dev/null || true
chroot "$work/rootfs" apt-get update -qq >/dev/null
rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/dev/"* "$work/rootfs/proc/"* "$work/rootfs/sys/"*
tar -C "$work/rootfs" -c . | "${podman[@]}" import --change 'CMD ["/bin/bash"]' - "$IMAGE" >/dev/null 2>&1
echo "== base image $IMAGE: made ($(du -sh "$work/rootfs" | cut -f1))"
