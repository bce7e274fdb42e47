"""Search the post-processing parameters that score best on validation data.

As StarDist tunes its probability and NMS thresholds after training, this
module tunes the thresholds of ``three_class_to_labels`` or
``binary_to_labels`` on a validation set: a coordinate search over a small
grid (or the full grid), scored with a detection metric from
``nuclib.metrics``.

Example:
    >>> tuned = optimize_thresholds(val_probs, val_labels, kind="three_class")  # doctest: +SKIP
    >>> labels = three_class_to_labels(probs, **tuned["params"])               # doctest: +SKIP
"""

from __future__ import annotations

import inspect
import itertools
import re
from typing import Callable, Sequence

import numpy as np

from nuclib.postprocess.instances import (_check_probabilities, binary_to_labels,
                                          remove_small_instances, three_class_to_labels)

from nuclib.postprocess.distance import check_distance_maps, distance_to_labels
from nuclib.postprocess.star import check_star_maps, star_to_labels

# A model's head -> the function that turns its output into instances.
KINDS = {"three_class": three_class_to_labels, "binary": binary_to_labels,
         "star": star_to_labels, "three_class_distance": distance_to_labels}
_CHECKS = {"star": check_star_maps, "three_class_distance": check_distance_maps}

DEFAULT_GRIDS: dict[str, dict[str, tuple]] = {
    "three_class": {
        "seed_threshold": (0.3, 0.4, 0.5, 0.6, 0.7, 0.8),
        "boundary_boost": (0.5, 1.0, 1.5, 2.0, 3.0),
        "foreground_threshold": (0.3, 0.4, 0.5, 0.6, 0.7),
        "seed_split_height": (0.0, 1.5, 2.0, 3.0),
        "min_size": (0, 8, 16, 24, 32, 48),
    },
    "binary": {
        "threshold": (0.3, 0.4, 0.5, 0.6, 0.7),
        "split": (False, True),
        "split_height": (0.5, 1.0, 1.5, 2.0, 3.0, 4.0),
        "min_size": (0, 8, 16, 24, 32, 48),
    },
    "three_class_distance": {
        "foreground_threshold": (0.3, 0.4, 0.5, 0.6, 0.7),
        "seed_threshold": (0.3, 0.4, 0.5, 0.6, 0.7),
        "min_size": (0, 8, 16, 24, 32, 48),
    },
    "star": {
        "prob_threshold": (0.3, 0.4, 0.5, 0.6, 0.7),
        "nms_threshold": (0.2, 0.3, 0.4, 0.5),
        "grid": (1, 2),
        "min_size": (0, 8, 16, 24, 32, 48),
    },
}

SCORE_NAMES = ("ap50", "ap75", "ap90", "apNN", "f1", "f1NN", "pq", "dsb")

# min_size is the last post-processing step, so it can be applied to cached
# labels computed without it instead of rerunning the watershed.
_CHEAP = "min_size"


def _score_function(score) -> tuple[str, Callable]:
    """(name, fn(ys_true, ys_pred) -> float) for a score name or callable."""
    if callable(score):
        return getattr(score, "__name__", "custom"), score
    from nuclib.metrics import dsb_score, matching_dataset

    if score == "dsb":
        return score, lambda ys_true, ys_pred: float(dsb_score(ys_true, ys_pred))
    found = re.fullmatch(r"(ap|f1|pq)(\d\d)?", str(score))
    if not found:
        raise ValueError(f"unknown score {score!r}; expected one of {SCORE_NAMES} (NN = IoU "
                         "threshold in percent, e.g. 'ap75') or a callable "
                         "score(ys_true, ys_pred) -> float")
    field = {"ap": "accuracy", "f1": "f1", "pq": "panoptic_quality"}[found.group(1)]
    thresh = int(found.group(2) or 50) / 100

    def fn(ys_true, ys_pred):
        return float(getattr(matching_dataset(ys_true, ys_pred, thresh=thresh), field))

    return score, fn


def _plain(value):
    """numpy scalars to Python ones, so the params dict is JSON-friendly."""
    return value.item() if isinstance(value, np.generic) else value


