#!/usr/bin/env python3
"""Converts GIMP pattern files (.pat, as Debian's gimp-data ships them) into PNG style images for
`engine stylize` / `engine stylize-idx`: real photographed textures (wood, stone, fabric, water...)
that Stylized-ImageNet's painting pool cannot be downloaded for here.

    python3 tools/gimp_patterns.py OUT_DIR FILE.pat... [--tile 256] [--skip-dir Legacy]

Each pattern is tiled (GIMP patterns are made to tile) up to at least --tile pixels a side, so that a
style image resized to the stylizer's size keeps its texture's own scale instead of being blown up
from 64 px. Output names are `<folder>-<file>.png` (e.g. `Wood-bark.png`). Standard library only.

The .pat format (GIMP's devel-docs/pat.txt): a big-endian header of u32 header size, u32 version
(1), u32 width, u32 height, u32 bytes per pixel (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA), the magic
"GPAT", then a NUL-terminated UTF-8 name filling the rest of the header; then width × height pixels,
row-major. Alpha is composited over mid grey.

Invariants: a file that is not a well-formed pattern (bad magic, version, sizes beyond the file,
pixel data cut short) is refused with its name and the reason, and nothing is written for it; PNGs
are written through a temporary name and renamed, so an interrupted run leaves no half file.
"""

import argparse
import os
import struct
import sys
import zlib

MAX_SIDE = 8192


class PatternError(ValueError):
    pass


def read_pattern(data):
    """(width, height, channels, pixel bytes) of one .pat file's contents."""
    if len(data) < 24:
        raise PatternError("shorter than a pattern header (24 bytes)")
    header_size, version, width, height, depth = struct.unpack(">5I", data[:20])
    if data[20:24] != b"GPAT":
        raise PatternError("no GPAT magic")
    if version != 1:
        raise PatternError(f"version {version}, expected 1")
    if depth not in (1, 2, 3, 4):
        raise PatternError(f"{depth} bytes per pixel, expected 1-4")
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise PatternError(f"size {width}x{height} outside 1..{MAX_SIDE}")
    if header_size < 24 or header_size > len(data):
        raise PatternError(f"header size {header_size} outside the file ({len(data)} bytes)")
    need = width * height * depth
    pixels = data[header_size:header_size + need]
    if len(pixels) != need:
        raise PatternError(f"{width}x{height}x{depth} needs {need} pixel bytes, file has {len(pixels)}")
    return width, height, depth, pixels


def to_rgb(width, height, depth, pixels):
    """RGB bytes; alpha is composited over mid grey (128)."""
    out = bytearray(width * height * 3)
    for i in range(width * height):
        p = pixels[i * depth:(i + 1) * depth]
        if depth <= 2:
            rgb = (p[0], p[0], p[0])
        else:
            rgb = (p[0], p[1], p[2])
        if depth in (2, 4):
            a = p[-1]
            rgb = tuple((c * a + 128 * (255 - a) + 127) // 255 for c in rgb)
        out[3 * i:3 * i + 3] = bytes(rgb)
    return bytes(out)


def tile(width, height, rgb, min_side):
    """The image repeated whole times in each direction until both sides reach min_side."""
    nx = max(1, -(-min_side // width))
    ny = max(1, -(-min_side // height))
    rows = [rgb[y * width * 3:(y + 1) * width * 3] * nx for y in range(height)]
    return width * nx, height * ny, b"".join(rows) * ny


def encode_png(width, height, rgb):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    raw = b"".join(b"\x00" + rgb[y * width * 3:(y + 1) * width * 3] for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def output_name(path):
    folder = os.path.basename(os.path.dirname(os.path.abspath(path)))
    stem = os.path.splitext(os.path.basename(path))[0]
    return f"{folder}-{stem}.png"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("patterns", nargs="+", help=".pat files")
    ap.add_argument("--tile", type=int, default=256, help="tile each pattern to at least this side (0: no tiling)")
    ap.add_argument("--skip-dir", action="append", default=[], help="leave out patterns in folders of this name")
    args = ap.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    written, refused = 0, 0
    for path in args.patterns:
        if os.path.basename(os.path.dirname(os.path.abspath(path))) in args.skip_dir:
            continue
        try:
            with open(path, "rb") as f:
                w, h, d, px = read_pattern(f.read())
        except (OSError, PatternError) as e:
            print(f"{path}: skipped: {e}", file=sys.stderr)
            refused += 1
            continue
        rgb = to_rgb(w, h, d, px)
        if args.tile > 0:
            w, h, rgb = tile(w, h, rgb, args.tile)
        dst = os.path.join(args.out_dir, output_name(path))
        tmp = dst + ".tmp"
        with open(tmp, "wb") as f:
            f.write(encode_png(w, h, rgb))
        os.replace(tmp, dst)
        written += 1
    print(f"wrote {written} PNGs to {args.out_dir}" + (f", skipped {refused}" if refused else ""))
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main())
