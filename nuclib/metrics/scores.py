"""Dataset and error scores for instance segmentations: DSB score, AJI, mean best
IoU, splits and merges, missed and extra nuclei by size.

All of them read the sparse overlap table of ``nuclib.metrics.matching``,
so each costs one pass over the pixels.

Example:
    >>> import numpy as np
    >>> y = np.zeros((8, 8), np.uint8); y[1:4, 1:4] = 1; y[5:8, 5:8] = 2
    >>> dsb_score(y, y), aggregated_jaccard_index(y, y)
    (1.0, 1.0)
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np

from nuclib.metrics.matching import Overlap, label_overlap, match_overlap

# Kaggle DSB2018: IoU thresholds 0.50, 0.55, ..., 0.95, kept as exact hundredths
DSB_THRESHOLDS = tuple(k / 100 for k in range(50, 100, 5))
_DSB_HUNDREDTHS = np.arange(50, 100, 5)

# unet4nuclei (Caicedo et al. 2019) nucleus size classes: name, area upper bound (exclusive)
AREA_BINS = (("tiny", 250), ("small", 625), ("normal", 900), ("large", math.inf))


class SplitsAndMerges(NamedTuple):
    """Counts of over- and under-segmented nuclei (see ``splits_and_merges``).

    Attributes:
        splits: true nuclei cut into two or more predicted pieces.
        merges: predictions that cover two or more true nuclei.

    Example:
        >>> counts = splits_and_merges(np.array([[1, 1, 0, 2]]), np.array([[3, 3, 3, 3]]))
        >>> counts, counts.merges
        (SplitsAndMerges(splits=0, merges=1), 1)
    """

    splits: int
    merges: int


def _pairs(ys_true, ys_pred) -> list[tuple]:
    """One (truth, prediction) pair for arrays, or the zipped pairs of two sequences."""
    if isinstance(ys_true, np.ndarray) or isinstance(ys_pred, np.ndarray):
        if not (isinstance(ys_true, np.ndarray) and isinstance(ys_pred, np.ndarray)):
            raise ValueError("pass either one label image for both y_true and y_pred, or a "
                             "list of label images for both")
        return [(ys_true, ys_pred)]
    ys_true, ys_pred = list(ys_true), list(ys_pred)
    if len(ys_true) != len(ys_pred):
        raise ValueError(f"{len(ys_true)} true label images but {len(ys_pred)} predicted "
                         "ones; expected one prediction per image")
    if not ys_true:
        raise ValueError("no images given; expected at least one (truth, prediction) pair")
    return list(zip(ys_true, ys_pred))


# ---------------------------------------------------------------------------
# Per-image scores on an overlap table (shared with the report)


def dsb_score_of_overlap(overlap: Overlap) -> float:
    """The DSB 2018 score of one image from its overlap table (``dsb_score`` per image).

    Args:
        overlap: ``label_overlap(y_true, y_pred)``.

    Returns:
        The mean over IoU thresholds 0.5, 0.55, ..., 0.95 of TP / (TP + FP + FN);
        1.0 for an image with no object in either.

    Example:
        >>> from nuclib.metrics.matching import label_overlap
        >>> overlap = label_overlap(np.array([[1, 1, 0, 2]]), np.array([[1, 1, 0, 0]]))
        >>> dsb_score_of_overlap(overlap)
        0.5
    """
    if overlap.n_true == 0 and overlap.n_pred == 0:
        return 1.0
    # IoU > t (strictly, as in Kaggle's definition) in integer arithmetic:
    # 100 * intersection > k * union. Above 0.5 such pairs are one-to-one.
    hits = 100 * overlap.intersection[:, None] > _DSB_HUNDREDTHS * overlap.union[:, None]
    tp = hits.sum(axis=0)
    return float(np.mean(tp / (overlap.n_true + overlap.n_pred - tp)))


def aji_of_overlap(overlap: Overlap) -> float:
    """The aggregated Jaccard index of one image from its overlap table (``aji`` per image).

    Args:
        overlap: ``label_overlap(y_true, y_pred)``.

    Returns:
        The AJI in [0, 1]; 1.0 when neither image has an object.

    Example:
        >>> from nuclib.metrics.matching import label_overlap
        >>> overlap = label_overlap(np.array([[1, 1, 0, 2]]), np.array([[1, 1, 0, 0]]))
        >>> round(aji_of_overlap(overlap), 4)
        0.6667
    """
    union_all = overlap.union
    if len(overlap.rows):
        iou = overlap.intersection / union_all
        # per true object its best prediction: highest IoU, then lowest pred id
        order = np.lexsort((overlap.cols, -iou, overlap.rows))
        first = order[np.r_[True, np.diff(overlap.rows[order]) > 0]]
    else:
        first = np.zeros(0, np.intp)
    intersection = int(overlap.intersection[first].sum())
    union = int(union_all[first].sum())
    paired_true = np.zeros(overlap.n_true, bool)
    paired_true[overlap.rows[first]] = True
    used_pred = np.zeros(overlap.n_pred, bool)
    used_pred[overlap.cols[first]] = True
    union += int(overlap.area_true[~paired_true].sum()) + int(overlap.area_pred[~used_pred].sum())
    return 1.0 if union == 0 else intersection / union


def best_iou_per_true(overlap: Overlap) -> np.ndarray:
    """Each true object's highest IoU with any predicted object (0 without overlap).

    Args:
        overlap: ``label_overlap(y_true, y_pred)``.

    Returns:
        float64 ``(n_true,)`` best IoUs, in true-id order.

    Example:
        >>> from nuclib.metrics.matching import label_overlap
        >>> overlap = label_overlap(np.array([[1, 1, 0, 2]]), np.array([[1, 1, 0, 0]]))
        >>> best_iou_per_true(overlap).tolist()
        [1.0, 0.0]
    """
    best = np.zeros(overlap.n_true, np.float64)
    if len(overlap.rows):
        np.maximum.at(best, overlap.rows, overlap.intersection / overlap.union)
    return best


def mean_of_best_ious(total: float, n_true: int, n_pred: int) -> float:
    """``mean_best_iou`` from its pooled parts: the sum of best IoUs and the object counts.

    Args:
        total: the sum of ``best_iou_per_true`` over the true objects.
        n_true, n_pred: the numbers of true and predicted objects.

    Returns:
        ``total / n_true``; without true objects 1.0 if nothing was predicted, else 0.0.

    Example:
        >>> mean_of_best_ious(1.5, 2, 2), mean_of_best_ious(0.0, 0, 0)
        (0.75, 1.0)
    """
    # No true nucleus: nothing to score; as for the AJI, 1 when nothing was
    # predicted either and 0 when everything predicted is extra.
    if n_true == 0:
        return 1.0 if n_pred == 0 else 0.0
    return float(total / n_true)


def splits_and_merges_of_overlap(overlap: Overlap, thresh: float) -> SplitsAndMerges:
    """Splits and merges of one image from its overlap table (``splits_and_merges`` per image).

    Args:
        overlap: ``label_overlap(y_true, y_pred)``.
        thresh: the fraction of an object that must lie inside the other.

    Returns:
        ``SplitsAndMerges(splits, merges)``.

    Example:
        >>> from nuclib.metrics.matching import label_overlap
        >>> overlap = label_overlap(np.array([[1, 1, 0, 2]]), np.array([[1, 1, 0, 0]]))
        >>> splits_and_merges_of_overlap(overlap, 0.5)
        SplitsAndMerges(splits=0, merges=0)
    """
    inter = overlap.intersection
    inside_true = inter >= thresh * overlap.area_pred[overlap.cols]  # pred mostly in true
    covers_true = inter >= thresh * overlap.area_true[overlap.rows]  # true mostly in pred
    pieces = np.bincount(overlap.rows[inside_true], minlength=overlap.n_true)
    covered = np.bincount(overlap.cols[covers_true], minlength=overlap.n_pred)
    return SplitsAndMerges(int((pieces > 1).sum()), int((covered > 1).sum()))


def check_fraction(thresh: float, name: str = "thresh") -> float:
    """``thresh`` as a float in (0, 1], the range of overlap fractions.

    Args:
        thresh: the value to check.
        name: its name, for the message.

    Returns:
        ``float(thresh)``.

    Raises:
        ValueError: outside (0, 1].

    Example:
        >>> check_fraction(0.5)
        0.5
    """
    thresh = float(thresh)
    if not 0.0 < thresh <= 1.0:
        raise ValueError(f"{name} is {thresh}; expected an overlap fraction in (0, 1]")
    return thresh


def _check_bins(bins) -> tuple[tuple[str, float], ...]:
    bins = tuple(dict(bins).items()) if hasattr(bins, "items") else tuple(bins)
    if not bins or any(len(b) != 2 for b in bins):
        raise ValueError(f"bins {bins!r} are not (name, upper area) pairs; expected e.g. "
                         f"{AREA_BINS}")
    uppers = [float(b[1]) for b in bins]
    if any(b <= a for a, b in zip(uppers, uppers[1:])) or uppers[0] <= 0:
        raise ValueError(f"bin upper bounds {uppers} must be positive and increasing")
    return tuple((str(name), float(upper)) for name, upper in bins)


# ---------------------------------------------------------------------------
# Public scores


def dsb_score(ys_true, ys_pred) -> float:
    """The Kaggle Data Science Bowl 2018 score.

    Per image, the mean over IoU thresholds t = 0.50, 0.55, ..., 0.95 of
    tp / (tp + fp + fn), where a prediction hits a true nucleus when their
    IoU is strictly greater than t (Kaggle's wording); then the mean over
    images. An image with no nuclei and no predictions scores 1 (the
    competition's test set had none). ``matching`` counts IoU >= t instead,
    so ``matching(...).accuracy`` can differ when an IoU equals t exactly.

    Args:
        ys_true: one ground-truth label image (numpy array), or a sequence of them.
        ys_pred: the matching prediction(s): an array, or a sequence of the same length.

    Returns:
        The score in [0, 1] as a float.

    Raises:
        ValueError: mismatched inputs or invalid labels (see ``matching``).

    Example:
        >>> y = np.zeros((4, 8), np.uint8); y[:, :4] = 1; y[:, 4:] = 2
        >>> dsb_score(y, np.where(y == 2, 0, y))                # 1 hit, 1 miss
        0.5
    """
    return float(np.mean([dsb_score_of_overlap(label_overlap(t, p)) for t, p in _pairs(ys_true, ys_pred)]))


def aggregated_jaccard_index(y_true, y_pred) -> float:
    """Aggregated Jaccard Index, in the ORIGINAL definition of Kumar et al. (2017).

    Kumar et al., "A dataset and a technique for generalized nuclear
    segmentation for computational pathology", IEEE TMI 36(7), 2017,
    Algorithm 1: every true nucleus G is paired with the prediction S of
    highest IoU (ties: the lowest predicted id); C sums |G ∩ S| and U sums
    |G ∪ S| over these pairs; then U adds the area of every prediction never
    paired. A prediction may be paired with several true nuclei (not the
    one-to-one AJI+ of Graham et al. 2019). A true nucleus overlapping no
    prediction adds its own area to U (as in the MoNuSeg / HoVer-Net code).
    AJI = C / U; 1 when both images are empty.

    Args:
        y_true: ground-truth label image (integers >= 0).
        y_pred: predicted label image of the same shape.

    Returns:
        AJI in [0, 1].

    Raises:
        ValueError: invalid labels (see ``matching``).

    Example:
        >>> y_true = np.array([[1, 1, 1, 1, 0, 0]])
        >>> y_pred = np.array([[0, 2, 2, 2, 2, 0]])
        >>> aggregated_jaccard_index(y_true, y_pred)             # 3 / 5
        0.6
    """
    return aji_of_overlap(label_overlap(y_true, y_pred))


def mean_best_iou(ys_true, ys_pred, *, by_image: bool = False) -> float:
    """Mean over true nuclei of each one's best IoU with any prediction (the "Jaccard" column).

    For every true nucleus, the highest IoU it has with any predicted
    object, 0 when it overlaps none; then the mean over true nuclei: of one
    image, or of all images' nuclei pooled (``by_image=False``), or the mean
    of the per-image values (``by_image=True``). An image (or pool) without
    true nuclei scores 1 when nothing was predicted either, else 0 (as the
    AJI does).

    How it differs from the related scores:

    * ``aggregated_jaccard_index`` sums intersections and unions in pixels,
      so large nuclei weigh more, and adds every unused prediction to the
      union; here every true nucleus counts the same and predictions that
      are best for no nucleus (false positives) cost nothing.
    * ``Matching.mean_matched_score`` averages the IoU of the one-to-one
      matched pairs at IoU >= ``thresh`` only; missed nuclei are left out,
      and the value depends on ``thresh``. Here there is no threshold and no
      one-to-one rule: a prediction merging two nuclei is the best match of
      both, and a missed nucleus counts 0.

    Args:
        ys_true: one ground-truth label image (numpy array), or a sequence of them.
        ys_pred: the matching prediction(s): an array, or a sequence of the same length.
        by_image: for sequences, average the per-image means instead of
            pooling all true nuclei.

    Returns:
        The score in [0, 1] as a float.

    Raises:
        ValueError: mismatched inputs or invalid labels (see ``matching``).

    Example:
        >>> y_true = np.array([[1, 1, 1, 1, 0, 2, 2]])
        >>> y_pred = np.array([[3, 3, 0, 0, 0, 0, 0]])
        >>> mean_best_iou(y_true, y_pred)                 # (2/4 + 0) / 2
        0.25
    """
    total = 0.0
    n_true = n_pred = 0
    per_image = []
    for y_true, y_pred in _pairs(ys_true, ys_pred):
        overlap = label_overlap(y_true, y_pred)
        best = float(best_iou_per_true(overlap).sum())
        per_image.append(mean_of_best_ious(best, overlap.n_true, overlap.n_pred))
        total, n_true, n_pred = total + best, n_true + overlap.n_true, n_pred + overlap.n_pred
    if by_image:
        return float(np.mean(per_image))
    return mean_of_best_ious(total, n_true, n_pred)


def splits_and_merges(y_true, y_pred, thresh: float = 0.5) -> SplitsAndMerges:
    """Count true nuclei split into several predictions and predictions merging several nuclei.

    A prediction P is a *piece* of a true nucleus T when at least ``thresh``
    of P's pixels lie in T (|T ∩ P| >= thresh |P|); T is *split* when it has
    two or more pieces. Symmetrically, P *covers* T when at least ``thresh``
    of T's pixels lie in P; P is a *merge* when it covers two or more true
    nuclei. Swapping truth and prediction swaps the two counts.
    (unet4nuclei counted IoU > 0.1 instead, which misses nuclei cut in many
    small fragments.)

    Args:
        y_true: ground-truth label image (integers >= 0).
        y_pred: predicted label image of the same shape.
        thresh: overlap fraction in (0, 1].

    Returns:
        ``SplitsAndMerges(splits, merges)``.

    Raises:
        ValueError: ``thresh`` outside (0, 1], or invalid labels.

    Example:
        >>> y_true = np.array([[1, 1, 1, 1, 0, 2, 2]])
        >>> y_pred = np.array([[3, 3, 4, 4, 0, 5, 5]])
        >>> splits_and_merges(y_true, y_pred)
        SplitsAndMerges(splits=1, merges=0)
    """
    thresh = check_fraction(thresh)
    return splits_and_merges_of_overlap(label_overlap(y_true, y_pred), thresh)


def _by_area(ys_true, ys_pred, thresh: float, bins, side: str) -> tuple:
    """Per size class: objects of ``side`` ("true" or "pred") and those left unmatched."""
    bins = _check_bins(bins)
    uppers = np.array([upper for _, upper in bins])
    counts = np.zeros(len(bins), np.int64)
    unmatched = np.zeros(len(bins), np.int64)
    column = 0 if side == "true" else 1
    for y_true, y_pred in _pairs(ys_true, ys_pred):
        overlap = label_overlap(y_true, y_pred)
        pairs = match_overlap(overlap, thresh, report_matches=True).matched_pairs
        ids = overlap.ids_true if side == "true" else overlap.ids_pred
        areas = overlap.area_true if side == "true" else overlap.area_pred
        found = np.isin(ids, [pair[column] for pair in pairs])
        which = np.searchsorted(uppers, areas, side="right")
        inside = which < len(bins)
        counts += np.bincount(which[inside], minlength=len(bins))
        unmatched += np.bincount(which[inside & ~found], minlength=len(bins))
    return bins, counts, unmatched


def false_negatives_by_area(ys_true, ys_pred, thresh: float = 0.5,
                            bins: Sequence = AREA_BINS) -> dict[str, dict]:
    """Missed true nuclei per size class (unet4nuclei's error breakdown).

    A true nucleus is missed when ``matching`` at IoU ``thresh`` leaves it
    unmatched. Size classes are by area in pixels; the default follows
    unet4nuclei: tiny < 250, small < 625, normal < 900, large otherwise.
    ``false_positives_by_area`` is the same for the predictions.

    Args:
        ys_true: one ground-truth label image (numpy array), or a sequence of them.
        ys_pred: the matching prediction(s).
        thresh: IoU threshold in [0, 1] for a nucleus to count as found.
        bins: ``(name, upper_area)`` pairs with increasing exclusive upper
            bounds (the last usually ``math.inf``), or a dict of them.

    Returns:
        ``{name: {"n_true": int, "missed": int, "missed_fraction": float}}``
        in bin order; nuclei at least as large as the last bound are not
        counted. ``missed_fraction`` is 0 for an empty class.

    Raises:
        ValueError: malformed bins, a threshold outside [0, 1], or invalid labels.

    Example:
        >>> y = np.zeros((40, 40), np.uint16); y[:5, :5] = 1; y[10:40, 10:40] = 2
        >>> out = false_negatives_by_area(y, np.where(y == 1, 0, y))
        >>> out["tiny"], out["large"]["missed"]
        ({'n_true': 1, 'missed': 1, 'missed_fraction': 1.0}, 0)
    """
    bins, n_true, missed = _by_area(ys_true, ys_pred, thresh, bins, "true")
    return {name: {"n_true": int(n), "missed": int(m),
                   "missed_fraction": float(m / n) if n else 0.0}
            for (name, _), n, m in zip(bins, n_true, missed)}


def false_positives_by_area(ys_true, ys_pred, thresh: float = 0.5,
                            bins: Sequence = AREA_BINS) -> dict[str, dict]:
    """Extra predicted objects (false positives) per size class of the prediction.

    The mirror of ``false_negatives_by_area``: a predicted object is extra
    when ``matching`` at IoU ``thresh`` pairs it with no true nucleus; it is
    binned by its own (predicted) area, with the same bins. Small extras are
    often debris or fragments of split nuclei; large ones, merges.

    Args:
        ys_true: one ground-truth label image (numpy array), or a sequence of them.
        ys_pred: the matching prediction(s).
        thresh: IoU threshold in [0, 1] for a prediction to count as matched.
        bins: ``(name, upper_area)`` pairs with increasing exclusive upper
            bounds (the last usually ``math.inf``), or a dict of them.

    Returns:
        ``{name: {"n_pred": int, "extra": int, "extra_fraction": float}}``
        in bin order; predictions at least as large as the last bound are
        not counted. ``extra_fraction`` is 0 for an empty class.

    Raises:
        ValueError: malformed bins, a threshold outside [0, 1], or invalid labels.

    Example:
        >>> y = np.zeros((40, 40), np.uint16); y[10:40, 10:40] = 2
        >>> pred = y.copy(); pred[:5, :5] = 1                # a 25-pixel extra object
        >>> out = false_positives_by_area(y, pred)
        >>> out["tiny"], out["large"]["extra"]
        ({'n_pred': 1, 'extra': 1, 'extra_fraction': 1.0}, 0)
    """
    bins, n_pred, extra = _by_area(ys_true, ys_pred, thresh, bins, "pred")
    return {name: {"n_pred": int(n), "extra": int(e),
                   "extra_fraction": float(e / n) if n else 0.0}
            for (name, _), n, e in zip(bins, n_pred, extra)}
