"""Star post-processing (polygon NMS + rasterization) against StarDist's C++ on the same maps.

For each image of DSB2018 ``val/`` this gets one set of star maps (object
probability + 32 ray distances) and runs both

- ``nuclib.postprocess.star_to_labels`` (numba NMS with exact polygon
  areas, skimage rasterization), and
- ``stardist.nms.non_maximum_suppression`` + ``stardist.geometry.polygons_to_label``
  (StarDist's C++ NMS and its painter),

with the same thresholds (and no border exclusion, ``b=0``), interleaved, and reports whether the kept objects
agree (object counts; matched at IoU 0.5 and 0.9, as F1) and the speed ratio.

The maps come from a trained star model (``--model``, default ``dsb-star``,
run on each image at the model's scale, as the Segmenter does), or with
``--targets`` from the ground truth (``targets.star``) with noise added, so
the comparison runs without a trained model.

Run ``python benchmarks/star_nms.py`` (about a minute), ``--quick`` (8 images).
Needs ``stardist`` (in the test extra) and ``../shared/data/dsb2018``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from _common import print_table

DSB = Path(os.environ.get("NUCLIB_DSB2018",
                          Path(__file__).resolve().parents[2] / "shared" / "data" / "dsb2018"))


def _maps(model: str | None, quick: bool, rng) -> list[np.ndarray]:
    from nuclib.data import folder_pairs, read_image, read_labels
    from nuclib.data.targets import star

    pairs = folder_pairs(DSB / "val")[: 8 if quick else None]
    if model is None:
        out = []
        for _, lab in pairs:
            maps = star(read_labels(lab).astype(np.int32), n_rays=32)
            maps[..., 0] = np.clip(maps[..., 0] + rng.normal(0, 0.05, maps.shape[:2]), 0, 1)
            maps[..., 1:] *= rng.uniform(0.9, 1.1, maps[..., 1:].shape).astype(np.float32)
            out.append(maps.astype(np.float32))
        return out
    import nuclib

    seg = nuclib.load_pretrained(model)
    return [seg.predict_scaled(read_image(im)).probs for im, _ in pairs]


def _stardist(maps, prob_threshold, nms_threshold):
    from stardist.geometry import polygons_to_label
    from stardist.nms import non_maximum_suppression

    points, probs, dist = non_maximum_suppression(
        maps[..., 1:], maps[..., 0], grid=(1, 1), b=0, prob_thresh=prob_threshold,
        nms_thresh=nms_threshold, verbose=False)
    return polygons_to_label(dist, points, shape=maps.shape[:2], prob=probs)


def run(model: str | None, quick: bool, prob_threshold: float, nms_threshold: float):
    from nuclib.metrics import matching_dataset
    from nuclib.postprocess import star_to_labels

    maps_list = _maps(model, quick, np.random.default_rng(0))
    star_to_labels(maps_list[0])  # compile (numba caches to disk after the first run)
    ours, theirs, t_ours, t_theirs = [], [], 0.0, 0.0
    for maps in maps_list:
        start = time.perf_counter()
        ours.append(star_to_labels(maps, prob_threshold=prob_threshold,
                                   nms_threshold=nms_threshold))
        t_ours += time.perf_counter() - start
        start = time.perf_counter()
        theirs.append(_stardist(maps, prob_threshold, nms_threshold))
        t_theirs += time.perf_counter() - start
    n_ours = sum(int(y.max()) for y in ours)
    n_theirs = sum(int(y.max()) for y in theirs)
    at50 = matching_dataset(theirs, ours, thresh=0.5)
    at90 = matching_dataset(theirs, ours, thresh=0.9)
    megapixels = sum(m.shape[0] * m.shape[1] for m in maps_list) / 1e6
    return [{"maps": "model " + model if model else "targets + noise",
             "images": len(maps_list), "objects nuclib": n_ours, "objects stardist": n_theirs,
             "F1@0.5 (nuclib vs stardist)": at50.f1, "F1@0.9": at90.f1,
             "nuclib s/MP": t_ours / megapixels, "stardist s/MP": t_theirs / megapixels,
             "speed vs stardist": t_theirs / t_ours}]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="dsb-star", help="star model (zoo name or directory)")
    parser.add_argument("--targets", action="store_true",
                        help="maps from the ground truth plus noise instead of a model")
    parser.add_argument("--quick", action="store_true", help="8 images")
    parser.add_argument("--prob-threshold", type=float, default=0.5)
    parser.add_argument("--nms-threshold", type=float, default=0.4)
    args = parser.parse_args(argv)
    rows = run(None if args.targets else args.model, args.quick, args.prob_threshold,
               args.nms_threshold)
    print_table(rows, digits=3)


if __name__ == "__main__":
    main()
