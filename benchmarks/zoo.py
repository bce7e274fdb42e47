"""Benchmark the pretrained zoo end to end on DSB2018 ``val/``, against the Otsu baseline.

For every bundled zoo model: validation scores on all of ``val/`` per
modality (pooled AP at IoU 0.5 / 0.75 / 0.9, F1@0.5, DSB score), measured by
nuclib's own metrics through the public ``Segmenter.segment`` path, and
end-to-end seconds per megapixel (reading excluded; normalization, tiled
prediction and post-processing included). ``nuclib.postprocess.otsu_labels``
runs on the same images in the same process as the baseline, so the table
reads as "model vs classical thresholding" in both accuracy and speed.

Models trained at one nucleus size measure it on every image (the default
path). A row "diameter from labels" zooms by the true median diameter
instead (an oracle: the best the size estimate could do, and the time
without its passes). ``--tta`` adds rows with test-time augmentation (the
8 rotations and mirrors averaged; 8x the time). ``--engine NAME``
(repeatable) adds a row per engine (``nuclib.engines``: ``openvino``,
``onnxruntime``; ``openvino:f32`` or ``openvino:bf16`` set the precision,
else it is ``auto``) beside the Keras one. A model's rows are timed image by
image in turn (interleaved), so their speed ratios share the machine's load.

``--setting KEY=VALUE`` (repeatable) adds a row per model with that
Segmenter setting changed (``nuclib.config.SegmenterConfig``), e.g.
``--setting estimate_probe_side=1024`` times the size estimate without its
probe window against the default.

``--stardist DIR`` adds StarDist's own ``predict_instances`` (a StarDist2D
model folder, e.g. trained by ``benchmarks/stardist_baseline.py``; images
percentile-normalized as StarDist does, inside the timing) to every model's
interleaved rows: the race of the speed target ("twice StarDist's speed on
the fluorescence images", ``--group fluorescence``).

Run ``python benchmarks/zoo.py`` (a few minutes per model on 2 cores) or
``--quick`` (3 images per modality); ``--model NAME_OR_DIR`` (repeatable)
scores those models instead of the bundled ones, e.g. a finished training
run's ``model/`` directory against the bundled model it should replace;
``--group MODALITY`` keeps one modality's images.
Needs ``../shared/data/dsb2018`` (or ``NUCLIB_DSB2018``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _common import dsb2018_root, print_table

DSB = dsb2018_root()


def _val_set(quick: bool, group: str | None = None):
    from nuclib.data import folder_pairs, read_image, read_labels
    from nuclib.evaluation import read_modalities

    modality = read_modalities(DSB)
    pairs = folder_pairs(DSB / "val")
    if group:
        pairs = [p for p in pairs if modality[p[0].stem] == group]
        if not pairs:
            raise SystemExit(f"no val/ images of modality {group!r}; expected one of "
                             f"{sorted(set(modality.values()))}")
    if quick:
        seen: dict[str, int] = {}
        keep = []
        for p in pairs:
            m = modality[p[0].stem]
            if seen.get(m, 0) < 3:
                keep.append(p)
                seen[m] = seen.get(m, 0) + 1
        pairs = keep
    images = [read_image(p) for p, _ in pairs]
    truths = [read_labels(lab) for _, lab in pairs]
    return images, truths, [p.stem for p, _ in pairs], [modality[p.stem] for p, _ in pairs]


def _score_rows(method: str, seconds: float, megapixels: float, report) -> list[dict]:
    rows = []
    for group, s in report.summary["groups"].items():
        rows.append({"method": method, "group": group, "images": s["n_images"],
                     "AP@0.5": s["ap50"], "AP@0.75": s["ap75"], "AP@0.9": s["ap90"],
                     "F1@0.5": s["f1_50"], "DSB score": s["dsb_score"],
                     "merges": s["merges"], "splits": s["splits"],
                     "s/MP": seconds / megapixels if group == "all" else ""})
    return rows


def _models(models) -> list[tuple[str, object]]:
    """``(label, load_pretrained argument)`` for the given names or directories.

    None means every bundled zoo model.
    """
    from nuclib.zoo import registry

    if models:
        return [(str(m), m) for m in models]
    return [(name, name) for name, entry in registry.load_registry().items()
            if entry.bundled_dir.is_dir()]


def _three_class_only(seg):
    """Segment with only the three-class channels of a three-class + distance model.

    Post-processed like the bundled ``dsb-3class`` (its tuned parameters), so
    the row says whether training with the extra distance channel lifted the
    three-class output itself.
    """
    from skimage.segmentation import relabel_sequential

    import nuclib
    from nuclib.data.scale import rescale_labels
    from nuclib.postprocess import three_class_to_labels

    params = nuclib.load_pretrained("dsb-3class").config["postprocess"]

    def segment(image, diameter):
        pred = seg.predict_scaled(image)
        labels = three_class_to_labels(pred.probs[..., :3], **params)
        if pred.factor == 1.0:
            return labels
        return relabel_sequential(rescale_labels(labels, shape=pred.shape))[0]

    return segment


def _stardist(folder):
    """``(label, segment(image, diameter))`` running StarDist2D's ``predict_instances`` from
    a model folder, with StarDist's percentile normalization (grey images, as its fluo models)."""
    from csbdeep.utils import normalize
    from stardist.models import StarDist2D

    folder = Path(folder)
    model = StarDist2D(None, name=folder.name, basedir=str(folder.parent))
    nms = model._instances_from_prediction  # NMS and rasterization: timed on its own

    def timed_nms(*args, **kwargs):
        start = time.perf_counter()
        try:
            return nms(*args, **kwargs)
        finally:
            segment.nms_seconds += time.perf_counter() - start

    model._instances_from_prediction = timed_nms

    def segment(image, diameter):
        grey = image.mean(axis=-1) if image.ndim == 3 else image
        return model.predict_instances(normalize(grey, 1, 99.8, axis=(0, 1)),
                                       show_tile_progress=False)[0]

    segment.nms_seconds = 0.0  # StarDist's time in its NMS, the part that depends on the weights
    return f"stardist {folder.name} ({model.keras_model.count_params():,} parameters)", segment


