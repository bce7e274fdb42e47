"""Benchmark nuclib's instance metrics against StarDist's, in the same process.

Sections (one function each, run in order by ``main``):

* ``bench_matching_dsb``: ``nuclib.metrics.matching`` vs
  ``stardist.matching.matching`` on the DSB2018 validation label images (all
  67) against perturbed versions of themselves (shifted and dilated, eroded,
  merged, split, with missed nuclei), at IoU 0.5 and at the ten DSB
  thresholds 0.5:0.05:0.95 in one call;
* ``bench_matching_large``: the same on a synthetic 2048x2048 label image with
  ~3,000 nuclei (target: nuclib at least as fast as StarDist; the overlap
  table is sparse and built in one pass, so it scores in well under a second);
* ``bench_postprocess``: ``nuclib.postprocess.three_class_to_labels`` (and the
  binary and Otsu routes) in megapixels per second on synthetic probability
  maps of 520x696 and 2048x2048, as a multiple of the time of
  ``skimage.measure.label`` on the thresholded interior in the same run.

Figures are StarDist's time divided by nuclib's (> 1: nuclib is faster), plus
the absolute times; every timed call is also checked to give identical counts.

Run ``python benchmarks/metrics.py`` (about a minute on 2 cores; StarDist's
dense Hungarian matching on the large image takes most of it) or ``--quick``
for a seconds-long smoke run on 5 validation images and a 512x512 image
(the post-processing section adds about a minute at full size).
Needs ``stardist`` (in the ``test`` extra) and ``../shared/data/dsb2018``
(or ``NUCLIB_DSB2018``).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

DSB = Path(os.environ.get("NUCLIB_DSB2018",
                          Path(__file__).resolve().parents[2] / "shared" / "data" / "dsb2018"))
DSB_THRESHOLDS = [round(0.5 + 0.05 * k, 2) for k in range(10)]


# --------------------------------------------------------------------------- helpers
def best_time(fn, repeats: int) -> tuple[float, object]:
    """Smallest wall time (seconds) of ``repeats`` calls of ``fn``, and its last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def print_table(title: str, rows: list[dict]) -> None:
    """Print ``rows`` (dicts with the same keys) as a Markdown table under a heading."""
    print(f"\n### {title}\n")
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        cells = [f"{v:.3g}" if isinstance(v, float) else str(v) for v in row.values()]
        print("| " + " | ".join(cells) + " |")


