"""Soak benchmark: ``Segmenter.segment_many`` over thousands of small images in one process.

A screen segments millions of images in long-lived processes, so nothing
may accumulate per image: no memory (leaked arrays, growing caches, traced
graphs) and no slow-down (retracing, fragmentation). This runs the bundled
``dsb-3class`` model through one ``segment_many`` call over ``--count``
small crops of the DSB2018 ``val/`` images (cycled; a few sizes, so shapes
vary as in a real screen) and records, after every image, the resident
memory (RSS) and the time.

Reported:

* the RSS slope in MiB per 1000 images, fitted (least squares) over the
  images after the first quarter (warm-up: graph tracing, allocator pools).
  ``segment_many`` returns every label image, so the slope is given raw and
  net of the label arrays it keeps (their bytes are subtracted): the net
  slope is what leaks;
* throughput (images/s) in the first and in the last quarter, and their ratio
  (1.0: no decay).

Usage:
    python benchmarks/soak.py                  # 2000 images
    python benchmarks/soak.py --count 400      # shorter run
    python benchmarks/soak.py --json soak.json # also save the per-image trace
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DSB = Path(os.environ.get("NUCLIB_DSB2018", REPO.parent / "shared" / "data" / "dsb2018"))
SIZES = ((96, 96), (128, 128), (128, 96), (160, 128))


def rss_mib() -> float:
    """This process' resident set size in MiB (Linux ``/proc``, else psutil)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import psutil

        return psutil.Process().memory_info().rss / 2**20


def crops(count: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` small crops of the ``val/`` images, cycling through images and sizes."""
    from nuclib.data import list_images, read_image

    files = list_images(DSB / "val" / "images")
    rng = np.random.default_rng(seed)
    images = [read_image(f) for f in files]
    out = []
    for i in range(count):
        image = images[i % len(images)]
        h, w = SIZES[i % len(SIZES)]
        h, w = min(h, image.shape[0]), min(w, image.shape[1])
        y = int(rng.integers(0, image.shape[0] - h + 1))
        x = int(rng.integers(0, image.shape[1] - w + 1))
        out.append(np.ascontiguousarray(image[y:y + h, x:x + w]))
    return out


def slope_per_1000(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of ``y`` against ``x``, per 1000 units of ``x``."""
    return float(np.polyfit(x, y, 1)[0] * 1000) if len(x) > 1 else float("nan")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="images (default 2000)")
    parser.add_argument("--model", default="dsb-3class", help="zoo model (default dsb-3class)")
    parser.add_argument("--json", type=Path, help="write the per-image trace here")
    args = parser.parse_args(argv)
    if args.count < 8:
        parser.error("--count must be at least 8 (four quarters of two images)")

    import nuclib

    seg = nuclib.load_pretrained(args.model)
    images = crops(args.count)
    trace = []  # (seconds since start, RSS MiB, label bytes kept so far)
    kept = 0
    segment = seg.segment

    def timed_segment(image, **kwargs):
        # Shadows the method on this instance only: segment_many calls it per image.
        nonlocal kept
        labels = segment(image, **kwargs)
        kept += labels.nbytes
        trace.append((time.perf_counter() - start, rss_mib(), kept / 2**20))
        return labels

    seg.segment = timed_segment
    rss0 = rss_mib()
    start = time.perf_counter()
    results = seg.segment_many(images, progress=False)
    total = time.perf_counter() - start
    assert len(results) == args.count

    t, rss, kept_mib = (np.array(c) for c in zip(*trace))
    n = len(t)
    index = np.arange(1, n + 1)
    q = n // 4
    after = slice(q, n)
    first = q / t[q - 1]
    last = q / (t[n - 1] - t[n - q - 1])
    summary = {
        "images": n, "model": args.model, "sizes": [f"{h}x{w}" for h, w in SIZES],
        "seconds": round(total, 1),
        "rss_start_mib": round(rss0, 1), "rss_after_first_quarter_mib": round(rss[q - 1], 1),
        "rss_end_mib": round(rss[-1], 1),
        "labels_kept_mib": round(kept_mib[-1], 1),
        "rss_slope_mib_per_1000": round(slope_per_1000(index[after], rss[after]), 2),
        "net_rss_slope_mib_per_1000": round(
            slope_per_1000(index[after], rss[after] - kept_mib[after]), 2),
        "first_quarter_images_per_s": round(first, 2),
        "last_quarter_images_per_s": round(last, 2),
        "throughput_ratio_last_to_first": round(last / first, 3),
    }
    for key, value in summary.items():
        print(f"{key:32s} {value}")
    if args.json:
        args.json.write_text(json.dumps({"summary": summary,
                                         "trace": [list(map(float, r)) for r in trace]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
