"""One-to-one matching of true and predicted nuclei, and the scores built on it.

``matching`` pairs the objects of a ground-truth label image with those of a
prediction (Hungarian matching, the score as tie-breaker) and counts true
positives, false positives and false negatives at an overlap threshold. It
gives exactly the counts and scores of ``stardist.matching.matching``
(StarDist 0.9), but builds the overlap table sparsely in one pass over the
pixels and runs the Hungarian algorithm only where candidate matches
conflict, so a 2048x2048 image with thousands of nuclei takes milliseconds.

Example:
    >>> import numpy as np

from nuclib.labels import check_labels
    >>> y_true = np.zeros((8, 8), np.uint16); y_true[1:5, 1:5] = 1
    >>> y_pred = np.zeros((8, 8), np.uint16); y_pred[2:6, 1:5] = 7
    >>> m = matching(y_true, y_pred, thresh=0.5)
    >>> m.tp, m.fp, m.fn, round(m.mean_matched_score, 4)     # IoU = 12 / 20
    (1, 0, 0, 0.6)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from nuclib.labels import check_labels

CRITERIA = ("iou", "iot", "iop")

# Scores are float32 and sums run in the same order and precision as in
# stardist.matching, so every value is bit-identical to StarDist's.
_SCORE_DTYPE = np.float32


@dataclass(frozen=True)
class Matching:
    """Detection scores of one prediction against its ground truth at one threshold.

    Attributes:
        criterion: ``"iou"``, ``"iot"`` or ``"iop"``.
        thresh: a pair with ``score >= thresh`` can be a true positive.
        fp, tp, fn: false positives, true positives, false negatives.
        precision: tp / (tp + fp).
        recall: tp / (tp + fn).
        accuracy: tp / (tp + fp + fn), the "AP" of the DSB2018 challenge.
        f1: 2 tp / (2 tp + fp + fn).
        n_true, n_pred: numbers of true and predicted objects.
        mean_true_score: sum of matched scores / n_true.
        mean_matched_score: sum of matched scores / tp.
        panoptic_quality: sum of matched scores / (tp + fp / 2 + fn / 2)
            (Kirillov et al., CVPR 2019).
        matched_pairs: with ``report_matches``, the ``(true_id, pred_id)``
            pairs of the true positives in the original ids, ordered by true
            id; otherwise None.
        matched_scores: with ``report_matches``, their scores; otherwise None.

    All ratios are 0 when their denominator (or tp) is 0, as in StarDist.

    Example:
        >>> y_true = np.zeros((8, 8), np.uint16); y_true[1:5, 1:5] = 1
        >>> y_pred = np.zeros((8, 8), np.uint16); y_pred[2:6, 1:5] = 7
        >>> m = matching(y_true, y_pred, report_matches=True)
        >>> m.tp, m.f1, m.matched_pairs
        (1, 1.0, ((1, 7),))
    """

    criterion: str
    thresh: float
    fp: int
    tp: int
    fn: int
    precision: float
    recall: float
    accuracy: float
    f1: float
    n_true: int
    n_pred: int
    mean_true_score: float
    mean_matched_score: float
    panoptic_quality: float
    matched_pairs: tuple | None = None
    matched_scores: tuple | None = None

    def as_dict(self) -> dict:
        """The record as a JSON-friendly dict (without unreported matches).

        Returns:
            ``{field: value}`` for every field; ``matched_pairs`` and
            ``matched_scores`` (tuples) are left out when they are None.

        Example:
            >>> y = np.zeros((4, 4), np.uint8); y[1:3, 1:3] = 1
            >>> d = matching(y, y).as_dict()
            >>> d["tp"], d["accuracy"], "matched_pairs" in d
            (1, 1.0, False)
        """
        out = asdict(self)
        if self.matched_pairs is None:
            del out["matched_pairs"], out["matched_scores"]
        return out


@dataclass(frozen=True)
class DatasetMatching:
    """Scores of a whole dataset at one threshold (see ``matching_dataset``).

    Has the fields of ``Matching`` (tp, fp, fn, n_true and n_pred summed over
    the images) plus ``by_image`` and ``n_images``.

    Attributes:
        criterion, thresh: as in ``Matching``.
        fp, tp, fn, n_true, n_pred: counts summed over the images.
        precision, recall, accuracy, f1, mean_true_score, mean_matched_score,
            panoptic_quality: computed from the pooled counts, or averaged
            over images when ``by_image``.
        by_image: whether the scores are per-image averages.
        n_images: number of images.

    Example:
        >>> y = np.zeros((10, 10), np.uint8); y[2:6, 2:6] = 1
        >>> d = matching_dataset([y, y], [y, np.zeros_like(y)])
        >>> d.tp, d.fn, d.n_images, d.accuracy
        (1, 1, 2, 0.5)
    """

    criterion: str
    thresh: float
    fp: int
    tp: int
    fn: int
    precision: float
    recall: float
    accuracy: float
    f1: float
    n_true: int
    n_pred: int
    mean_true_score: float
    mean_matched_score: float
    panoptic_quality: float
    by_image: bool
    n_images: int

    def as_dict(self) -> dict:
        """The record as a JSON-friendly dict.

        Returns:
            ``{field: value}`` for every field.

        Example:
            >>> y = np.zeros((4, 4), np.uint8); y[1:3, 1:3] = 1
            >>> matching_dataset([y], [y]).as_dict()["n_images"]
            1
        """
        return asdict(self)


# ---------------------------------------------------------------------------
# Overlap table


def check_label_pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    """Validate a (truth, prediction) pair of label images and return them as arrays.

    Args:
        y_true: ground-truth instance labels (integers >= 0, 0 = background).
        y_pred: predicted instance labels, same shape.

    Returns:
        ``(y_true, y_pred)`` as numpy arrays.

    Raises:
        ValueError: different shapes, non-integer dtype or negative labels.

    Example:
        >>> check_label_pair(np.zeros((2, 2), int), np.ones((2, 3), int))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: y_true has shape (2, 2) but y_pred has shape (2, 3); expected ...
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has shape {y_true.shape} but y_pred has shape "
                         f"{y_pred.shape}; expected label images of the same shape")
    # Any dimensionality: label volumes are scored like images.
    y_true = check_labels(y_true, name="y_true", boolean=False, ndim=None)
    y_pred = check_labels(y_pred, name="y_pred", boolean=False, ndim=None)
    return y_true, y_pred