def synthetic_labels(shape=(2048, 2048), n: int = 3000, seed: int = 0) -> np.ndarray:
    """Random disks (radius 7-13 px) dropped one after another; later ones occlude."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint32)
    for i in range(1, n + 1):
        r = int(rng.integers(7, 14))
        cy, cx = int(rng.integers(0, shape[0])), int(rng.integers(0, shape[1]))
        y0, y1 = max(cy - r, 0), min(cy + r + 1, shape[0])
        x0, x1 = max(cx - r, 0), min(cx + r + 1, shape[1])
        yy, xx = np.ogrid[y0 - cy:y1 - cy, x0 - cx:x1 - cx]
        labels[y0:y1, x0:x1][yy ** 2 + xx ** 2 <= r * r] = i
    return labels


def perturb(labels: np.ndarray, kind: str, seed: int = 0) -> np.ndarray:
    """A plausible wrong prediction: ``shift`` (+ dilation and 5% missed), ``erode``,
    ``merge`` (every 10th nucleus joins another) or ``split`` (nuclei cut in two)."""
    from scipy import ndimage as ndi
    from skimage.segmentation import expand_labels

    rng = np.random.default_rng(seed)
    ids = np.unique(labels)[1:]
    if kind == "shift":
        out = expand_labels(np.roll(labels, (2, 1), axis=(0, 1)), 1)
        return np.where(np.isin(out, rng.choice(ids, len(ids) // 20 + 1)), 0, out)
    if kind == "erode":
        return np.where(ndi.grey_erosion(labels, size=3) == labels, labels, 0)
    if kind == "merge":
        lut = np.arange(int(labels.max()) + 1, dtype=labels.dtype)
        lut[ids[::10]] = rng.choice(ids, len(ids[::10]))
        return lut[labels]
    if kind == "split":
        cols = np.broadcast_to(np.arange(labels.shape[1]), labels.shape)
        centre = ndi.mean(cols, labels, index=np.arange(int(labels.max()) + 1))
        centre = np.nan_to_num(centre).astype(np.int64)
        right = (labels > 0) & (cols > centre[labels])
        return np.where(right, labels.astype(np.int64) + int(labels.max()), labels)
    raise ValueError(f"unknown perturbation {kind!r}")


def _same_counts(ours, theirs) -> bool:
    ours = [ours] if hasattr(ours, "tp") else ours
    theirs = [theirs] if hasattr(theirs, "tp") else theirs  # a namedtuple is a tuple too
    return all((a.tp, a.fp, a.fn) == (int(b.tp), int(b.fp), int(b.fn))
               for a, b in zip(ours, theirs, strict=True))


def _compare(pairs, thresh, repeats: int) -> dict:
    """Time nuclib and StarDist on the same list of (truth, prediction) pairs."""
    from stardist.matching import matching as stardist_matching

    from nuclib.metrics import matching

    # StarDist compiles its overlap kernel with numba once per pair of label
    # dtypes: one untimed call per dtype pair (for both libraries) keeps that out.
    seen = {}
    for t, p in pairs:
        seen.setdefault((t.dtype, p.dtype), (t, p))
    for t, p in seen.values():
        matching(t, p, thresh=thresh)
        stardist_matching(t, p, thresh=thresh)
    t_nuclib, ours = best_time(lambda: [matching(t, p, thresh=thresh) for t, p in pairs],
                               repeats)
    t_stardist, theirs = best_time(
        lambda: [stardist_matching(t, p, thresh=thresh) for t, p in pairs], repeats)
    return {"thresholds": "0.5" if np.isscalar(thresh) else "0.5:0.05:0.95",
            "nuclib s": t_nuclib, "stardist s": t_stardist,
            "speed-up (stardist / nuclib)": t_stardist / t_nuclib,
            "identical counts": all(_same_counts(a, b) for a, b in zip(ours, theirs))}


# --------------------------------------------------------------------------- sections
def bench_matching_dsb(quick: bool = False, repeats: int | None = None) -> list[dict]:
    """``matching`` on DSB2018 validation labels vs perturbed copies: nuclib vs StarDist."""
    from nuclib.data.io import read_labels

    files = sorted((DSB / "val" / "labels").glob("*.png"))
    if not files:
        raise FileNotFoundError(f"no DSB2018 validation labels in {DSB}/val/labels; set "
                                "NUCLIB_DSB2018")
    files = files[:5] if quick else files
    repeats = repeats or (1 if quick else 3)
    kinds = ["shift", "erode", "merge", "split"]
    pairs = []
    for i, f in enumerate(files):
        y = read_labels(f)
        pairs.append((y, perturb(y, kinds[i % len(kinds)], seed=i)))
    rows = []
    for thresh in (0.5, DSB_THRESHOLDS):
        row = {"images": len(pairs), **_compare(pairs, thresh, repeats)}
        row["nuclib ms/image"] = 1000 * row["nuclib s"] / len(pairs)
        rows.append(row)
    return rows


def bench_matching_large(quick: bool = False, repeats: int | None = None) -> list[dict]:
    """``matching`` on a synthetic 2048x2048 image with ~3,000 nuclei: nuclib vs StarDist."""
    shape, n = ((512, 512), 190) if quick else ((2048, 2048), 3000)
    repeats = repeats or (1 if quick else 2)
    y = synthetic_labels(shape, n)
    y_pred = perturb(y, "shift")
    rows = []
    for thresh in (0.5, DSB_THRESHOLDS):
        rows.append({"image": f"{shape[0]}x{shape[1]}",
                     "nuclei": int(len(np.unique(y)) - 1),
                     **_compare([(y, y_pred)], thresh, repeats)})
    return rows


def _three_class_probs(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """A plausible network output: the exact inner-boundary three-class map,
    blurred (sigma 1) and noised (sd 0.05), renormalized to sum to 1."""
    from scipy import ndimage as ndi

    from nuclib.data.targets import three_class

    rng = np.random.default_rng(seed)
    probs = ndi.gaussian_filter(three_class(labels, boundary="inner", one_hot=True), (1, 1, 0))
    probs = np.clip(probs + rng.normal(0, 0.05, probs.shape).astype(np.float32), 1e-3, None)
    return (probs / probs.sum(axis=2, keepdims=True)).astype(np.float32)


def bench_postprocess(quick: bool = False, repeats: int | None = None) -> list[dict]:
    """``three_class_to_labels`` (and the binary / Otsu routes) in megapixels per second.

    On synthetic probability maps of DSB size (520x696) and 2048x2048 (~3,000
    nuclei); the baseline is the cheapest instance step, ``skimage.measure.label``
    of the thresholded interior. The seed growth is also timed against
    skimage's watershed started from the full seeds, and the two steps of seed
    splitting against what they replaced: the seeds' distance transform
    against scipy's, and the flood from its maxima against a watershed of
    every seed. AP@0.5 (pooled
    tp / (tp + fp + fn) against the true labels) checks speed is not bought
    with wrong answers.
    """
    from skimage.measure import label
    from skimage.segmentation import watershed

    from nuclib.metrics import matching
    from nuclib.postprocess import binary_to_labels, otsu_labels, three_class_to_labels
    from nuclib.postprocess.instances import _distance, _flood_from_peaks, _grow_seeds, _max3x3
    from scipy import ndimage as ndi

    sizes = [(128, 160), (256, 256)] if quick else [(520, 696), (2048, 2048)]
    repeats = repeats or (1 if quick else 3)
    rows = []
    for shape in sizes:
        # the density of bench_matching_large: 3,000 nuclei per 2048x2048
        truth = synthetic_labels(shape, n=max(int(3000 * shape[0] * shape[1] / 2048 ** 2), 1))
        probs = _three_class_probs(truth)
        interior, boundary = probs[..., 1], probs[..., 2]
        seeds = label(interior > 0.5, connectivity=1)
        foreground = probs[..., 0] < 0.5
        seed_mask = interior > 0.5
        distance = _distance(seed_mask)
        reference = ndi.distance_transform_edt(seed_mask)
        peaks = seed_mask & (distance == _max3x3(distance))
        peak_ids, n_peaks = ndi.label(peaks, structure=np.ones((3, 3), bool))
        rng = np.random.default_rng(1)
        image = np.clip(np.where(truth > 0, 150.0, 20.0) + rng.normal(0, 15, shape), 0, 255)
        methods = [
            ("baseline: skimage label(p_interior > 0.5)",
             lambda: label(interior > 0.5, connectivity=1)),
            ("three_class_to_labels (defaults)", lambda: three_class_to_labels(probs)),
            ("three_class_to_labels (seed_split_height 3, as dsb-3class)",
             lambda: three_class_to_labels(probs, seed_split_height=3.0)),
            ("seed distance: scipy distance_transform_edt",
             lambda: ndi.distance_transform_edt(seed_mask)),
            ("seed distance: OpenCV's exact transform (nuclib)", lambda: _distance(seed_mask)),
            ("seed splitting's flood: watershed of every seed",
             lambda: watershed(-distance, markers=peak_ids, mask=seed_mask, connectivity=1)),
            ("seed splitting's flood: seeds with several maxima only (nuclib)",
             lambda: _flood_from_peaks(distance, peak_ids, n_peaks, peaks, seed_mask)),
            ("seed growth from seed rims (nuclib)", lambda: _grow_seeds(boundary, seeds,
                                                                        foreground)),
            ("seed growth from full seeds (skimage watershed)",
             lambda: watershed(boundary, markers=seeds, mask=foreground, connectivity=1)),
            ("binary_to_labels(1 - p_background)", lambda: binary_to_labels(1 - probs[..., 0])),
            ("otsu_labels(synthetic fluorescence)", lambda: otsu_labels(image.astype(np.uint8))),
        ]
        megapixels = shape[0] * shape[1] / 1e6
        baseline = None
        for name, fn in methods:
            fn()  # untimed: imports and first-call costs
            seconds, result = best_time(fn, repeats)
            baseline = baseline or seconds
            rows.append({"image": f"{shape[0]}x{shape[1]}",
                         "nuclei": int(len(np.unique(truth)) - 1),
                         "method": name, "seconds": seconds, "MP/s": megapixels / seconds,
                         "time / baseline": seconds / baseline,
                         # distance maps are no labels: they are compared with scipy's instead
                         "AP@0.5": matching(truth, result, thresh=0.5).accuracy
                         if np.issubdtype(result.dtype, np.integer) else
                         f"max Δ {np.abs(result - reference).max():.1e}"})
    return rows


SECTIONS = [
    ("matching on DSB2018 validation images", bench_matching_dsb),
    ("matching on a large synthetic image", bench_matching_large),
    ("post-processing: probabilities to labels", bench_postprocess),
]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed repeats per measurement (best is kept)")
    args = parser.parse_args(argv)
    for title, section in SECTIONS:
        print_table(title, section(quick=args.quick, repeats=args.repeats))


if __name__ == "__main__":
    main()