def _check_inputs(probs_list, labels_list, kind) -> tuple[list, list]:
    probs_list, labels_list = list(probs_list), list(labels_list)
    if not probs_list:
        raise ValueError("probs_list is empty; expected at least one probability map")
    if len(probs_list) != len(labels_list):
        raise ValueError(f"probs_list has {len(probs_list)} items but labels_list has "
                         f"{len(labels_list)}; expected one label image per probability map")
    checked, truths = [], []
    for i, (probs, labels) in enumerate(zip(probs_list, labels_list)):
        try:
            p = (_CHECKS[kind](probs) if kind in _CHECKS
                 else _check_probabilities(probs, kind=kind, from_logits=False))
        except ValueError as err:
            raise ValueError(f"probs_list[{i}]: {err}") from None
        y = np.asarray(labels)
        if y.ndim == 3 and y.shape[2] == 1:
            y = y[..., 0]
        if y.shape != p.shape[:2]:
            raise ValueError(f"labels_list[{i}] has shape {y.shape} but probs_list[{i}] has "
                             f"shape {np.shape(probs)}; expected the same height and width")
        checked.append(p)
        truths.append(y)
    return checked, truths


def postprocess_parameters(kind: str) -> set[str]:
    """The tunable keyword parameters of a head's post-processing function.

    Args:
        kind: ``"three_class"`` or ``"binary"`` (a model's head).

    Returns:
        Parameter names of ``three_class_to_labels`` or ``binary_to_labels``
        (every keyword-only argument except ``from_logits``).

    Raises:
        ValueError: an unknown kind.

    Example:
        >>> sorted(postprocess_parameters("binary"))[:3]
        ['dilation', 'fill_holes', 'min_distance']
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {tuple(KINDS)}")
    signature = inspect.signature(KINDS[kind]).parameters
    return {n for n, p in signature.items() if p.kind is p.KEYWORD_ONLY} - {"from_logits"}


def check_postprocess(kind: str, params: dict) -> dict:
    """Check post-processing parameters before any real work: names and values.

    Unknown names raise with the accepted ones; values are checked by running
    the post-processing once on a tiny all-background map, so a recipe or a
    command line fails at once rather than after training or on the first image.

    Args:
        kind: ``"three_class"`` or ``"binary"`` (a model's head).
        params: keyword arguments for ``three_class_to_labels`` / ``binary_to_labels``.

    Returns:
        ``params`` as a new dict.

    Raises:
        ValueError: an unknown kind or parameter name, or an unusable value
            (the message is the post-processing function's own).

    Example:
        >>> check_postprocess("binary", {"split_height": 2.0})
        {'split_height': 2.0}
    """
    accepted = postprocess_parameters(kind)
    params = dict(params)
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: not a post-processing parameter of "
                         f"{KINDS[kind].__name__}; expected some of {sorted(accepted)}")
    channels = {"three_class": 3, "star": 5, "three_class_distance": 4}.get(kind, 1)
    background = np.zeros((4, 4, channels), np.float32)
    if kind in ("three_class", "three_class_distance"):
        background[..., 0] = 1.0
    try:
        KINDS[kind](background, **params)
    except TypeError as err:  # e.g. a string where a number belongs
        raise ValueError(str(err)) from None
    return params


def _check_grid(grid, kind, accepted) -> dict[str, list]:
    grid = DEFAULT_GRIDS[kind] if grid is None else grid
    if not isinstance(grid, dict) or not grid:
        raise ValueError(f"grid must be a non-empty dict of parameter name -> list of values, "
                         f"got {grid!r}")
    out = {}
    for name, values in grid.items():
        if name not in accepted:
            raise ValueError(f"grid has unknown parameter {name!r}; {KINDS[kind].__name__} "
                             f"accepts {sorted(accepted)}")
        values = [values] if np.isscalar(values) else list(values)
        if not values:
            raise ValueError(f"grid[{name!r}] is empty; expected at least one value")
        out[name] = [_plain(v) for v in values]
    return out


def optimize_thresholds(probs_list: Sequence, labels_list: Sequence, *,
                        kind: str = "three_class", grid: dict | None = None,
                        score="ap50", base: dict | None = None, search: str = "coordinate",
                        max_rounds: int = 3, progress: bool = True) -> dict:
    """Find the post-processing parameters that maximize a score on validation data.

    Starts from the function's defaults (updated by ``base``) and, with
    ``search="coordinate"``, sweeps one parameter at a time over its grid
    values, keeping a change only if the score strictly improves, until a
    full round changes nothing (or ``max_rounds``). ``search="grid"`` tries
    every combination. The returned score is therefore never below the
    starting one. Scores are memoized per setting, and labels computed
    without the size filter are reused while only ``min_size`` changes.

    Args:
        probs_list: validation probability maps, HxWx3 (``kind="three_class"``)
            or HxW / HxWx1 (``kind="binary"``), floats in [0, 1].
        labels_list: the matching ground-truth instance label images.
        kind: ``"three_class"`` (tunes ``three_class_to_labels``) or
            ``"binary"`` (``binary_to_labels``).
        grid: parameter name -> candidate values; ``None`` uses
            ``DEFAULT_GRIDS[kind]``. Parameters not in the grid stay fixed.
        score: ``"apNN"`` (pooled tp / (tp + fp + fn) at IoU NN/100, e.g.
            ``"ap50"``), ``"f1NN"``, ``"pqNN"`` (panoptic quality), ``"dsb"``
            (Kaggle DSB2018 score), or a callable ``score(ys_true, ys_pred) -> float``.
        base: fixed parameters (and the starting point for those in the grid).
        search: ``"coordinate"`` or ``"grid"``.
        max_rounds: coordinate-search rounds at most.
        progress: show a progress bar over evaluated settings.

    Returns:
        dict with ``params`` (keyword arguments for the post-processing
        function: the searched ones plus ``base``), ``score`` (their score),
        ``default_score`` (the starting point's score), ``score_name``,
        ``kind`` and ``n_evaluations``.

    Raises:
        ValueError: empty or mismatched inputs (naming the item), an unknown
            kind, score, search or parameter name.

    Example:
        >>> tuned = optimize_thresholds(val_probs, val_labels, score="dsb")   # doctest: +SKIP
        >>> tuned["params"]                                                  # doctest: +SKIP
        {'seed_threshold': 0.6, 'boundary_boost': 1.0, 'foreground_threshold': 0.4, 'min_size': 16}
    """
    from nuclib.progress import progress_bar

    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {tuple(KINDS)}")
    if search not in ("coordinate", "grid"):
        raise ValueError(f"unknown search {search!r}; expected 'coordinate' or 'grid'")
    function = KINDS[kind]
    signature = inspect.signature(function).parameters
    accepted = postprocess_parameters(kind)
    grid = _check_grid(grid, kind, accepted)
    base = dict(base or {})
    unknown = set(base) - accepted
    if unknown:
        raise ValueError(f"base has unknown parameters {sorted(unknown)}; "
                         f"{function.__name__} accepts {sorted(accepted)}")
    score_name, score_fn = _score_function(score)
    probs, truths = _check_inputs(probs_list, labels_list, kind)

    start = {name: signature[name].default for name in grid}
    start.update(base)
    cache: dict = {}           # setting -> score
    raw: dict = {}             # the last setting without min_size -> its labels

    def evaluate(params: dict) -> float:
        key = tuple(sorted(params.items(), key=lambda item: item[0]))
        if key in cache:
            return cache[key]
        min_size = params.get(_CHEAP, signature[_CHEAP].default)
        rest = tuple(item for item in key if item[0] != _CHEAP)
        if rest not in raw:
            raw.clear()
            settings = {**params, _CHEAP: 0}
            raw[rest] = [function(p, **settings) for p in probs]
        preds = [remove_small_instances(y, min_size) for y in raw[rest]]
        cache[key] = float(score_fn(truths, preds))
        bar.update(1)
        bar.set_postfix(best=f"{max(cache.values()):.4f}")
        return cache[key]

    with progress_bar(desc=f"tuning {kind} thresholds", unit="setting",
                      enabled=progress) as bar:
        best_params, best = dict(start), evaluate(start)
        start_score = best
        if search == "grid":
            # min_size innermost, so the cached labels are reused across its values
            names = sorted(grid, key=lambda n: n == _CHEAP)
            for values in itertools.product(*(grid[n] for n in names)):
                candidate = {**start, **dict(zip(names, values))}
                value = evaluate(candidate)
                if value > best:
                    best_params, best = candidate, value
        else:
            for _ in range(max(int(max_rounds), 1)):
                changed = False
                for name, values in grid.items():
                    for v in values:
                        candidate = {**best_params, name: v}
                        value = evaluate(candidate)
                        if value > best:
                            best_params, best, changed = candidate, value, True
                if not changed:
                    break
    return {
        "params": {name: _plain(value) for name, value in best_params.items()},
        "score": best,
        "default_score": start_score,
        "score_name": score_name,
        "kind": kind,
        "n_evaluations": len(cache),
    }
