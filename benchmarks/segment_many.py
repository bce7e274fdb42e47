"""``segment_many`` against a loop of ``segment``: post-processing hidden behind the network.

``Segmenter.segment_many`` post-processes each image on a second thread while
the network predicts the next one. This times both routes on the same
images (the first ``--images`` of ``val/``, default model and engine),
alternating rounds so that both share the machine's load, checks that the
labels are identical, and prints seconds per image and the speed-up.

Usage:
    python benchmarks/segment_many.py                    # 24 images, 3 rounds
    python benchmarks/segment_many.py --images 8 --rounds 1 --model dsb-binary-mobilenet
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _common import dsb2018_root, print_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default="dsb-3class")
    args = parser.parse_args()

    import nuclib
    from nuclib.data import folder_pairs, read_image

    images = [read_image(p) for p, _ in folder_pairs(dsb2018_root() / "val")[:args.images]]
    seg = nuclib.load_pretrained(args.model)
    seg.segment(images[0], progress=False)  # warm-up: conversion, compilation, threads
    routes = {
        "loop of segment": lambda: [seg.segment(im, progress=False) for im in images],
        "segment_many": lambda: seg.segment_many(images, progress=False),
    }
    seconds = {name: [] for name in routes}
    labels = {}
    for _ in range(args.rounds):
        for name, route in routes.items():
            start = time.perf_counter()
            labels[name] = route()
            seconds[name].append(time.perf_counter() - start)
    same = all(np.array_equal(a, b) for a, b in zip(*labels.values()))
    base = np.median(seconds["loop of segment"])
    megapixels = sum(im.shape[0] * im.shape[1] for im in images) / 1e6
    print(f"{args.model}, engine {seg.engine}, {len(images)} images ({megapixels:.2f} MP), "
          f"{args.rounds} rounds; identical labels: {same}")
    print_table([{"route": name, "s per image": round(np.median(s) / len(images), 4),
                  "s/MP": round(np.median(s) / megapixels, 3),
                  "speed-up": f"{base / np.median(s):.2f}x"} for name, s in seconds.items()])
    if not same:
        raise SystemExit("the routes disagree")


if __name__ == "__main__":
    main()
