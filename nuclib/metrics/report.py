"""Evaluate a set of predictions: per-image rows and dataset summaries in one ``Report``.

Example:
    >>> import numpy as np
    >>> y = np.zeros((8, 8), np.uint8); y[1:4, 1:4] = 1; y[5:8, 5:8] = 2
    >>> report = evaluate([y, y], [y, np.where(y == 2, 0, y)], names=["a", "b"])
    >>> report.summary["ap50"], report.rows[1]["fn50"]
    (0.75, 1)
"""

from __future__ import annotations

import csv
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from nuclib._files import set_default_permissions
from typing import Sequence

from nuclib.metrics.matching import pool_matchings, parse_thresholds, label_overlap, match_overlap
from nuclib.metrics.scores import (aji_of_overlap, best_iou_per_true, check_fraction, dsb_score_of_overlap, mean_of_best_ious,
                                   splits_and_merges_of_overlap)

DEFAULT_THRESHOLDS = (0.5, 0.75, 0.9)
ALL = "all"


def threshold_key(thresh: float) -> str:
    """Column suffix of an IoU threshold: 0.5 -> "50", 0.925 -> "92.5".

    Args:
        thresh: an IoU threshold in [0, 1].

    Returns:
        ``thresh * 100`` formatted with ``:g`` (no trailing zeros).

    Example:
        >>> threshold_key(0.75)
        '75'
    """
    return f"{thresh * 100:g}"


@dataclass(frozen=True)
class Report:
    """Scores of a set of predictions against their ground truth.

    Attributes:
        rows: one dict per image, in input order, with ``name``, ``group``,
            ``n_true``, ``n_pred``; for each threshold t (key suffix
            ``threshold_key(t)``, e.g. ``50``) ``tp50``, ``fp50``, ``fn50``,
            ``ap50`` (tp / (tp + fp + fn)) and ``f1_50``; then ``dsb_score``,
            ``aji``, ``jaccard`` (``mean_best_iou``: the mean over true
            nuclei of each one's best IoU), ``splits`` and ``merges``.
        summary: JSON-friendly dict: ``thresholds``, the dataset scores of all
            images at top level, and ``groups`` mapping ``"all"`` and each
            group to its scores: ``n_images``, ``n_true``, ``n_pred``,
            ``ap50``... (pooled: summed tp, fp, fn, as in the StarDist
            paper), ``f1_50``..., ``precision_50``..., ``recall_50``...
            (pooled), ``dsb_score`` and ``aji`` (means over images),
            ``jaccard`` (pooled: the mean over all true nuclei of the
            group), ``splits`` and ``merges`` (totals).
        thresholds: the IoU thresholds.

    Example:
        >>> import numpy as np
        >>> y = np.zeros((8, 8), np.uint8); y[1:4, 1:4] = 1
        >>> report = evaluate([y, y], [y, np.zeros_like(y)], names=["a", "b"])
        >>> report
        Report(2 images, thresholds=[0.5, 0.75, 0.9], ap50=0.5000)
        >>> report.rows[1]["fn50"], report.summary["groups"]["all"]["n_images"]
        (1, 2)
    """

    rows: tuple
    summary: dict
    thresholds: tuple

    def __repr__(self) -> str:
        return (f"Report({len(self.rows)} images, thresholds={list(self.thresholds)}, "
                f"ap{threshold_key(self.thresholds[0])}="
                f"{self.summary[f'ap{threshold_key(self.thresholds[0])}']:.4f})")

    def __str__(self) -> str:
        return self.table()

    @property
    def columns(self) -> list[str]:
        """Names of the per-image columns, in order."""
        return list(self.rows[0]) if self.rows else []

    def table(self, digits: int = 3, *, name_width: int | None = None) -> str:
        """A printable, aligned text table: one line per image, then one per group.

        Args:
            digits: decimals of the scores.
            name_width: cut image names longer than this to their first
                ``name_width`` characters and "…" (more characters where two
                names would otherwise read the same); None keeps them whole.
                ``rows`` and ``to_csv`` always keep the full names.

        Returns:
            The table as a string (no trailing newline).

        Example:
            >>> print(report.table(name_width=12))   # doctest: +SKIP
        """
        rows = self.rows
        if name_width is not None:
            short = shorten_names([row["name"] for row in rows], name_width)
            rows = [dict(row, name=name) for row, name in zip(rows, short)]
        keys = [threshold_key(t) for t in self.thresholds]
        scores = [f"ap{k}" for k in keys] + [f"f1_{keys[0]}", "dsb_score", "aji", "jaccard"]
        counts = ["splits", "merges"]
        grouped = any(row["group"] != ALL for row in rows)
        image_cols = ["name"] + (["group"] if grouped else []) + ["n_true", "n_pred"]
        image_cols += scores + counts
        lines = _aligned(image_cols, rows, digits)
        group_cols = ["group", "n_images", "n_true", "n_pred"] + scores + counts
        groups = [{"group": name, **values} for name, values in self.summary["groups"].items()]
        return "\n".join(lines + [""] + _aligned(group_cols, groups, digits))

    def to_csv(self, path) -> Path:
        """Write the per-image rows to a CSV file, atomically.

        The file is written beside ``path`` and renamed into place, so a
        crash never leaves a half-written report. Floats are written in full
        precision (they read back equal).

        Args:
            path: destination file; its folder must exist.

        Returns:
            ``path`` as a ``Path``.

        Example:
            >>> report.to_csv("scores.csv")   # doctest: +SKIP
        """
        path = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=self.columns)
                writer.writeheader()
                writer.writerows(self.rows)
            set_default_permissions(tmp)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path


