"""``make demo``: the solver comparison, then COPS on real networks at initialisation.

``python examples/demo.py [--size D] [--out DIR] [--no-torch]``. The second part needs torch
(``pip install 'copslp[torch]'``); it writes its figures and JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import solver_demo  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=solver_demo._size, default=1_000_000,
                        help="D of the generated solver problem (default 1e6)")
    parser.add_argument("--out", default="demo_out", help="folder for the figures and JSON (default demo_out)")
    parser.add_argument("--no-torch", action="store_true", help="skip the real-model part")
    args = parser.parse_args(argv)
    if solver_demo.compare(args.size):
        return 1
    if args.no_torch:
        return 0
    try:
        import pruning_demo
    except ImportError as exc:
        print(f"\n(real-model demo skipped: {exc}; install copslp[torch])")
        return 0
    print()
    return pruning_demo.main(["--out", args.out])


if __name__ == "__main__":
    sys.exit(main())
