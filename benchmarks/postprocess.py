"""Benchmark post-processing: probabilities to instance labels, in megapixels per second.

On synthetic inner-boundary three-class probability maps (random disks of
radius 6-12 px covering about a fifth of the image, many touching, the exact
map blurred with sigma 1 and given Gaussian noise) of DSB size (520x696)
and 2048x2048 (about 3,000 nuclei), times:

* the baseline: ``skimage.measure.label`` of the thresholded interior
  (``p_interior > 0.5``), the cheapest possible instance step;
* ``three_class_to_labels`` with its defaults;
* its seed growth (``_grow_seeds``, the watershed started from seed rims)
  against ``skimage.segmentation.watershed`` started from the full seeds;
* ``binary_to_labels`` on the foreground probability ``1 - p_background``;
* ``otsu_labels`` on a synthetic fluorescence image of the same nuclei.

Each row gives seconds (best of ``--repeats``), megapixels per second, the
time as a multiple of the baseline's in the same run, and the pooled
accuracy at IoU 0.5 against the true labels (a sanity check: speed must not
come from wrong answers).

Run ``python benchmarks/postprocess.py`` (about a minute) or ``--quick`` for
a seconds-long smoke run on small images. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def best_time(fn, repeats: int) -> tuple[float, object]:
    """(smallest wall time in seconds over ``repeats`` calls, the last result)."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def synthetic_scene(shape, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(true labels, three-class probabilities, fluorescence image) of random disks."""
    from scipy import ndimage as ndi
    from skimage.draw import disk

    from nuclib.data.targets import three_class

    from skimage.segmentation import relabel_sequential

    rng = np.random.default_rng(seed)
    height, width = shape
    n = int(0.2 * height * width / (np.pi * 9.0 ** 2))
    labels = np.zeros(shape, np.int32)
    for i in range(1, n + 1):
        centre = (rng.uniform(0, height), rng.uniform(0, width))
        rr, cc = disk(centre, rng.uniform(6, 12), shape=shape)
        free = labels[rr, cc] == 0  # earlier nuclei win where disks overlap
        labels[rr[free], cc[free]] = i
    labels = relabel_sequential(labels)[0]
    probs = three_class(labels, boundary="inner", one_hot=True)
    probs = ndi.gaussian_filter(probs, (1, 1, 0))
    probs = np.clip(probs + rng.normal(0, 0.05, probs.shape).astype(np.float32), 1e-3, None)
    probs = (probs / probs.sum(axis=2, keepdims=True)).astype(np.float32)
    image = np.where(labels > 0, 150.0, 20.0) + rng.normal(0, 15, shape)
    image = np.clip(ndi.gaussian_filter(image, 1), 0, 255).astype(np.uint8)
    return labels, probs, image


def bench_postprocess(quick: bool = False, repeats: int | None = None) -> list[dict]:
    """Time the post-processing functions; return one row per (image size, method)."""
    from skimage.measure import label
    from skimage.segmentation import watershed

    from nuclib.metrics import matching_dataset
    from nuclib.postprocess import binary_to_labels, otsu_labels, three_class_to_labels
    from nuclib.postprocess.instances import _grow_seeds

    sizes = [(128, 160), (256, 256)] if quick else [(520, 696), (2048, 2048)]
    repeats = repeats or (1 if quick else 3)
    rows = []
    for shape in sizes:
        truth, probs, image = synthetic_scene(shape)
        interior, boundary = probs[..., 1], probs[..., 2]
        seeds = label(interior > 0.5, connectivity=1)
        mask = probs[..., 0] < 0.5
        methods = [
            ("baseline: skimage label(p_interior > 0.5)",
             lambda: label(interior > 0.5, connectivity=1)),
            ("three_class_to_labels (defaults)", lambda: three_class_to_labels(probs)),
            ("  seed growth: _grow_seeds (from seed rims)",
             lambda: _grow_seeds(boundary, seeds, mask)),
            ("  seed growth: skimage watershed (from full seeds)",
             lambda: watershed(boundary, markers=seeds, mask=mask, connectivity=1)),
            ("binary_to_labels(1 - p_background)",
             lambda: binary_to_labels(1.0 - probs[..., 0])),
            ("otsu_labels(synthetic fluorescence image)", lambda: otsu_labels(image)),
        ]
        megapixels = shape[0] * shape[1] / 1e6
        baseline = None
        for name, fn in methods:
            fn()  # warm-up: imports and first-call caches
            seconds, result = best_time(fn, repeats)
            baseline = baseline or seconds
            accuracy = matching_dataset([truth], [result], thresh=0.5).accuracy
            rows.append(dict(size=f"{shape[0]}x{shape[1]} ({int(truth.max())} nuclei)",
                             method=name, seconds=seconds, mps=megapixels / seconds,
                             ratio=seconds / baseline, ap50=accuracy))
    return rows


def print_table(rows: list[dict]) -> None:
    print("| image | method | seconds | MP/s | time / baseline | AP@0.5 |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['size']} | {r['method'].strip()} | {r['seconds']:.4f} | {r['mps']:.2f} | "
              f"{r['ratio']:.1f}x | {r['ap50']:.3f} |")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per row")
    args = parser.parse_args(argv)
    print_table(bench_postprocess(quick=args.quick, repeats=args.repeats))


if __name__ == "__main__":
    main()