def _setting(text: str) -> tuple[str, object]:
    """``"KEY=VALUE"`` → ``(KEY, VALUE)``, the value read as JSON where it is JSON."""
    import json

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise SystemExit(f"--setting {text!r}: expected KEY=VALUE, e.g. estimate_probe_side=1024")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def run(quick: bool = False, with_variants: bool = True, tta: bool = False,
        models=None, engines=(), stardist=None, group: str | None = None,
        settings=()) -> list[dict]:
    """Score zoo models (default: every bundled one) and the Otsu baseline; return rows."""
    import nuclib
    from nuclib.data.scale import median_diameter
    from nuclib.metrics import evaluate
    from nuclib.postprocess import otsu_labels

    images, truths, names, groups = _val_set(quick, group)
    rival = _stardist(stardist) if stardist else None
    if rival:
        rival[1](images[0], None)  # warm-up: graph tracing
        rival[1].nms_seconds = 0.0
    megapixels = sum(im.shape[0] * im.shape[1] for im in images) / 1e6
    rows = []
    start = time.perf_counter()
    preds = [otsu_labels(im) for im in images]
    otsu_seconds = time.perf_counter() - start
    rows += _score_rows("otsu_labels (baseline)", otsu_seconds, megapixels,
                        evaluate(truths, preds, names=names, groups=groups))
    diameters = [median_diameter(t) for t in truths]
    for name, model in _models(models):
        seg = nuclib.load_pretrained(model)
        seg.segment(images[0])  # warm-up: graph tracing and thread pools
        variants = {name: lambda im, d: seg.segment(im)}
        if seg.config["diameter"] and with_variants:
            variants[f"{name}, diameter from labels"] = lambda im, d: seg.segment(im, diameter=d)
        if tta:
            variants[f"{name}, tta"] = lambda im, d: seg.segment(im, tta=True)
        if seg.head == "three_class_distance":
            variants[f"{name}, three-class channels only"] = _three_class_only(seg)
        for engine in engines:
            name_only, _, precision = engine.partition(":")
            other = nuclib.load_pretrained(model, engine=name_only)
            other.config["precision"] = precision or "auto"
            other.segment(images[0])  # warm-up: conversion and compilation
            variants[f"{name}, engine {engine}"] = (lambda s: lambda im, d: s.segment(im))(other)
        for text in settings:
            key, value = _setting(text)
            other = nuclib.load_pretrained(model)
            other.config[key] = value
            other.segment(images[0])  # warm-up
            variants[f"{name}, {key}={value}"] = (lambda s: lambda im, d: s.segment(im))(other)
        if rival:
            variants[rival[0]] = rival[1]
        seconds = dict.fromkeys(variants, 0.0)
        preds = {method: [] for method in variants}
        for im, d in zip(images, diameters):  # interleaved: the load hits every row alike
            for method, segment in variants.items():
                start = time.perf_counter()
                preds[method].append(segment(im, d))
                seconds[method] += time.perf_counter() - start
        if rival:
            print(f"{rival[0]}: {rival[1].nms_seconds / seconds[rival[0]]:.0%} of its time in "
                  f"NMS and rasterization (_instances_from_prediction)", flush=True)
            rival[1].nms_seconds = 0.0
        for method in variants:
            rows += _score_rows(method, seconds[method], megapixels,
                                evaluate(truths, preds[method], names=names, groups=groups))
            print(f"{method}: {seconds[method] / megapixels:.2f} s/MP end to end, "
                  f"{seconds[method] / seconds[name]:.2f}x the default path's time, "
                  f"{seconds[method] / max(otsu_seconds, 1e-9):.0f}x the Otsu baseline's",
                  flush=True)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 images per modality")
    parser.add_argument("--no-variants", action="store_true",
                        help="only the default path of each model (no oracle-diameter rows)")
    parser.add_argument("--tta", action="store_true",
                        help="add test-time-augmentation rows (8x the time per model)")
    parser.add_argument("--model", action="append", metavar="NAME_OR_DIR",
                        help="score this zoo name or model directory (repeatable) instead of "
                             "every bundled model, e.g. a new run against the bundled one")
    parser.add_argument("--engine", action="append", default=[], metavar="NAME",
                        help="also score each model under this engine (repeatable): "
                             "openvino, onnxruntime; openvino:f32 / openvino:bf16 fix the "
                             "precision")
    parser.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE",
                        help="also score each model with this Segmenter setting changed "
                             "(repeatable), e.g. estimate_probe_side=1024")
    parser.add_argument("--stardist", metavar="DIR",
                        help="also time StarDist2D's predict_instances from this model folder "
                             "(benchmarks/stardist_baseline.py trains one) beside each model")
    parser.add_argument("--group", metavar="MODALITY",
                        help="only this modality's images (fluorescence, histology, brightfield)")
    args = parser.parse_args(argv)
    rows = run(quick=args.quick, with_variants=not args.no_variants, tta=args.tta,
               models=args.model, engines=args.engine, stardist=args.stardist, group=args.group,
               settings=args.setting)
    print_table(rows, digits=3)


if __name__ == "__main__":
    main()
