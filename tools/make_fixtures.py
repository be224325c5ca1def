"""Regenerates every PyTorch reference fixture in tests/fixtures/ (needs `pip install torch safetensors`).

Usage: python3 tools/make_fixtures.py [family ...]   (default: every tools/fixtures/gen_*.py)
Each generator is deterministic; a rerun reproduces the committed files bit for bit.
"""

import glob
import importlib.util
import os
import sys

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
sys.path.insert(0, HERE)

wanted = set(sys.argv[1:])
for path in sorted(glob.glob(os.path.join(HERE, "gen_*.py"))):
    family = os.path.basename(path)[4:-3]
    if wanted and family not in wanted:
        continue
    spec = importlib.util.spec_from_file_location(f"gen_{family}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main()