def _objects(flat: np.ndarray):
    """Objects of a flat label array: ``(labels, values, ids, areas)``.

    ``labels`` is ``flat`` itself, or ``flat`` renumbered 1..n (order kept)
    when the ids are much larger than the image (hashes, random ids), so
    that id arithmetic stays small; ``values`` are the objects' values in
    ``labels`` (sorted), ``ids`` their original ids, ``areas`` pixel counts.
    """
    top = int(flat.max()) if flat.size else 0
    # ids below 2**31 keep the (true, pred) pair keys below 2**62
    if top <= min(max(4 * flat.size, 1 << 16), 1 << 31):
        if flat.dtype == np.uint64:  # bincount refuses uint64, even small values
            flat = flat.astype(np.intp)
        counts = np.bincount(flat, minlength=1)
        ids = np.flatnonzero(counts[1:]) + 1
        return flat, ids, ids, counts[ids]
    ids, seq, areas = np.unique(flat, return_inverse=True, return_counts=True)
    if ids[0] == 0:
        ids, areas = ids[1:], areas[1:]
    else:
        seq = seq + 1
    return seq, np.arange(1, len(ids) + 1), ids, areas


@dataclass(frozen=True)
class Overlap:
    """Sparse overlap table of two label images: one entry per overlapping pair.

    Objects are indexed 0..n-1 in the order of their original ids.

    Attributes:
        n_true, n_pred: numbers of objects.
        area_true, area_pred: object areas (pixels), shapes (n_true,), (n_pred,).
        ids_true, ids_pred: original label ids of the objects.
        rows, cols: object indices of each overlapping pair, sorted by (row, col).
        intersection: pixel counts of each pair.

    Raises:
        ValueError: (``scores``) an unknown criterion.

    Example:
        >>> o = label_overlap(np.array([[1, 1, 0]]), np.array([[0, 5, 5]]))
        >>> o.n_true, o.ids_pred.tolist(), o.rows.tolist(), o.intersection.tolist()
        (1, [5], [0], [1])
    """

    n_true: int
    n_pred: int
    area_true: np.ndarray
    area_pred: np.ndarray
    ids_true: np.ndarray
    ids_pred: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    intersection: np.ndarray

    @property
    def union(self) -> np.ndarray:
        """Pixel counts of the union of each pair."""
        return self.area_true[self.rows] + self.area_pred[self.cols] - self.intersection

    def scores(self, criterion: str = "iou") -> np.ndarray:
        """float32 score of each pair: ``"iou"``, ``"iot"`` (over true) or ``"iop"``.

        Args:
            criterion: ``"iou"`` (intersection over union), ``"iot"``
                (over the true object's area) or ``"iop"`` (over the
                predicted object's area).

        Returns:
            float32 array, one score per pair (aligned with ``rows``/``cols``).

        Raises:
            ValueError: an unknown criterion.

        Example:
            >>> o = label_overlap(np.array([[1, 1, 0]]), np.array([[0, 5, 5]]))
            >>> o.scores("iou").tolist(), o.scores("iot").tolist()
            ([0.3333333432674408], [0.5])
        """
        inter = self.intersection.astype(np.float64)
        if criterion == "iou":
            denom = self.union
        elif criterion == "iot":
            denom = self.area_true[self.rows]
        elif criterion == "iop":
            denom = self.area_pred[self.cols]
        else:
            raise ValueError(f"unknown matching criterion {criterion!r}; expected one of "
                             f"{CRITERIA}")
        return (inter / denom).astype(_SCORE_DTYPE)


