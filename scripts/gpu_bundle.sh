#!/usr/bin/env bash
# Builds, HERE (the GPU machines have no cargo and no network), everything the one-shot GPU check
# (scripts/gpu_check.sh, docs/GPU-CHECK.md) runs there, and packs it into the git-ignored folder
# bundle/ for the device tool's `carry: ["bundle"]`:
#   - the `engine` binary, release, --features cuda;
#   - every test executable of `cargo test --release --features cuda --no-run`;
#   - every bench executable of `cargo bench --features cuda --no-run` (bench targets only; none is
#     an error-free "no benches");
# each with its debug info stripped, all in ONE tar.xz with a large LZMA dictionary: every binary
# embeds the same CUDA fatbins and most of the same library code, so the archive is a fraction of the
# sum of the files. The archive must stay under 60 MiB (the working tree that travels is ≤ 64 MiB in
# all, the repo included); the script fails loudly if it does not.
#   bundle/bins.tar.xz    engine, tests/<name>, benches/<name>
#   bundle/MANIFEST.txt   commit, date, toolchain, every file with size and sha256
# Usage: scripts/gpu_bundle.sh            (CARGO_TARGET_DIR is honoured)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
LIMIT_MIB="${GPU_BUNDLE_LIMIT_MIB:-60}"
BUNDLE="$REPO/bundle"
STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
log() { printf '[gpu_bundle] %s\n' "$*" >&2; }

if ! git check-ignore -q bundle; then
    echo "error: bundle/ is not git-ignored; add '/bundle' to .gitignore (it must travel via carry)" >&2
    exit 1
fi
command -v xz >/dev/null || { echo "error: xz is needed to pack the bundle" >&2; exit 1; }

# Executables from cargo's JSON messages: "<kind> <name> <path>" per line; kinds filtered by $1
# (a regex on the target kinds), test-mode artifacts only unless $2 = bin.
executables() {
    python3 -c '
import json, re, sys
kinds, mode = re.compile(sys.argv[1]), sys.argv[2]
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    t = m["target"]
    if not any(kinds.fullmatch(k) for k in t["kind"]):
        continue
    if (mode == "bin") == m["profile"]["test"]:
        continue
    print(t["kind"][0], t["name"], m["executable"])
' "$1" "$2"
}

log "building engine (release, --features cuda)"
cargo build --release --features cuda --bin engine --message-format=json-render-diagnostics \
    | executables 'bin' bin >"$STAGE/bins.txt"
log "building test executables (cargo test --release --features cuda --no-run)"
cargo test --release --features cuda --no-run --message-format=json-render-diagnostics \
    | executables '.*' test >"$STAGE/tests.txt"
log "building bench executables (cargo bench --features cuda --no-run)"
cargo bench --features cuda --no-run --message-format=json-render-diagnostics \
    | executables 'bench' test >"$STAGE/benches.txt"

mkdir -p "$STAGE/root/tests" "$STAGE/root/benches"
copy() { # src dst
    objcopy --strip-debug "$1" "$2" 2>/dev/null || { cp "$1" "$2" && strip --strip-debug "$2"; }
    chmod 755 "$2"
}
engine_path="$(awk '$2 == "engine" {print $3}' "$STAGE/bins.txt" | head -n 1)"
[[ -n "$engine_path" ]] || { echo "error: cargo reported no engine binary" >&2; exit 1; }
copy "$engine_path" "$STAGE/root/engine"
while read -r kind name path; do
    # The lib's unit tests are named after the crate; keep the target kind in the name.
    [[ "$kind" == lib ]] && name="lib_$name"
    [[ "$kind" == bin ]] && name="bin_$name"
    copy "$path" "$STAGE/root/tests/$name"
done <"$STAGE/tests.txt"
while read -r _ name path; do
    copy "$path" "$STAGE/root/benches/$name"
done <"$STAGE/benches.txt"
ntests="$(find "$STAGE/root/tests" -type f | wc -l)"
nbenches="$(find "$STAGE/root/benches" -type f | wc -l)"
[[ "$ntests" -gt 0 ]] || { echo "error: no test executables found" >&2; exit 1; }
log "$ntests test executables, $nbenches bench executables"

commit="$(git rev-parse HEAD)"
dirty=""
git diff --quiet HEAD -- 2>/dev/null || dirty=" (working tree had uncommitted changes)"
{
    echo "# GPU-check bundle (scripts/gpu_bundle.sh); unpacked by scripts/gpu_check.sh"
    echo "commit: $commit$dirty"
    echo "branch: $(git rev-parse --abbrev-ref HEAD)"
    echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -m)"
    echo "rustc: $(rustc --version)"
    echo "nvcc: $("${NVCC:-$REPO/.toolchain/cuda/nvidia/cu13/bin/nvcc}" --version 2>/dev/null | tail -n 1 || echo unknown)"
    echo "features: cuda; profile: release; debug info stripped"
    echo "# size_bytes sha256 path (inside bins.tar.xz)"
    (cd "$STAGE/root" && find . -type f | sort | while read -r f; do
        printf '%12d %s %s\n' "$(stat -c %s "$f")" "$(sha256sum "$f" | cut -c1-64)" "${f#./}"
    done)
} >"$STAGE/MANIFEST.txt"
raw="$(find "$STAGE/root" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')"

log "packing (xz, 256 MiB dictionary: identical fatbins across binaries compress away)"
rm -rf "$BUNDLE"
mkdir -p "$BUNDLE"
tar -C "$STAGE/root" -cf - . | xz -T1 --lzma2=preset=6,dict=256MiB >"$BUNDLE/bins.tar.xz"
cp "$STAGE/MANIFEST.txt" "$BUNDLE/MANIFEST.txt"
packed="$(stat -c %s "$BUNDLE/bins.tar.xz")"
echo "archive: bins.tar.xz $packed bytes (unpacked $raw bytes)" >>"$BUNDLE/MANIFEST.txt"

total="$(du -sb "$BUNDLE" | cut -f1)"
mib=$(( (total + 1048575) / 1048576 ))
cat "$BUNDLE/MANIFEST.txt" >&2
log "bundle/: $total bytes (~$mib MiB; unpacked binaries $((raw / 1048576)) MiB)"
if (( total > LIMIT_MIB * 1048576 )); then
    echo "error: bundle/ is $mib MiB, over the ${LIMIT_MIB} MiB limit (the working tree that travels is ≤ 64 MiB)" >&2
    exit 1
fi
tree_kib="$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -n 1 | cut -f1)"
log "tracked files: $((tree_kib / 1048576)) MiB; tree + bundle must stay under 64 MiB"
echo 'carry: ["bundle"]'
