"""Run every example script; exit non-zero if any fails.

    python examples/run_all.py                         # full: figures for docs/img/examples/
    NUCLIB_EXAMPLES_FAST=1 python examples/run_all.py  # fast: tiny data, temporary folders (CI)
    python examples/run_all.py --fast segment_pretrained tiled_inference   # some of them

Each example runs in its own Python process (as a user would run it), in the
order below: ``evaluate_models`` reuses the model ``train_unet`` saves, in a
work folder shared by the run (``NUCLIB_EXAMPLES_WORK``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent
ORDER = [
    "segment_pretrained",
    "augmentation_gallery",
    "train_unet",
    "evaluate_models",
    "tiled_inference",
    "compare_models",
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"examples to run (default: all of {ORDER})")
    parser.add_argument("--fast", action="store_true", help="same as NUCLIB_EXAMPLES_FAST=1")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(ORDER))
    if unknown:
        parser.error(f"unknown examples {unknown}; expected some of {ORDER}")
    names = args.names or ORDER

    env = dict(os.environ)
    if args.fast:
        env["NUCLIB_EXAMPLES_FAST"] = "1"
    fast = env.get("NUCLIB_EXAMPLES_FAST", "").strip().lower() in ("1", "true", "yes", "on")
    if fast:
        # one fresh folder per run, so a fast run never reuses (or leaves) stale models
        scratch = Path(tempfile.mkdtemp(prefix="nuclib-examples-run-"))
        env.setdefault("NUCLIB_EXAMPLES_WORK", str(scratch / "work"))
        env.setdefault("NUCLIB_EXAMPLES_OUT", str(scratch / "figures"))
    env.setdefault("MPLBACKEND", "Agg")

    results = []
    for name in names:
        print(f"\n===== {name} ({'fast' if fast else 'full'}) =====", flush=True)
        started = time.perf_counter()
        code = subprocess.call([sys.executable, str(EXAMPLES / f"{name}.py")], env=env,
                               cwd=EXAMPLES.parent)
        results.append((name, code, time.perf_counter() - started))

    print("\n| example | result | seconds |\n|---|---|---:|")
    for name, code, seconds in results:
        print(f"| {name} | {'ok' if code == 0 else f'FAILED (exit {code})'} | {seconds:.0f} |")
    if fast:
        print(f"\nfigures: {env['NUCLIB_EXAMPLES_OUT']}")
    failed = [name for name, code, _ in results if code != 0]
    if failed:
        print(f"\n{len(failed)} example(s) failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
