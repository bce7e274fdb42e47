"""Three-class probabilities plus a distance map to instances: marker-controlled watershed.

The ``"three_class_distance"`` head predicts the three classes and, per
pixel, its distance to the nucleus' edge divided by the largest distance
in that nucleus (1 at every centre, ~0 at every edge, whatever the size).
``distance_to_labels`` turns them into instances:

1. The foreground is where background is unlikely:
   ``1 - p_background > foreground_threshold``.
2. Markers are the connected parts of the foreground where the distance
   exceeds ``seed_threshold``: regions around the distance maxima. As the
   distance falls to ~0 where two nuclei touch, touching nuclei get one
   marker each even when the model draws no boundary between them.
3. The markers grow over the foreground by watershed on the negated
   distance, so each pixel joins the nucleus whose centre it climbs to.
4. Foreground components that no marker reached become objects of their
   own, and objects under ``min_size`` pixels are dropped.

Example:
    >>> from nuclib.data.targets import three_class_distance
    >>> labels = np.zeros((20, 30), np.int32); labels[4:16, 3:14] = 1; labels[4:16, 14:27] = 2
    >>> t = three_class_distance(labels)
    >>> probs = np.concatenate([np.eye(3, dtype=np.float32)[t[..., 0].astype(int)],
    ...                         t[..., 1:]], axis=-1)
    >>> int(distance_to_labels(probs).max())
    2
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from nuclib.postprocess.instances import (_CROSS, _add_unseeded, _check_probabilities,
                                          _check_size, _check_threshold, _grow_seeds,
                                          remove_small_instances)


def check_distance_maps(probs, *, from_logits: bool = False) -> np.ndarray:
    """Validate ``(H, W, 4)`` three-class-plus-distance maps; return them as float32.

    Args:
        probs: background, interior and boundary probabilities, then the distance.
        from_logits: ``probs`` holds class logits and the distance's logit.

    Returns:
        float32 ``(H, W, 4)`` maps in [0, 1].

    Raises:
        ValueError: wrong shape (naming the head it fits instead), NaNs,
            values outside [0, 1].

    Example:
        >>> check_distance_maps(np.full((2, 2, 4), 0.25, np.float32)).shape
        (2, 2, 4)
    """
    arr = np.asarray(probs)
    if arr.ndim != 3 or arr.shape[2] != 4:
        hint = ""
        if arr.ndim == 3 and arr.shape[2] == 3:
            hint = "; these are three-class probabilities: use three_class_to_labels"
        elif arr.ndim == 4 and arr.shape[0] == 1:
            hint = "; for a batch of one pass probs[0]"
        raise ValueError(f"maps have shape {arr.shape}; expected HxWx4 (background, interior, "
                         f"boundary, normalized distance){hint}")
    classes = _check_probabilities(arr[..., :3], kind="three_class", from_logits=from_logits)
    distance = arr[..., 3:].astype(np.float32)
    if from_logits:
        distance = 1.0 / (1.0 + np.exp(-distance))
    distance = _check_probabilities(distance, kind="binary", from_logits=False)
    return np.concatenate([classes, distance[..., None]], axis=-1)


def distance_to_labels(probs, *, foreground_threshold: float = 0.5,
                       seed_threshold: float = 0.5, min_size: int = 0,
                       from_logits: bool = False) -> np.ndarray:
    """Instances from three-class probabilities and a normalized distance map.

    The steps are listed in the module docstring.

    Args:
        probs: ``(H, W, 4)``: background, interior and boundary probabilities,
            then the normalized distance to the nucleus' edge, all in [0, 1].
        foreground_threshold: a pixel is foreground when ``1 - p_background``
            exceeds this.
        seed_threshold: markers are foreground regions whose distance exceeds this.
        min_size: drop objects smaller than this many pixels.
        from_logits: ``probs`` holds class logits and the distance's logit.

    Returns:
        uint32 HxW labels, nuclei numbered 1..N.

    Raises:
        ValueError: bad maps or parameters out of range.

    Example:
        >>> probs = np.zeros((8, 8, 4), np.float32); probs[..., 0] = 1
        >>> int(distance_to_labels(probs).max())
        0
    """
    p = check_distance_maps(probs, from_logits=from_logits)
    foreground_threshold = _check_threshold("foreground_threshold", foreground_threshold)
    seed_threshold = _check_threshold("seed_threshold", seed_threshold)
    min_size = _check_size("min_size", min_size)
    foreground = (1.0 - p[..., 0]) > foreground_threshold
    distance = p[..., 3]
    markers, _ = ndi.label(foreground & (distance > seed_threshold), structure=_CROSS)
    labels = _grow_seeds(-distance, markers, foreground)
    return remove_small_instances(_add_unseeded(labels, foreground), min_size)
