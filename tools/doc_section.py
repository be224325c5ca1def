#!/usr/bin/env python3
"""Writes a generated section into a Markdown document: the text between the markers
`<!-- NAME:begin -->` and `<!-- NAME:end -->` is replaced (the markers stay); a document without
them gets both, with the text, appended. The experiment scripts (scripts/sin_fmnist.sh,
scripts/sin_fmnist_adain.sh) write their result tables this way, so the prose around them survives
a rerun.

    from doc_section import replace_section; replace_section("docs/x.md", "results", text)
    python3 tools/doc_section.py DOC NAME < text
"""

import os
import sys


def replace_section(doc, name, text):
    src = open(doc).read()
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if begin in src and end in src and src.index(begin) < src.index(end):
        src = src[: src.index(begin) + len(begin)] + "\n" + text + src[src.index(end):]
    else:
        src += f"\n{begin}\n{text}{end}\n"
    with open(doc + ".tmp", "w") as f:
        f.write(src)
    os.replace(doc + ".tmp", doc)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python3 tools/doc_section.py DOC NAME < text")
    replace_section(sys.argv[1], sys.argv[2], sys.stdin.read())
