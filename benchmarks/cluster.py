"""Images per second of ``nuclib.segment_files`` against the number of Dask workers.

The same files are segmented in this process (the baseline, ``client=None``)
and on a ``LocalCluster`` of 1 and 2 worker processes (one thread each); the
table gives images/s and the ratio to the baseline. Worker start-up and the
model load (once per worker) are timed apart from the run, by a warm-up run
on other output folders. A machine with more cores, or a cluster, adds rows
with ``--workers 1 2 4 8``.

Run from the repository root::

    python benchmarks/cluster.py --images 24 --workers 1 2
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from _common import print_table

from nuclib.evaluation import read_manifest

DSB = Path(os.environ.get("NUCLIB_DSB2018", Path(__file__).resolve().parents[2] / "shared" /
                          "data" / "dsb2018"))


def _files(n: int) -> list[Path]:
    ids = [r["id"] for r in read_manifest(DSB, split="val", modality="fluorescence")]
    return [DSB / "val" / "images" / f"{i}.png" for i in ids[:n]]


def _rate(files, client, folder: Path, diameter) -> float:
    from nuclib.distributed import segment_files

    start = time.perf_counter()
    report = segment_files(files, folder, client=client, progress=False, diameter=diameter)
    seconds = time.perf_counter() - start
    assert report.ok and report.segmented == len(files), report.counts
    return len(files) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--diameter", type=float, default=None,
                        help="fixed nucleus diameter (default: measured per image)")
    parser.add_argument("--quick", action="store_true", help="4 images, 1 worker")
    args = parser.parse_args()
    if args.quick:
        args.images, args.workers = 4, [1]
    from nuclib.distributed import local_client

    files = _files(args.images)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _rate(files[:2], None, tmp / "warm", args.diameter)  # model loaded, graph traced
        base = _rate(files, None, tmp / "local", args.diameter)
        rows.append({"where": "this process (baseline)", "workers": 0,
                     "images/s": round(base, 2), "vs baseline": 1.0})
        for n in args.workers:
            with local_client(n) as client:
                start = time.perf_counter()
                _rate(files[:2 * n], client, tmp / f"warm{n}", args.diameter)
                startup = time.perf_counter() - start
                rate = _rate(files, client, tmp / f"cluster{n}", args.diameter)
            rows.append({"where": "LocalCluster", "workers": n, "images/s": round(rate, 2),
                         "vs baseline": round(rate / base, 2),
                         "warm-up s": round(startup, 1)})
    print(f"\n### segment_files: {len(files)} val/ fluorescence images, "
          f"{os.cpu_count()} CPU cores, diameter "
          f"{'measured' if args.diameter is None else args.diameter}\n")
    print_table(rows)


if __name__ == "__main__":
    main()