def shorten_names(names: Sequence[str], width: int) -> list[str]:
    """Names longer than ``width`` cut to their first ``width`` characters and "…".

    Where two cut names would read the same, all are cut longer, so that
    different names stay different in the table.

    Args:
        names: the names, e.g. 64-character DSB2018 image ids.
        width: characters kept before the "…" (at least 1).

    Returns:
        The shortened names, in order.

    Raises:
        ValueError: ``width`` below 1.

    Example:
        >>> shorten_names(["0123456789abcdef", "short"], 4)
        ['0123…', 'short']
    """
    if int(width) < 1:
        raise ValueError(f"width must be at least 1 character, got {width}")
    names = [str(n) for n in names]
    longest = max((len(n) for n in names), default=0)
    for w in range(int(width), longest + 1):
        # A name only one character too long is kept whole: "…" would save nothing.
        short = [n if len(n) <= w + 1 else n[:w] + "…" for n in names]
        if len(set(short)) == len(set(names)):
            return short
    return names


def _cell(value, digits: int) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _aligned(columns: list[str], rows: Sequence[dict], digits: int) -> list[str]:
    cells = [[_cell(row[c], digits) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]

    def line(values):
        # text columns (name, group) left-aligned, numbers right-aligned
        return "  ".join(v.ljust(w) if c in ("name", "group") else v.rjust(w)
                         for c, v, w in zip(columns, values, widths)).rstrip()

    return [line(columns)] + [line(r) for r in cells]


def _group_summary(rows: list[dict], records: list[list], best_sums: list[float],
                   thresholds: list[float]) -> dict:
    out = {"n_images": len(rows), "n_true": sum(r["n_true"] for r in rows),
           "n_pred": sum(r["n_pred"] for r in rows)}
    for i, t in enumerate(thresholds):
        key = threshold_key(t)
        pooled = pool_matchings([image[i] for image in records], t, "iou", by_image=False)
        out.update({f"ap{key}": pooled.accuracy, f"f1_{key}": pooled.f1,
                    f"precision_{key}": pooled.precision, f"recall_{key}": pooled.recall})
    n = max(len(rows), 1)
    out["dsb_score"] = sum(r["dsb_score"] for r in rows) / n
    out["aji"] = sum(r["aji"] for r in rows) / n
    out["jaccard"] = mean_of_best_ious(sum(best_sums), out["n_true"], out["n_pred"])
    out["splits"] = sum(r["splits"] for r in rows)
    out["merges"] = sum(r["merges"] for r in rows)
    return out


def evaluate(ys_true, ys_pred, names: Sequence[str] | None = None,
             thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
             groups: Sequence[str] | None = None, *, split_thresh: float = 0.5,
             progress: bool = True) -> Report:
    """Score predicted label images against ground truth: per image and per dataset.

    Each pair is read once (one sparse overlap table) for all scores:
    ``matching`` at every IoU threshold, ``dsb_score``,
    ``aggregated_jaccard_index``, ``mean_best_iou`` (column ``jaccard``)
    and ``splits_and_merges``.

    Args:
        ys_true: sequence of ground-truth label images.
        ys_pred: sequence of predicted label images, same length and shapes.
        names: one name per image (default "0", "1", ...).
        thresholds: IoU thresholds in [0, 1] for tp/fp/fn, AP and F1.
        groups: one group label per image (e.g. the imaging modality); the
            summary then has a block per group besides ``"all"``.
        split_thresh: overlap fraction for ``splits_and_merges``.
        progress: show a progress bar (``nuclib.progress``).

    Returns:
        A ``Report``.

    Raises:
        ValueError: no images, lengths that differ, repeated or invalid
            thresholds, or invalid label images (see ``matching``).

    Example:
        >>> import numpy as np
        >>> y = np.zeros((8, 8), np.uint8); y[1:4, 1:4] = 1
        >>> evaluate([y], [y]).summary["dsb_score"]
        1.0
    """
    from nuclib.progress import progress_bar

    ys_true, ys_pred = list(ys_true), list(ys_pred)
    n = len(ys_true)
    if n == 0:
        raise ValueError("no images to evaluate; expected at least one (truth, prediction) "
                         "pair")
    if len(ys_pred) != n:
        raise ValueError(f"{n} true label images but {len(ys_pred)} predicted ones; "
                         "expected one prediction per image")
    names = [str(i) for i in range(n)] if names is None else [str(x) for x in names]
    groups = [ALL] * n if groups is None else [str(g) for g in groups]
    for what, values in (("names", names), ("groups", groups)):
        if len(values) != n:
            raise ValueError(f"{len(values)} {what} for {n} images; expected one per image")
    thresholds, _ = parse_thresholds(thresholds)
    keys = [threshold_key(t) for t in thresholds]
    if len(set(keys)) != len(keys):
        raise ValueError(f"thresholds {thresholds} repeat; expected distinct values")
    split_thresh = check_fraction(split_thresh, "split_thresh")

    rows, records, best_sums = [], [], []
    for i in progress_bar(range(n), desc="evaluating", unit="image", enabled=progress):
        try:
            overlap = label_overlap(ys_true[i], ys_pred[i])
        except ValueError as err:
            raise ValueError(f"image {names[i]!r}: {err}") from None
        matches = match_overlap(overlap, thresholds)
        row = {"name": names[i], "group": groups[i], "n_true": overlap.n_true,
               "n_pred": overlap.n_pred}
        for key, m in zip(keys, matches):
            row.update({f"tp{key}": m.tp, f"fp{key}": m.fp, f"fn{key}": m.fn,
                        f"ap{key}": m.accuracy, f"f1_{key}": m.f1})
        splits, merges = splits_and_merges_of_overlap(overlap, split_thresh)
        best = float(best_iou_per_true(overlap).sum())
        row.update(dsb_score=dsb_score_of_overlap(overlap), aji=aji_of_overlap(overlap),
                   jaccard=mean_of_best_ious(best, overlap.n_true, overlap.n_pred),
                   splits=splits, merges=merges)
        rows.append(row)
        records.append(matches)
        best_sums.append(best)

    summaries = {ALL: _group_summary(rows, records, best_sums, thresholds)}
    for group in sorted(set(groups) - {ALL}):
        members = [i for i, g in enumerate(groups) if g == group]
        summaries[group] = _group_summary([rows[i] for i in members],
                                          [records[i] for i in members],
                                          [best_sums[i] for i in members], thresholds)
    summary = {"thresholds": list(thresholds), **summaries[ALL], "groups": summaries}
    return Report(rows=tuple(rows), summary=summary, thresholds=tuple(thresholds))
