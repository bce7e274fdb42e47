"""How much the post-processing threshold search leaves on the table for ``dsb-3class``.

Predicts every DSB2018 ``val/`` image once with the bundled model (in its
zoomed space, as ``finalize_model`` does), then scores pooled AP@0.5 of the
post-processing on those cached probabilities three ways, in one process:

* the thresholds recorded in the model's ``nuclib.json`` (the baseline);
* ``optimize_thresholds`` with its default grid, started from the defaults
  (what the training recipe ran);
* a wider grid (lower seed thresholds, larger ``min_size``, ``min_seed_size``,
  ``seed_split_height``), started from the recorded thresholds;
* the recorded thresholds with seed splitting switched off and on
  (``seed_split_height`` 0 and 2 px), with the post-processing time per
  megapixel of each, as a ratio to the recorded thresholds' time.

Scores are in the model's space (labels zoomed to the prediction), like the
search itself, so they differ slightly from the end-to-end scores of
``benchmarks/zoo.py``. Tuning and scoring on the same split is optimistic
for every row alike.

Run ``python benchmarks/thresholds.py`` (about two minutes on 2 cores) or
``--quick`` (10 images).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from _common import median_seconds, print_table

DSB = Path(os.environ.get("NUCLIB_DSB2018",
                          Path(__file__).resolve().parents[2] / "shared" / "data" / "dsb2018"))

WIDE_GRID = {
    "seed_threshold": (0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5),
    "boundary_boost": (0.5, 0.75, 1.0, 1.5),
    "foreground_threshold": (0.4, 0.5, 0.6, 0.7, 0.8),
    "min_size": (16, 32, 48, 64),
    "min_seed_size": (1, 4, 8, 16),
    "seed_split_height": (0.0, 1.5, 2.0, 2.5, 3.0),
}


def run(quick: bool = False) -> list[dict]:
    """Score the recorded, default-grid and wide-grid thresholds; return table rows."""
    import nuclib
    from nuclib.data.io import folder_pairs, read_image, read_labels
    from nuclib.data.scale import rescale_labels
    from nuclib.metrics import matching_dataset
    from nuclib.postprocess import optimize_thresholds

    seg = nuclib.load_pretrained("dsb-3class", source="bundled")
    pairs = folder_pairs(DSB / "val")[: 10 if quick else None]
    preds = [seg.predict_scaled(read_image(p)) for p, _ in pairs]
    truths = [rescale_labels(read_labels(lab), shape=pred.probs.shape[:2])
              for (_, lab), pred in zip(pairs, preds)]
    probs = [pred.probs for pred in preds]
    recorded = dict(seg.config["postprocess"])

    megapixels = sum(p.shape[0] * p.shape[1] for p in probs) / 1e6

    def ap50(params: dict) -> float:
        labels = [seg.postprocess(p, **params) for p in probs]
        return matching_dataset(truths, labels, thresh=0.5).accuracy

    def seconds_per_mp(params: dict) -> float:
        return median_seconds(lambda: [seg.postprocess(p, **params) for p in probs],
                              warmup=0, repeats=3) / megapixels

    baseline, baseline_time = ap50(recorded), seconds_per_mp(recorded)
    rows = [{"thresholds": "recorded in nuclib.json", "AP@0.5": baseline, "vs recorded": 1.0,
             "evaluations": 1, "seconds": 0.0, "post s/MP": baseline_time,
             "vs recorded time": 1.0, "params": recorded}]
    for height in (0.0, 2.0):
        params = dict(recorded, seed_split_height=height)
        score, spent = ap50(params), seconds_per_mp(params)
        rows.append({"thresholds": f"recorded, seed_split_height={height:g}", "AP@0.5": score,
                     "vs recorded": score / baseline, "evaluations": 1, "seconds": 0.0,
                     "post s/MP": spent, "vs recorded time": spent / baseline_time,
                     "params": params})
    for name, kwargs in (("default grid, from defaults", {}),
                         ("wide grid, from recorded", {"grid": WIDE_GRID, "base": recorded})):
        start = time.perf_counter()
        found = optimize_thresholds(probs, truths, kind="three_class", **kwargs)
        seconds = time.perf_counter() - start
        score = ap50(found["params"])
        rows.append({"thresholds": name, "AP@0.5": score, "vs recorded": score / baseline,
                     "evaluations": found["n_evaluations"], "seconds": seconds,
                     "post s/MP": "", "vs recorded time": "", "params": found["params"]})
    print(f"{len(pairs)} val images ({megapixels:.1f} MP in the model's zoomed space), "
          "scored there")
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 images")
    args = parser.parse_args(argv)
    print_table(run(quick=args.quick), digits=4)


if __name__ == "__main__":
    main()
