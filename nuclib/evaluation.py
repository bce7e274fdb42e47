"""Scoring a Segmenter on labelled images: one loop that training, benchmarks and examples share.

``evaluate_segmenter`` segments every (image, labels) pair, scores it with
``nuclib.metrics.evaluate`` and groups rows by modality when the split has
a ``manifest.csv`` (as DSB2018 has), read by ``read_manifest``: the one reader
of it that ``benchmarks/`` and ``examples/`` use too.

Example:
    >>> from nuclib.data import folder_pairs
    >>> report, seconds_per_mp = evaluate_segmenter(seg, folder_pairs("data/val"))  # doctest: +SKIP
    >>> report.summary["ap50"]                                                     # doctest: +SKIP
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

__all__ = ["manifest_path", "read_manifest", "read_modalities", "evaluate_segmenter",
           "tune_thresholds"]


def manifest_path(folder) -> Path | None:
    """The ``manifest.csv`` of a data set: in ``folder`` itself or, for a split folder, its parent.

    Example:
        >>> manifest_path("/nonexistent/val") is None
        True
    """
    for place in (Path(folder), Path(folder).parent):
        if (place / "manifest.csv").is_file():
            return place / "manifest.csv"
    return None


def read_manifest(folder, **where: str) -> list[dict[str, str]]:
    """The rows of a data set's ``manifest.csv`` whose columns equal ``where``'s values.

    DSB2018's manifest has one row per image: ``id``, ``split``,
    ``modality``, ``height``, ``width`` (all strings, as CSV gives them).

    Args:
        folder: the data set's folder or one of its split folders (see
            ``manifest_path``).
        **where: column values a row must have, e.g. ``split="val"``.

    Returns:
        The matching rows as dicts, in file order; ``[]`` without a manifest.

    Raises:
        ValueError: ``where`` names a column the manifest does not have.

    Example:
        >>> rows = read_manifest("../shared/data/dsb2018", split="val",
        ...                      modality="fluorescence")                  # doctest: +SKIP
        >>> len(rows)                                                      # doctest: +SKIP
        54
    """
    path = manifest_path(folder)
    if path is None:
        return []
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        unknown = sorted(set(where) - set(reader.fieldnames or ()))
        if unknown:
            raise ValueError(f"{path} has no column {unknown[0]!r}; expected some of "
                             f"{reader.fieldnames}")
        return [row for row in reader if all(row[k] == str(v) for k, v in where.items())]


def read_modalities(folder) -> dict[str, str]:
    """``{image_id: modality}`` from a data set's ``manifest.csv``, if it has one.

    Args:
        folder: the data set's folder or a split folder such as
            ``.../dsb2018/val`` (see ``manifest_path``).

    Returns:
        ``{id: modality}`` for every row of the manifest (all splits; a
        manifest without a ``modality`` column gives ``"all"``), or ``{}``
        when there is no manifest.

    Example:
        >>> read_modalities("/nonexistent/val")
        {}
    """
    return {row["id"]: row.get("modality") or "all" for row in read_manifest(folder)}


def evaluate_segmenter(segmenter, pairs, *, progress: bool = True, probs=None):
    """Segment every (image, labels) pair and score it with ``nuclib.metrics.evaluate``.

    Groups rows by modality when the split has a ``manifest.csv``.

    Args:
        segmenter: a ``Segmenter``.
        pairs: ``[(image_path, label_path), ...]`` as from
            ``nuclib.data.folder_pairs``; the split folder (and so the
            manifest) is found from the first image path.
        progress: show a progress bar (``nuclib.progress``).
        probs: optional precomputed predictions, one per pair in the same
            order: probability arrays (then only ``segmenter.postprocess``
            runs on them) or ``ScaledPrediction``s from
            ``segmenter.predict_scaled`` (then ``segmenter.labels_from``).
            Images are still read, for the pixel count.

    Returns:
        ``(report, seconds_per_megapixel)``: the ``nuclib.metrics.Report``
        (names are the image stems) and the wall time per megapixel of the
        loop (reading, segmenting or post-processing, reading labels).

    Example:
        >>> from nuclib.data.io import folder_pairs
        >>> report, speed = evaluate_segmenter(seg, folder_pairs("data/val"))  # doctest: +SKIP
    """
    from nuclib.data.io import read_image, read_labels
    from nuclib.metrics import evaluate
    from nuclib.progress import progress_bar

    modality = read_modalities(Path(pairs[0][0]).parent.parent) if pairs else {}
    ys_true, ys_pred, names, groups = [], [], [], []
    pixels, started = 0, time.perf_counter()
    for i, (image_path, label_path) in enumerate(progress_bar(pairs, desc="evaluating",
                                                              unit="image", enabled=progress)):
        image = read_image(image_path)
        if probs is not None and hasattr(probs[i], "factor"):
            pred = segmenter.labels_from(probs[i])
        elif probs is not None:
            pred = segmenter.postprocess(probs[i])
        else:
            pred = segmenter.segment(image)
        pixels += image.shape[0] * image.shape[1]
        ys_true.append(read_labels(label_path))
        ys_pred.append(pred)
        names.append(Path(image_path).stem)
        groups.append(modality.get(Path(image_path).stem, "all"))
    seconds = time.perf_counter() - started
    report = evaluate(ys_true, ys_pred, names=names, groups=groups)
    return report, seconds / max(pixels / 1e6, 1e-9)


def tune_thresholds(segmenter, pairs, *, fixed: dict | None = None, progress: bool = True):
    """Tune a Segmenter's post-processing on labelled images; set and return the result.

    Predicts every image once, searches the head's parameter grid
    (``nuclib.postprocess.thresholds.DEFAULT_GRIDS``) around ``fixed`` in the
    model's space, where post-processing runs, and sets the best parameters
    on ``segmenter.config.postprocess``. A model that zooms images to its
    training nucleus size measures that size by post-processing, so it then
    predicts again with the tuned parameters. (A second search on those
    predictions was tried: each round moves the estimates again, and on
    dsb-3class it lowered the end-to-end fluorescence AP@0.5 from 0.805 to
    0.790, so there is one round.)

    Args:
        segmenter: a ``Segmenter`` (or ensemble) to tune; changed in place.
        pairs: ``[(image_path, label_path), ...]``.
        fixed: parameters kept as given (a recipe's ``[postprocess]``).
        progress: show progress bars.

    Returns:
        ``(search, predictions)``: ``optimize_thresholds``' result (``params``,
        ``score``, ``n_evaluations``, ...) and one ``ScaledPrediction`` per
        pair made with the tuned parameters, for ``evaluate_segmenter(probs=...)``.

    Example:
        >>> search, preds = tune_thresholds(seg, folder_pairs("data/val"))   # doctest: +SKIP
        >>> report, _ = evaluate_segmenter(seg, folder_pairs("data/val"), probs=preds)  # doctest: +SKIP
    """
    from nuclib.data.io import read_image, read_labels
    from nuclib.data.scale import rescale_labels
    from nuclib.postprocess import optimize_thresholds
    from nuclib.postprocess.thresholds import DEFAULT_GRIDS
    from nuclib.progress import progress_bar

    head, fixed = segmenter.config.head, dict(fixed or {})
    images = [read_image(image) for image, _ in pairs]
    preds = [segmenter.predict_scaled(im)
             for im in progress_bar(images, desc="predicting", unit="image", enabled=progress)]
    grid = {k: v for k, v in DEFAULT_GRIDS[head].items() if k not in fixed}
    if grid:
        truths = [rescale_labels(read_labels(lab), shape=pred.probs.shape[:2])
                  for (_, lab), pred in zip(pairs, preds)]
        search = optimize_thresholds([pred.probs for pred in preds], truths, kind=head,
                                     grid=grid, base=fixed, progress=progress)
    else:  # every parameter fixed: nothing to search
        search = {"params": fixed, "score": None, "default_score": None, "n_evaluations": 0,
                  "kind": head, "fixed": sorted(fixed)}
    segmenter.config.postprocess = search["params"]
    if segmenter.config.diameter:
        preds = [segmenter.predict_scaled(im) for im in
                 progress_bar(images, desc="predicting again", unit="image", enabled=progress)]
    return search, preds
