"""Evaluate two models and the Otsu baseline on DSB2018 validation images.

Segments the validation split with

* the pretrained ``dsb-3class`` (three-class U-Net),
* a second model: the pretrained ``dsb-binary-mobilenet`` if this nuclib
  has it, else the U-Net trained by ``train_unet.py`` (trained here first if
  it is not on disk yet),
* the classical baseline ``nuclib.postprocess.otsu_labels`` (smoothing, Otsu
  threshold, distance watershed; no learning),

scores every method with ``nuclib.metrics`` (pooled over images, per
modality) and draws:

* ``evaluate_scores.png``: accuracy tp / (tp + fp + fn) against the IoU
  threshold, for all images and per modality;
* ``evaluate_error_map.png``: matched, missed and extra nuclei of each method
  on one validation image (``nuclib.viz.error_map``).

Run ``python examples/evaluate_models.py`` (about a minute on a 2-core CPU)
or ``--fast`` (two small crops, seconds).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from _common import Example, dsb_root, figure, pretrained_name

from nuclib.evaluation import read_modalities

IOU_THRESHOLDS = np.round(np.arange(0.5, 0.951, 0.05), 2).tolist()
SECOND_MODEL = "dsb-binary-mobilenet"


def load_models(ex: Example) -> dict:
    """``{display name: segment function}`` for the two models and the baseline."""
    import nuclib
    from nuclib.postprocess import otsu_labels

    first = nuclib.load_pretrained(pretrained_name())
    methods = {first.name: first.segment}
    available = {m["name"] for m in nuclib.list_pretrained() if m["bundled"]}
    if SECOND_MODEL in available:
        second = nuclib.load_pretrained(SECOND_MODEL)
    else:
        folder = ex.work / "example-unet"
        if not (folder / "nuclib.json").is_file():
            print(f"{SECOND_MODEL} is not bundled and {folder} does not exist yet: "
                  "training it with train_unet.py first")
            from train_unet import train_small

            train_small(ex)
        second = nuclib.load_pretrained(folder)
    methods[second.name] = second.segment
    methods["Otsu baseline"] = otsu_labels
    return methods


def main(argv=None) -> None:
    ex = Example(__doc__.splitlines()[0], argv)

    from nuclib import viz
    from nuclib.data import folder_pairs, read_image, read_labels
    from nuclib.metrics import evaluate, matching_dataset

    methods = load_models(ex)
    root = dsb_root()
    pairs = folder_pairs(root / "val")
    if ex.fast:
        pairs = pairs[:2]
    modality = read_modalities(root)
    images = [read_image(p) for p, _ in pairs]
    truths = [read_labels(p) for _, p in pairs]
    if ex.fast:
        images, truths = [im[:96, :96] for im in images], [t[:96, :96] for t in truths]
    groups = [modality.get(Path(p).stem, "all") for p, _ in pairs]
    megapixels = sum(t.size for t in truths) / 1e6
    print(f"{len(pairs)} validation images ({megapixels:.1f} megapixels): "
          + ", ".join(f"{g} {groups.count(g)}" for g in sorted(set(groups))))

    predictions, curves, reports = {}, {}, {}
    for name, segment in methods.items():
        started = time.perf_counter()
        predictions[name] = [segment(im) for im in images]
        seconds = time.perf_counter() - started
        report = evaluate(truths, predictions[name], names=[Path(p).stem for p, _ in pairs],
                          groups=groups, thresholds=(0.5, 0.75, 0.9))
        reports[name] = report
        print(f"\n== {name}: {seconds / megapixels:.2f} s per megapixel")
        for group, row in report.summary["groups"].items():
            print(f"  {group:>13} ({row['n_images']:>2} images): AP@0.5 {row['ap50']:.3f}  "
                  f"AP@0.75 {row['ap75']:.3f}  AP@0.9 {row['ap90']:.3f}  "
                  f"DSB score {row['dsb_score']:.3f}")
        curves[name] = {group: matching_dataset([t for t, g in zip(truths, groups)
                                                 if group in ("all", g)],
                                                [p for p, g in zip(predictions[name], groups)
                                                 if group in ("all", g)],
                                                thresh=IOU_THRESHOLDS)
                        for group in ["all"] + sorted(set(groups) - {"all"})}

    panels = list(next(iter(curves.values())))
    fig = figure((4.2 * len(panels), 3.8))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, group in zip(axes, panels):
        n = len(groups) if group == "all" else groups.count(group)
        viz.score_curve({name: by_group[group] for name, by_group in curves.items()}, ax=ax,
                        title=f"{group} ({n} image{'s' if n > 1 else ''})")
    ex.save(fig, "evaluate_scores")

    # a typical image for the first model: at least 20 nuclei, its AP@0.5 nearest the overall one
    first = reports[next(iter(methods))]
    overall = first.summary["groups"]["all"]["ap50"]
    candidates = [k for k, row in enumerate(first.rows) if row["n_true"] >= 20] or \
        list(range(len(truths)))
    i = min(candidates, key=lambda k: abs(first.rows[k]["ap50"] - overall))
    print(f"error maps of {first.rows[i]['name']} ({first.rows[i]['group']}, "
          f"{first.rows[i]['n_true']} nuclei)")
    fig = figure((5.2 * len(methods), 5.6))
    axes = fig.subplots(1, len(methods), squeeze=False)[0]
    for ax, (name, labels) in zip(axes, predictions.items()):
        viz.error_map(images[i], truths[i], labels[i], ax=ax)
        ax.set_title(f"{name}\n{ax.get_title()}", fontsize="small")
    ex.save(fig, "evaluate_error_map")
    ex.done()


if __name__ == "__main__":
    main()
