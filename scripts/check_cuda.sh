#!/usr/bin/env bash
# Superseded by the one-shot GPU check (docs/GPU-CHECK.md). The lent GPU machines have NO cargo and
# no network, so nothing is built there:
#   here (the build machine):   scripts/gpu_bundle.sh      → bundle/ (engine + every test/bench binary)
#   there (device `run` tool):  bash scripts/gpu_check.sh  with carry: ["bundle"]
# This script only forwards to scripts/gpu_check.sh when a bundle is present, and otherwise says what
# to do; it never calls cargo.
set -u
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -f "$REPO/bundle/bins.tar.xz" ]]; then
    echo "[check_cuda] superseded: running scripts/gpu_check.sh (docs/GPU-CHECK.md)" >&2
    exec bash "$REPO/scripts/gpu_check.sh" "$@"
fi
cat >&2 <<'MSG'
[check_cuda] superseded by the one-shot GPU check (docs/GPU-CHECK.md):
  1. on the build machine:  scripts/gpu_bundle.sh          (needs cargo + nvcc; writes bundle/)
  2. on the GPU machine:    bash scripts/gpu_check.sh      (device run tool, carry: ["bundle"])
The GPU machines have no cargo: never build there.
MSG
exit 1