def label_overlap(y_true, y_pred) -> Overlap:
    """Build the sparse overlap table of two label images in one pass over the pixels.

    Args:
        y_true: ground-truth instance labels, any shape, integers >= 0.
        y_pred: predicted instance labels, same shape.

    Returns:
        An ``Overlap`` with one entry per pair of objects sharing pixels.

    Raises:
        ValueError: see ``check_label_pair``.

    Example:
        >>> o = label_overlap(np.array([[1, 1, 0]]), np.array([[0, 5, 5]]))
        >>> o.ids_pred.tolist(), o.intersection.tolist(), o.union.tolist()
        ([5], [1], [3])
    """
    y_true, y_pred = check_label_pair(y_true, y_pred)
    lab_true, val_true, ids_true, area_true = _objects(y_true.ravel())
    lab_pred, val_pred, ids_pred, area_pred = _objects(y_pred.ravel())
    # One pass: every pixel inside a true and a predicted object becomes a
    # (true value, pred value) key; unique() counts each pair's intersection.
    both = (lab_true > 0) & (lab_pred > 0)
    stride = int(val_pred[-1]) + 1 if len(val_pred) else 1
    key = lab_true[both].astype(np.int64) * stride + lab_pred[both].astype(np.int64)
    key, inter = np.unique(key, return_counts=True)
    return Overlap(
        n_true=len(ids_true), n_pred=len(ids_pred),
        area_true=area_true.astype(np.int64), area_pred=area_pred.astype(np.int64),
        ids_true=ids_true, ids_pred=ids_pred,
        rows=np.searchsorted(val_true, key // stride),
        cols=np.searchsorted(val_pred, key % stride),
        intersection=inter.astype(np.int64),
    )


# ---------------------------------------------------------------------------
# Matching


def _components(overlap: Overlap) -> np.ndarray:
    """Connected component of each overlapping pair in the true/pred overlap graph."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = overlap.n_true + overlap.n_pred
    graph = coo_matrix((np.ones(len(overlap.rows), np.int8),
                        (overlap.rows, overlap.n_true + overlap.cols)), shape=(n, n))
    _, node_component = connected_components(graph, directed=False)
    return node_component[overlap.rows]


def _assign(overlap: Overlap, scores: np.ndarray, thresh: float,
            components: list) -> np.ndarray:
    """Indices (into the pair arrays) of the true-positive pairs, ordered by true object.

    Same objective as StarDist: maximize the number of pairs with score >=
    thresh, then the sum of all assigned scores. Objects that share no pixel
    add nothing to it, so the problem splits into the connected components
    of the overlap graph; only components where candidates compete need the
    Hungarian algorithm.
    """
    candidate = scores >= thresh
    chosen = np.flatnonzero(candidate)
    row_counts = np.bincount(overlap.rows[chosen], minlength=overlap.n_true)
    col_counts = np.bincount(overlap.cols[chosen], minlength=overlap.n_pred)
    if row_counts.max(initial=0) <= 1 and col_counts.max(initial=0) <= 1:
        return chosen  # candidates are already one-to-one: the unique optimum
    busy = candidate & ((row_counts[overlap.rows] > 1) | (col_counts[overlap.cols] > 1))
    if not components:
        components.append(_components(overlap))
    component = components[0]
    conflicted = np.isin(component, np.unique(component[busy]))
    keep = [np.flatnonzero(candidate & ~conflicted)]
    n_matched = min(overlap.n_true, overlap.n_pred)
    pairs = np.flatnonzero(conflicted)
    pairs = pairs[np.argsort(component[pairs], kind="stable")]
    splits = np.flatnonzero(np.diff(component[pairs])) + 1
    for group in np.split(pairs, splits):
        if not len(group):
            continue
        r_ids, r = np.unique(overlap.rows[group], return_inverse=True)
        c_ids, c = np.unique(overlap.cols[group], return_inverse=True)
        sub = np.zeros((len(r_ids), len(c_ids)), _SCORE_DTYPE)
        sub[r, c] = scores[group]
        # StarDist's costs, float32 tie-breaker included, so ties resolve alike
        costs = -(sub >= thresh).astype(float) - sub / (2 * n_matched)
        ti, pi = linear_sum_assignment(costs)
        where = np.full(sub.shape, -1, np.intp)
        where[r, c] = group
        picked = where[ti, pi]
        keep.append(picked[picked >= 0])
    chosen = np.concatenate(keep)
    chosen = chosen[np.argsort(overlap.rows[chosen], kind="stable")]
    return chosen[scores[chosen] >= thresh]


def _safe_divide(x, y):
    # StarDist's scalar rule, kept with its dtypes so values match to the bit
    return x / y if abs(y) > 1e-10 else 0.0


def _mean_scores(sum_score, tp: int, fp: int, fn: int, n_true: int) -> dict:
    """The three score averages from the (float32) sum of matched scores.

    StarDist divides the float32 sum by n_true in float32 but by tp (a numpy
    int64) in float64; the same precisions are kept so the values agree.
    """
    total = float(sum_score)
    return dict(
        mean_true_score=float(_safe_divide(np.float32(sum_score), n_true)),
        mean_matched_score=_safe_divide(total, tp),
        panoptic_quality=_safe_divide(total, tp + fp / 2 + fn / 2),
    )


def _ratios(tp: int, fp: int, fn: int) -> tuple[float, float, float, float]:
    """precision, recall, accuracy, f1 (0 when tp is 0, as in StarDist)."""
    if tp == 0:
        return 0.0, 0.0, 0.0, 0.0
    return tp / (tp + fp), tp / (tp + fn), tp / (tp + fp + fn), 2 * tp / (2 * tp + fp + fn)


def _dense_assignment(overlap: Overlap, scores: np.ndarray, thresh: float):
    """StarDist's assignment on the full n_true x n_pred matrix.

    Used only at threshold 0, where every pair (even without overlap) counts
    as a match and which pairs carry a zero score changes the float32 sum.
    """
    dense = np.zeros((overlap.n_true, overlap.n_pred), _SCORE_DTYPE)
    dense[overlap.rows, overlap.cols] = scores
    costs = -(dense >= thresh).astype(float) - dense / (2 * min(dense.shape))
    ti, pi = linear_sum_assignment(costs)
    return ti, pi, dense[ti, pi]


def _single(overlap: Overlap, scores: np.ndarray, thresh: float, criterion: str,
            report_matches: bool, components: list) -> Matching:
    n_true, n_pred = overlap.n_true, overlap.n_pred
    if min(n_true, n_pred) == 0:
        ti = pi = np.zeros(0, np.intp)
        matched, sum_score = np.zeros(0, _SCORE_DTYPE), 0.0
    elif thresh > 0:
        tp_pairs = _assign(overlap, scores, thresh, components)
        ti, pi, matched = overlap.rows[tp_pairs], overlap.cols[tp_pairs], scores[tp_pairs]
        sum_score = np.sum(matched)
    else:
        ti, pi, matched = _dense_assignment(overlap, scores, thresh)
        sum_score = np.sum(matched)
    tp = len(matched)
    fp, fn = n_pred - tp, n_true - tp
    precision, recall, accuracy, f1 = _ratios(tp, fp, fn)
    record = dict(
        criterion=criterion, thresh=thresh, fp=fp, tp=tp, fn=fn,
        precision=precision, recall=recall, accuracy=accuracy, f1=f1,
        n_true=n_true, n_pred=n_pred,
        **_mean_scores(sum_score, tp, fp, fn, n_true),
    )
    if report_matches:
        record["matched_pairs"] = tuple(zip(overlap.ids_true[ti].tolist(),
                                            overlap.ids_pred[pi].tolist()))
        record["matched_scores"] = tuple(matched.tolist())
    return Matching(**record)


def parse_thresholds(thresh) -> tuple[list[float], bool]:
    """``(thresholds as floats, whether a single one was given)`` of a ``thresh`` argument.

    Args:
        thresh: a number in [0, 1] or a sequence of them.

    Returns:
        ``(list of floats, single)``.

    Raises:
        ValueError: None, empty, not a number, or outside [0, 1].

    Example:
        >>> parse_thresholds(0.5), parse_thresholds([0.5, 0.75])
        (([0.5], True), ([0.5, 0.75], False))
    """
    if thresh is None:
        raise ValueError("thresh is None; expected a number in [0, 1] or a list of them")
    single = np.isscalar(thresh)
    values = [thresh] if single else list(thresh)
    if not values:
        raise ValueError("thresh is an empty sequence; expected a number in [0, 1] or a "
                         "list of them")
    out = []
    for t in values:
        try:
            t = float(t)
        except (TypeError, ValueError):
            raise ValueError(f"threshold {t!r} is not a number; expected a number in "
                             "[0, 1]") from None
        if not 0.0 <= t <= 1.0:
            raise ValueError(f"threshold {t} is outside [0, 1]")
        out.append(t)
    return out, single


def _check_criterion(criterion: str) -> None:
    if criterion not in CRITERIA:
        raise ValueError(f"unknown matching criterion {criterion!r}; expected one of "
                         f"{CRITERIA}")


def match_overlap(overlap: Overlap, thresh=0.5, criterion: str = "iou",
                  report_matches: bool = False):
    """``matching`` on an already computed ``Overlap`` (to score one pair many ways).

    Args:
        overlap: from ``label_overlap(y_true, y_pred)``.
        thresh: threshold in [0, 1], or a list/tuple of them.
        criterion: ``"iou"``, ``"iot"`` or ``"iop"``.
        report_matches: also return the matched pairs and their scores.

    Returns:
        A ``Matching``, or a list of them for a list of thresholds.

    Raises:
        ValueError: an unknown criterion or a threshold outside [0, 1].

    Example:
        >>> o = label_overlap(np.array([[1, 1, 0]]), np.array([[0, 5, 5]]))
        >>> [m.tp for m in match_overlap(o, thresh=[0.3, 0.5])]
        [1, 0]
    """
    _check_criterion(criterion)
    values, single = parse_thresholds(thresh)
    scores = overlap.scores(criterion)
    components: list = []  # computed at most once, and only if needed
    records = [_single(overlap, scores, t, criterion, report_matches, components)
               for t in values]
    return records[0] if single else records


def matching(y_true, y_pred, thresh=0.5, criterion: str = "iou",
             report_matches: bool = False):
    """Match true and predicted objects one-to-one and count detections.

    A pair can match when its score (``criterion``) is at least ``thresh``.
    The assignment maximizes the number of matches, then the sum of scores
    (Hungarian algorithm, score as tie-breaker), exactly as
    ``stardist.matching.matching``: counts and scores are identical.

    Args:
        y_true: ground-truth instance labels (any shape, integers >= 0, 0 =
            background; ids need not be sequential).
        y_pred: predicted instance labels of the same shape.
        thresh: threshold in [0, 1], or a list/tuple of them. At 0 every
            assigned pair counts as a match, even without overlap (as in
            StarDist); that case solves the full dense assignment, which is
            slow for thousands of objects.
        criterion: ``"iou"`` (intersection over union), ``"iot"``
            (intersection over the true object's area) or ``"iop"`` (over the
            predicted object's area).
        report_matches: also return the matched (true id, pred id) pairs and
            their scores. Unlike StarDist, only true-positive pairs are listed.

    Returns:
        A ``Matching``, or a list of them (one per threshold) when ``thresh``
        is a list or tuple.

    Raises:
        ValueError: different shapes, non-integer or negative labels, an
            unknown criterion, or a threshold outside [0, 1].

    Example:
        >>> y_true = np.zeros((100, 100), np.uint16); y_true[10:20, 10:20] = 1
        >>> y_pred = np.roll(y_true, 5, axis=0)
        >>> m = matching(y_true, y_pred, thresh=[0.3, 0.5])
        >>> [(r.tp, r.fp, r.fn) for r in m]                 # IoU = 50 / 150
        [(1, 0, 0), (0, 1, 1)]
    """
    _check_criterion(criterion)
    parse_thresholds(thresh)  # fail before the pixel pass
    return match_overlap(label_overlap(y_true, y_pred), thresh, criterion, report_matches)


# ---------------------------------------------------------------------------
# Datasets


def pool_matchings(records: Sequence[Matching], thresh: float, criterion: str,
                   by_image: bool) -> DatasetMatching:
    """One ``DatasetMatching`` from per-image ``Matching`` records at one threshold.

    Args:
        records: the images' matchings at ``thresh``.
        thresh, criterion: recorded in the result.
        by_image: average the per-image scores (True) or pool the counts (False).

    Returns:
        The dataset's ``DatasetMatching``, summed in StarDist's order and precision.

    Example:
        >>> y = np.array([[1, 0], [0, 2]])
        >>> pool_matchings([matching(y, y)], 0.5, "iou", False).accuracy
        1.0
    """
    # Accumulates in StarDist's order and precision (float32 score sums).
    tp = fp = fn = n_true = n_pred = 0
    sums = {k: 0 for k in ("precision", "recall", "accuracy", "f1",
                           "mean_matched_score", "panoptic_quality")}
    sum_true_score = np.float32(0)
    for r in records:
        tp, fp, fn = tp + r.tp, fp + r.fp, fn + r.fn
        n_true, n_pred = n_true + r.n_true, n_pred + r.n_pred
        if by_image:
            for k in sums:
                sums[k] = sums[k] + getattr(r, k)
            sum_true_score = sum_true_score + np.float32(r.mean_true_score)
        else:
            # StarDist pools "mean_true_score * n_true" as the matched-score sum
            sum_true_score = sum_true_score + np.float32(r.mean_true_score) * r.n_true
    n_images = len(records)
    if by_image:
        n = max(n_images, 1)
        values = {k: v / n for k, v in sums.items()}
        values["mean_true_score"] = float(sum_true_score / n)
    else:
        precision, recall, accuracy, f1 = _ratios(tp, fp, fn)
        values = dict(precision=precision, recall=recall, accuracy=accuracy, f1=f1,
                      **_mean_scores(sum_true_score, tp, fp, fn, n_true))
    return DatasetMatching(criterion=criterion, thresh=thresh, fp=fp, tp=tp, fn=fn,
                           n_true=n_true, n_pred=n_pred, by_image=bool(by_image),
                           n_images=n_images, **values)


def matching_dataset(ys_true: Iterable, ys_pred: Iterable, thresh=0.5,
                     criterion: str = "iou", by_image: bool = False,
                     progress: bool = True):
    """Detection scores of a whole dataset, pooled or averaged per image.

    With ``by_image=False`` tp, fp and fn are summed over all images before
    the ratios are taken (the AP of the StarDist paper); with ``by_image=True``
    the ratios and mean scores are averaged over images (counts still
    summed). Identical to ``stardist.matching.matching_dataset``.

    Args:
        ys_true: sequence of ground-truth label images.
        ys_pred: sequence of predicted label images, same length and shapes.
        thresh: threshold in [0, 1], or a list/tuple of them.
        criterion: ``"iou"``, ``"iot"`` or ``"iop"``.
        by_image: average per image instead of pooling counts.
        progress: show a progress bar (``nuclib.progress``).

    Returns:
        A ``DatasetMatching``, or a list of them for a list of thresholds.

    Raises:
        ValueError: sequences of different lengths, or see ``matching``.

    Example:
        >>> y = np.zeros((10, 10), np.uint8); y[2:6, 2:6] = 1
        >>> matching_dataset([y, y], [y, np.zeros_like(y)]).accuracy
        0.5
    """
    from nuclib.progress import progress_bar

    _check_criterion(criterion)
    values, single = parse_thresholds(thresh)
    ys_true, ys_pred = list(ys_true), list(ys_pred)
    if len(ys_true) != len(ys_pred):
        raise ValueError(f"{len(ys_true)} true label images but {len(ys_pred)} predicted "
                         "ones; expected one prediction per image")
    per_image = [match_overlap(label_overlap(t, p), values, criterion)
                 for t, p in progress_bar(list(zip(ys_true, ys_pred)), desc="matching",
                                          unit="image", enabled=progress)]
    out = [pool_matchings([records[i] for records in per_image], t, criterion, by_image)
           for i, t in enumerate(values)]
    return out[0] if single else out
