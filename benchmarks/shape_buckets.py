"""Shape buckets: images of many sizes against a compiled engine, with and without buckets.

A compiled engine (OpenVINO, the default) prepares every new input shape
once, and the size estimate zooms each image by its own factor, so a
stream of images gives the network many shapes. With ``tiling.buckets``
each side is padded up to its ``shape_bucket`` (at most 1/8 more), and the
shapes repeat more often; the price is the extra pixels. Buckets are off by
default; this measures whether they pay.

This segments a stream of crops of the fluorescence images of ``val/``
(each crop 70 to 100% of its image's sides, drawn with a fixed seed, so
nearly every crop has a size of its own), one Segmenter with buckets and one
without, image by image in turn, and prints seconds per megapixel, the
network input shapes each one saw (distinct and in all) and the pooled
AP@0.5 of both on the crops (nuclib's metrics).

Usage:
    python benchmarks/shape_buckets.py                 # 3 crops per image (162 images)
    python benchmarks/shape_buckets.py --crops 1 --model dsb-binary-mobilenet
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _common import print_table
from zoo import _val_set


def _crops(images, truths, count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        for image, truth in zip(images, truths):
            h, w = image.shape[:2]
            ch, cw = (int(side * rng.uniform(0.7, 1.0)) for side in (h, w))
            y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            yield image[y:y + ch, x:x + cw], truth[y:y + ch, x:x + cw]


def _counting(seg):
    """Wrap the network call of ``seg``'s inferencer; return the list it appends shapes to."""
    inferencer = seg.inferencer(progress=False)
    predict, shapes = inferencer._predict_batch, []

    def counted(batch):
        shapes.append(batch.shape[1:3])
        return predict(batch)

    inferencer._predict_batch = counted
    return shapes


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--crops", type=int, default=3, help="crops per val/ image")
    parser.add_argument("--model", default="dsb-3class")
    args = parser.parse_args(argv)

    import nuclib
    from nuclib.metrics import evaluate

    images, truths, _, _ = _val_set(False, "fluorescence")
    stream = list(_crops(images, truths, args.crops))
    routes = {}
    for name, buckets in (("buckets", True), ("no buckets (default)", False)):
        seg = nuclib.load_pretrained(args.model)
        seg.config["tiling"] = {**seg.config.to_dict()["tiling"], "buckets": buckets}
        seg.segment(images[0], progress=False)  # warm-up: conversion, compilation, threads
        routes[name] = (seg, _counting(seg))
    seconds = dict.fromkeys(routes, 0.0)
    labels = {name: [] for name in routes}
    for image, _ in stream:  # in turn, so that both share the machine's load
        for name, (seg, _) in routes.items():
            start = time.perf_counter()
            labels[name].append(seg.segment(image, progress=False))
            seconds[name] += time.perf_counter() - start
    megapixels = sum(im.shape[0] * im.shape[1] for im, _ in stream) / 1e6
    truth = [t for _, t in stream]
    base = seconds["no buckets (default)"]
    rows = []
    for name, (seg, shapes) in routes.items():
        score = evaluate(truth, labels[name]).summary
        rows.append({"route": name, "images": len(stream),
                     "distinct shapes": len(set(shapes)), "network calls": len(shapes),
                     "network MP": round(sum(h * w for h, w in shapes) / 1e6, 2),
                     "AP@0.5": round(float(score["ap50"]), 3),
                     "s/MP": round(seconds[name] / megapixels, 3),
                     "speed-up": f"{base / seconds[name]:.2f}x"})
    print(f"{args.model}, engine {routes['buckets'][0].engine}, {len(stream)} crops "
          f"({megapixels:.2f} MP)")
    print_table(rows)


if __name__ == "__main__":
    main()
