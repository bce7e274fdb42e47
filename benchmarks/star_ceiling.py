"""The best the star representation can score: ground truth → star maps → labels.

For each fluorescence image of DSB2018 ``val/`` this makes the star head's
target from the annotations (``targets.star``: object probability and 32 ray
distances), turns it back into labels with ``star_to_labels`` and scores them
against the annotations, pooled over the images, with nuclib's ``matching``:

* ``zoom only``: labels zoomed to 20-pixel nuclei (as ``dsb-star`` sees them)
  and back (``rescale_labels``, as the Segmenter does): what the zoom alone costs;
* ``star, at the model's zoom``: star maps of the zoomed labels, labels
  zoomed back: the ceiling of a star model trained at 20-pixel nuclei;
* ``star, at the image's scale``: star maps of the labels themselves.

A trained model that scores far below these is limited by its training,
not by the representation.

Run ``python benchmarks/star_ceiling.py`` (a minute) or ``--quick`` (10 images).
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import dsb2018_root, print_table

DSB = dsb2018_root()
THRESHOLDS = (0.5, 0.75, 0.9)


def run(quick: bool, n_rays: int = 32, diameter: float = 20.0) -> list[dict]:
    from nuclib.data.io import read_labels
    from nuclib.data.scale import median_diameter, rescale_labels
    from nuclib.data.targets import star
    from nuclib.evaluation import read_manifest
    from nuclib.metrics import matching
    from nuclib.postprocess.star import star_to_labels

    ids = [r["id"] for r in read_manifest(DSB, split="val", modality="fluorescence")]
    counts = {}
    for image_id in ids[:10] if quick else ids:
        truth = read_labels(DSB / "val" / "labels" / f"{image_id}.png").astype(np.int32)
        factor = diameter / median_diameter(truth)
        zoomed_shape = tuple(max(1, round(s * factor)) for s in truth.shape)
        zoomed = rescale_labels(truth, shape=zoomed_shape)
        results = {
            "zoom only": rescale_labels(zoomed, shape=truth.shape),
            "star, at the model's zoom": rescale_labels(
                star_to_labels(star(zoomed, n_rays=n_rays)), shape=truth.shape),
            "star, at the image's scale": star_to_labels(star(truth, n_rays=n_rays)),
        }
        for method, labels in results.items():
            for t, m in zip(THRESHOLDS, matching(truth, labels, thresh=list(THRESHOLDS))):
                tally = counts.setdefault((method, t), [0, 0, 0])
                tally[0] += m.tp
                tally[1] += m.fp
                tally[2] += m.fn
    rows = []
    for method in dict.fromkeys(m for m, _ in counts):
        row = {"labels": method, "images": len(ids[:10] if quick else ids)}
        for t in THRESHOLDS:
            tp, fp, fn = counts[(method, t)]
            row[f"AP@{t}"] = tp / max(tp + fp + fn, 1)
        rows.append(row)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 images")
    args = parser.parse_args(argv)
    print_table(run(args.quick), digits=3)


if __name__ == "__main__":
    main()
