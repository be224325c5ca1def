#!/usr/bin/env bash
# Compiles every cuda/*.cu exactly as build.rs does (fatbin: sm_80 + sm_90 SASS, compute_90 PTX;
# -O3, no fast-math) and prints the ptxas register/spill report. Needs no GPU. Exits non-zero when a
# kernel fails to compile, or (with STRICT_SPILLS=1) when any kernel spills registers.
# nvcc: $NVCC, else PATH, else .toolchain/cuda/nvidia/cu13/bin/nvcc (scripts/setup.sh installs it).
# The report is also written to ${REPORT:-target/ptxas-report.txt}.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
NVCC="${NVCC:-$(command -v nvcc || echo "$REPO/.toolchain/cuda/nvidia/cu13/bin/nvcc")}"
if [[ ! -x "$NVCC" ]]; then
    echo "error: nvcc not found; run scripts/setup.sh or set NVCC" >&2
    exit 1
fi
REPORT="${REPORT:-$REPO/target/ptxas-report.txt}"
mkdir -p "$(dirname "$REPORT")"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
CCBIN=()
[[ -n "${NVCC_CCBIN:-}" ]] && CCBIN=(-ccbin "$NVCC_CCBIN")

"$NVCC" --version | tail -n 1
: >"$REPORT"
for src in cuda/*.cu; do
    stem="$(basename "$src" .cu)"
    echo "==== $src ====" | tee -a "$REPORT"
    "$NVCC" --fatbin -O3 -std=c++17 -Xptxas -v -lineinfo -I cuda \
        -gencode arch=compute_80,code=sm_80 \
        -gencode arch=compute_90,code=sm_90 \
        -gencode arch=compute_90,code=compute_90 \
        "${CCBIN[@]}" -o "$OUT/$stem.fatbin" "$src" 2>&1 | tee -a "$REPORT"
done

echo
echo "Summary (kernel, arch, registers, spills):"
awk '
    /Compiling entry function/ { fn = $7; arch = $9; gsub(/\047/, "", fn); gsub(/\047/, "", arch) }
    /spill stores/ { spill = $5 + $9 }
    /Used [0-9]+ registers/ { printf "  %-28s %-6s %4s regs  %s\n", fn, arch, $5, (spill ? "SPILLS " spill " bytes" : "no spills") }
' "$REPORT"
spills="$(grep -c "spill stores" "$REPORT" || true)"
nonzero="$(grep "spill stores" "$REPORT" | grep -vc " 0 bytes spill stores, 0 bytes spill loads" || true)"
echo "report: $REPORT ($spills function reports, $nonzero with spills)"
if [[ "${STRICT_SPILLS:-0}" == 1 && "$nonzero" != 0 ]]; then
    echo "error: register spills (STRICT_SPILLS=1)" >&2
    exit 1
fi
