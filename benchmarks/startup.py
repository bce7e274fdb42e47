"""Benchmark of a whole small job: the README's command, from process start to exit.

Times ``nuclib segment examples/data/fluorescence.png --out DIR --overlay``
(260x347 pixels, one image) as a user runs it, each in a new process:

* ``keras``: ``NUCLIB_ENGINE=keras``, the baseline: imports TensorFlow and
  loads the Keras model every time;
* ``auto, first use``: the default engine (OpenVINO) with an empty engine
  cache: loads Keras, converts the network (``nuclib.engines``) and caches it;
* ``auto, cached``: the default engine on the next run: the cached
  conversion runs without importing Keras or TensorFlow
  (``Segmenter.from_directory``).

The three are run interleaved (one of each per round; median over rounds)
so that other load on the machine hits them alike. Ratios are Keras' time
divided by the row's (above 1: faster). The nucleus count of each row is
printed too (bf16 may move a boundary pixel or a nucleus).

Usage:
    python benchmarks/startup.py              # 5 rounds
    python benchmarks/startup.py --rounds 1
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import print_table

REPO = Path(__file__).resolve().parents[1]
IMAGE = REPO / "examples" / "data" / "fluorescence.png"
NUCLIB = [sys.executable, "-m", "nuclib.cli"]


def one_run(engine: str, cache: Path, out: Path) -> tuple[float, int]:
    """Seconds of one ``nuclib segment`` process and the nuclei it reported."""
    env = dict(os.environ, NUCLIB_ENGINE=engine, NUCLIB_CACHE_DIR=str(cache))
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    done = subprocess.run([*NUCLIB, "segment", str(IMAGE), "--out", str(out), "--overlay",
                           "--verbose"], capture_output=True, text=True, env=env, cwd=REPO)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"nuclib segment failed ({engine}): {done.stderr[-2000:]}")
    return seconds, int(re.search(r"(\d+) nuclei", done.stdout)[1])


def run(rounds: int) -> list[dict]:
    times: dict[str, list[float]] = {"keras": [], "auto, first use": [], "auto, cached": []}
    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="nuclib-startup-") as folder:
        folder = Path(folder)
        for _ in range(rounds):
            fresh = folder / "fresh-cache"
            shutil.rmtree(fresh, ignore_errors=True)
            for name, engine, cache in (("keras", "keras", folder / "keras-cache"),
                                        ("auto, first use", "auto", fresh),
                                        ("auto, cached", "auto", fresh)):
                seconds, counts[name] = one_run(engine, cache, folder / "out")
                times[name].append(seconds)
    base = statistics.median(times["keras"])
    return [{"run": name, "rounds": rounds, "median s": round(statistics.median(t), 2),
             "vs keras": f"{base / statistics.median(t):.2f}x", "nuclei": counts[name]}
            for name, t in times.items()]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    args = parser.parse_args(argv)
    print_table(run(args.rounds))


if __name__ == "__main__":
    main()
