"""What the size estimate costs in network input: passes and megapixels per setting.

For the ``val/`` images of one modality, segments every image with the
default zoo model once per ``estimate_probe_side`` given, and once with the
nucleus size taken from the annotations (the oracle, which needs no
estimate), and counts the network passes and the megapixels they read
(each pass's input after its zoom). Timing-free, so it reads the same on a
busy machine; ``zoo.py --setting`` times the same settings.

Usage:
    python benchmarks/estimate_passes.py                         # fluorescence, probe 256 vs 1024
    python benchmarks/estimate_passes.py --group histology --probe 256 --probe 512
"""

from __future__ import annotations

import argparse

from _common import print_table
from zoo import _val_set


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--group", default="fluorescence",
                        help="modality of val/ (fluorescence, histology, brightfield)")
    parser.add_argument("--probe", type=int, action="append",
                        help="estimate_probe_side to count (repeatable; default 256 and 1024)")
    parser.add_argument("--model", default="dsb-3class")
    args = parser.parse_args(argv)

    import nuclib
    from nuclib.data.scale import median_diameter
    from nuclib.metrics import evaluate
    from nuclib.task import SegmentationTask

    images, truths, _, _ = _val_set(False, args.group)
    passes = []
    run = SegmentationTask._run

    def counted(self, x, factor, *rest, **kw):
        passes.append(x.shape[0] * x.shape[1] * factor * factor)
        return run(self, x, factor, *rest, **kw)

    SegmentationTask._run = counted
    seg = nuclib.load_pretrained(args.model)
    estimated = [None] * len(images)
    settings = [(f"estimate_probe_side={p}", p, estimated) for p in args.probe or (256, 1024)]
    settings.append(("diameter from labels (oracle)", None, [median_diameter(t) for t in truths]))
    rows = []
    for label, probe, diameters in settings:
        if probe is not None:
            seg.config["estimate_probe_side"] = probe
        passes.clear()
        labels = [seg.segment(im, diameter=d, progress=False) for im, d in zip(images, diameters)]
        rows.append({"setting": label, "images": len(images), "passes": len(passes),
                     "network MP": round(sum(passes) / 1e6, 2),
                     "AP@0.5": round(float(evaluate(truths, labels).summary["ap50"]), 3)})
    megapixels = sum(im.shape[0] * im.shape[1] for im in images) / 1e6
    print(f"{args.model}, {len(images)} {args.group} images of val/ ({megapixels:.2f} MP)")
    print_table(rows)


if __name__ == "__main__":
    main()
