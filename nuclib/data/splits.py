"""Train / validation / test splits: deterministic, disjoint, exhaustive, groups kept whole.

``split(items, fractions)`` shuffles with a seed and deals the items (image
pairs, file names, anything) into one list per fraction. ``groups`` keeps
items that must not be separated together (crops or tiles of one source
image, the images of one patient or slide), so that no validation image has
a near copy in the training set; ``stratify`` splits each stratum (imaging
modality, stain, lab) on its own, so that every split gets its share of each.

Example:
    >>> train, val, test = split(list(range(10)), (0.8, 0.1, 0.1), seed=0)
    >>> len(train), len(val), len(test)
    (8, 1, 1)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence

import numpy as np

__all__ = ["split", "split_sizes"]


def split_sizes(n: int, fractions: Sequence[float]) -> list[int]:
    """How many of ``n`` items each fraction gets: largest-remainder rounding.

    Each split gets ``floor(n * fraction)``; the items left over go one each
    to the splits with the largest remainders (the earlier split on a tie),
    so the sizes always add up to ``n`` and none is more than one item from
    ``n * fraction``.

    Args:
        n: number of items, >= 0.
        fractions: non-negative fractions that add up to 1.

    Returns:
        One size per fraction, summing to ``n``.

    Raises:
        ValueError: a negative ``n``, or fractions that are empty, negative,
            not finite or do not add up to 1.

    Example:
        >>> split_sizes(7, (0.8, 0.1, 0.1))
        [5, 1, 1]
        >>> split_sizes(10, (0.7, 0.2, 0.1))
        [7, 2, 1]
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be an int >= 0, got {n!r}")
    fractions = _check_fractions(fractions)
    # Rounded first, so that 0.29 * 100 = 28.999999999999996 counts as 29.
    exact = [round(n * f, 9) for f in fractions]
    sizes = [math.floor(e) for e in exact]
    left = n - sum(sizes)
    by_remainder = sorted(range(len(sizes)), key=lambda i: (-(exact[i] - sizes[i]), i))
    for i in by_remainder[:left]:
        sizes[i] += 1
    return sizes


def split(items, fractions: Sequence[float] = (0.8, 0.1, 0.1), *, seed: int = 0,
          groups: Sequence[Hashable] | Callable | None = None,
          stratify: Sequence[Hashable] | Callable | None = None) -> tuple[list, ...]:
    """Split ``items`` into one list per fraction (train, validation, test, ...).

    Steps, within each stratum (all items form one stratum without
    ``stratify``):

    1. target sizes: ``split_sizes(stratum size, fractions)``;
    2. the stratum's groups (each item its own group without ``groups``) are
       shuffled with ``seed``, then ordered largest first (a stable sort, so
       equal sizes stay shuffled);
    3. each group in turn goes to the split that is furthest below its
       target (the earlier split on a tie).

    Without groups the sizes are exactly the targets. Whole groups can
    overshoot a target by less than a group's size; a group larger than
    every target lands in the split with the largest one.

    Args:
        items: a sequence of anything (e.g. the pairs of ``folder_pairs``).
        fractions: non-negative fractions adding up to 1, one per split;
            ``(0.8, 0.2)`` gives train and validation only.
        seed: int seed: the same seed and items give the same split.
        groups: a group key per item (a sequence as long as ``items``), or a
            function of an item returning its key; items with the same key
            land in the same split.
        stratify: a stratum key per item (sequence or function); each stratum
            is split by ``fractions`` on its own. A group must lie within one
            stratum.

    Returns:
        A tuple of lists, one per fraction; together they hold every item
        exactly once, each list in the order of ``items``.

    Raises:
        ValueError: no items, bad fractions, a seed that is not an int, a key
            sequence whose length differs from ``items``, or a group found in
            two strata (the group is named).

    Example:
        >>> images = ["a_1", "a_2", "b_1", "c_1", "c_2", "d_1"]
        >>> train, val = split(images, (0.5, 0.5), seed=0, groups=lambda s: s[0])
        >>> sorted(train + val) == images, {s[0] for s in train} & {s[0] for s in val}
        (True, set())
    """
    items = list(items)
    if not items:
        raise ValueError("split got no items; expected a non-empty sequence")
    fractions = _check_fractions(fractions)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an int (the same seed gives the same split), got "
                         f"{seed!r}")
    group_of = _keys("groups", groups, items, default=range(len(items)))
    stratum_of = _keys("stratify", stratify, items, default=[0] * len(items))

    # Groups (in order of first appearance) and the stratum each lies in.
    members: dict = {}
    group_stratum: dict = {}
    for index, (group, stratum) in enumerate(zip(group_of, stratum_of)):
        members.setdefault(group, []).append(index)
        if group_stratum.setdefault(group, stratum) != stratum:
            raise ValueError(f"group {group!r} has items in strata {group_stratum[group]!r} and "
                             f"{stratum!r}; expected every group within one stratum")
    strata: dict = {}
    for group in members:
        strata.setdefault(group_stratum[group], []).append(group)

    rng = np.random.default_rng(seed)
    assigned: list[list[int]] = [[] for _ in fractions]
    for stratum_groups in strata.values():
        # 1. targets.
        targets = split_sizes(sum(len(members[g]) for g in stratum_groups), fractions)
        # 2. shuffle, then largest first.
        order = [stratum_groups[i] for i in rng.permutation(len(stratum_groups))]
        order.sort(key=lambda g: -len(members[g]))
        # 3. each group to the split furthest below its target.
        filled = [0] * len(fractions)
        for group in order:
            k = max(range(len(fractions)), key=lambda i: (targets[i] - filled[i], -i))
            assigned[k] += members[group]
            filled[k] += len(members[group])
    return tuple([items[i] for i in sorted(indices)] for indices in assigned)


def _check_fractions(fractions) -> list[float]:
    try:
        values = [float(f) for f in fractions]
    except (TypeError, ValueError) as err:
        raise ValueError(f"fractions must be a sequence of numbers, got {fractions!r}") from err
    if not values or any(not math.isfinite(f) or f < 0 for f in values):
        raise ValueError(f"fractions must be one or more finite numbers >= 0, got {fractions!r}")
    if abs(sum(values) - 1.0) > 1e-6:
        raise ValueError(f"fractions must add up to 1, got {fractions!r} (sum {sum(values):g})")
    return values


def _keys(name: str, keys, items: list, *, default) -> list:
    """One key per item, from a sequence or a function of the item."""
    if keys is None:
        return list(default)
    if callable(keys):
        return [keys(item) for item in items]
    if isinstance(keys, (str, bytes)):
        raise ValueError(f"{name} must be a key per item or a function, got the string "
                         f"{keys!r}")
    keys = list(keys)
    if len(keys) != len(items):
        raise ValueError(f"{name} has {len(keys)} keys for {len(items)} items; expected one "
                         "key per item (or a function of an item)")
    return keys
