"""Approximate tiles against the whole image, for a model that pools over its whole input.

EfficientNet's squeeze-and-excitation blocks average over their whole
input, so no overlap makes tiles reproduce whole-image prediction, and
``TiledInferencer`` tiles such models approximately (each tile averages
over itself; ``nuclib.postprocess.tiling.default_overlap``). This measures
what that costs on the ``val/`` images that need several tiles at the
model's scale: each is predicted with the default tiles and as one tile
(a tile as large as the zoomed image), at the same zoom, and both are
post-processed and scored by nuclib's metrics.

Columns: images that need several tiles, the largest and mean probability
difference, the share of pixels whose most probable class differs, and
pooled AP@0.5 / AP@0.75 of both on those images.

Usage:
    python benchmarks/approximate_tiles.py --model runs/architectures/efficientnet_unet/model
    python benchmarks/approximate_tiles.py --model DIR --tile-size 512

Needs ``../shared/data/dsb2018`` (or ``NUCLIB_DSB2018``).
"""

from __future__ import annotations

import argparse
import math
import warnings

import numpy as np

from _common import dsb2018_root, print_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="a model directory or zoo name")
    parser.add_argument("--tile-size", type=int, default=1024, help="the tiles to compare")
    args = parser.parse_args()

    import nuclib
    from nuclib.data import folder_pairs, read_image, read_labels
    from nuclib.metrics import evaluate
    from nuclib.prediction import ScaledPrediction

    seg = nuclib.load_pretrained(args.model, engine="keras")
    tiler = seg.inferencer(tile_size=args.tile_size, progress=False)
    print(f"{args.model}: {tiler!r}, approximate because of {tiler.approximate_layer}")
    truths, tiled_labels, whole_labels, diffs = [], [], [], []
    for image_path, label_path in folder_pairs(dsb2018_root() / "val"):
        image = read_image(image_path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the approximate-tiles warning, once per image
            tiled = seg.predict_scaled(image, progress=False, tile_size=args.tile_size)
        height, width = tiled.probs.shape[:2]
        if max(height, width) <= args.tile_size:
            continue  # one tile: exact
        side = math.ceil(max(height, width) / tiler.multiple) * tiler.multiple
        whole = seg.predict_scaled(image, diameter=tiled.diameter, progress=False,
                                   tile_size=side)
        assert whole.factor == tiled.factor
        diff = np.abs(tiled.probs - whole.probs)
        flips = np.mean(tiled.probs.argmax(-1) != whole.probs.argmax(-1))
        diffs.append((diff.max(), diff.mean(), flips))
        truths.append(read_labels(label_path))
        tiled_labels.append(seg.labels_from(ScaledPrediction(tiled.probs, tiled.factor,
                                                             tiled.shape, tiled.diameter)))
        whole_labels.append(seg.labels_from(ScaledPrediction(whole.probs, whole.factor,
                                                             whole.shape, whole.diameter)))
        print(f"{image_path.stem[:12]}: {width}x{height} at the model's scale, "
              f"max |dp| {diff.max():.3g}, argmax differs on {flips:.3%}", flush=True)
    if not truths:
        print(f"no val/ image needs more than one {args.tile_size} px tile")
        return
    rows = []
    for name, labels in (("tiled", tiled_labels), ("one tile", whole_labels)):
        summary = evaluate(truths, labels).summary
        rows.append({"prediction": name, "images": len(truths),
                     "AP@0.5": round(summary["ap50"], 4), "AP@0.75": round(summary["ap75"], 4)})
    diffs = np.array(diffs)
    rows[0].update({"max |dp|": f"{diffs[:, 0].max():.3g}", "mean |dp|": f"{diffs[:, 1].mean():.3g}",
                    "argmax differs": f"{diffs[:, 2].mean():.3%}"})
    print_table(rows)


if __name__ == "__main__":
    main()
