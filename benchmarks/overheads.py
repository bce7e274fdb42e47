"""Where the time of one small image goes: ``Segmenter.segment`` profiled stage by stage.

Runs the default zoo model (``dsb-3class``, default engine) over the first
``--images`` fluorescence-sized images of ``val/`` (each image once untimed
first, then profiled with ``cProfile``) and prints the share of each stage:
the network passes (diameter estimate and prediction), post-processing,
normalization and zoom. A second table compares, in the same process, the
same images segmented with and without reuse of the estimate's labels of
its last pass (``ScaledPrediction.measured``): the baseline is
``labels_from`` on a prediction stripped of them, which post-processes the
same map again, as before.

Usage:
    python benchmarks/overheads.py                 # 12 images
    python benchmarks/overheads.py --images 4
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import pstats
import time

from _common import dsb2018_root, print_table

STAGES = {  # stage -> (file suffix, function) of the profile rows that measure it
    "network passes": ("nuclib/task.py", "_run"),
    "post-processing": ("nuclib/postprocess/postprocessor.py", "__call__"),
    "normalization": ("nuclib/task.py", "preprocess"),
    "labels back to the image's size": ("nuclib/data/scale.py", "rescale_labels"),
}


def profile(seg, images) -> list[dict]:
    profiler = cProfile.Profile()
    profiler.enable()
    start = time.perf_counter()
    for image in images:
        seg.segment(image, progress=False)
    total = time.perf_counter() - start
    profiler.disable()
    stats = pstats.Stats(profiler).stats
    rows = [{"stage": "segment, all", "calls": len(images), "s per image": total / len(images),
             "share": "100%"}]
    for stage, (suffix, function) in STAGES.items():
        found = [(v[1], v[3]) for (path, _, name), v in stats.items()
                 if path.endswith(suffix) and name == function]
        calls, seconds = sum(c for c, _ in found), sum(s for _, s in found)
        rows.append({"stage": stage, "calls": calls, "s per image": seconds / len(images),
                     "share": f"{100 * seconds / total:.0f}%"})
    return rows


def reuse(seg, images, rounds: int = 3) -> list[dict]:
    times = {"labels_from post-processes again (before)": 0.0,
             "the estimate's labels reused": 0.0}
    for _ in range(rounds):
        for image in images:
            pred = seg.predict_scaled(image, progress=False)
            start = time.perf_counter()
            seg.labels_from(dataclasses.replace(pred, measured=None))
            middle = time.perf_counter()
            seg.labels_from(pred)
            end = time.perf_counter()
            times["labels_from post-processes again (before)"] += middle - start
            times["the estimate's labels reused"] += end - middle
    base = times["labels_from post-processes again (before)"]
    return [{"labels_from": name, "ms per image": 1000 * t / (rounds * len(images)),
             "vs before": f"{base / max(t, 1e-9):.0f}x"} for name, t in times.items()]


def main(argv=None) -> None:
    import nuclib
    from nuclib.data.io import read_image

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=12, help="val/ images (default 12)")
    args = parser.parse_args(argv)
    files = sorted((dsb2018_root() / "val" / "images").glob("*.png"))[:args.images]
    images = [read_image(f) for f in files]
    seg = nuclib.load_pretrained("dsb-3class")
    for image in images:
        seg.segment(image, progress=False)  # conversion, compilation, first shapes
    print(f"{seg.name}, engine {seg.engine}, {len(images)} images "
          f"({min(i.shape[0] * i.shape[1] for i in images)} to "
          f"{max(i.shape[0] * i.shape[1] for i in images)} pixels)\n")
    print_table(profile(seg, images))
    print()
    print_table(reuse(seg, images))


if __name__ == "__main__":
    main()
