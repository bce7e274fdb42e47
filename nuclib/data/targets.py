"""Training targets from instance labels: three-class and binary.

Three-class order is (background, interior, boundary) everywhere.

Example:
    >>> import numpy as np
    >>> labels = np.zeros((6, 6), np.int32); labels[1:5, 1:3] = 1; labels[1:5, 3:5] = 2
    >>> t = three_class(labels, boundary="thick")
    >>> t.shape, t.dtype
    ((6, 6), dtype('uint8'))
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import find_boundaries

from nuclib.labels import check_labels

BOUNDARY_MODES = ("outer", "inner", "thick")


def remove_small(labels, min_size: int) -> np.ndarray:
    """Set objects with fewer than ``min_size`` pixels to background.

    Args:
        labels: HxW integer instance labels (negative ids, e.g. the ignore
            label -1, are kept as they are).
        min_size: smallest object size (pixels) to keep; <= 1 keeps everything.

    Returns:
        Labels of the same shape and dtype.

    Raises:
        ValueError: labels that are not a 2-D integer image.

    Example:
        >>> remove_small(np.array([[1, 0, 2, 2]]), 2).tolist()
        [[0, 0, 2, 2]]
    """
    arr = check_labels(labels, ignore=True)
    if min_size <= 1:
        return arr
    ids, inverse = np.unique(arr, return_inverse=True)
    sizes = np.bincount(inverse.ravel())
    keep = (sizes >= min_size) | (ids <= 0)
    return np.where(keep[inverse.reshape(arr.shape)], arr, 0).astype(arr.dtype)


def boundaries(labels, mode: str = "thick", width: int = 1) -> np.ndarray:
    """Boolean boundary mask between instances (and between instances and background).

    Args:
        labels: HxW integer instance labels.
        mode: ``"thick"`` (pixels on both sides of every label change),
            ``"inner"`` (pixels inside objects), ``"outer"`` (pixels outside
            objects, i.e. the background ring and the neighbour's rim).
        width: dilate the boundary ``width - 1`` times (a 4-connected step
            each); ``"inner"`` boundaries stay inside the objects.

    Returns:
        HxW bool array.

    Raises:
        ValueError: labels that are not a 2-D integer image, an unknown mode
            or ``width < 1``.

    Example:
        >>> boundaries(np.array([[1, 1, 2, 2]])).astype(int).tolist()
        [[0, 1, 1, 0]]
    """
    if mode not in BOUNDARY_MODES:
        raise ValueError(f"unknown boundary mode {mode!r}; expected one of {BOUNDARY_MODES}")
    if width < 1:
        raise ValueError(f"boundary width must be >= 1, got {width}")
    arr = check_labels(labels, ignore=True)
    if arr.dtype.itemsize > 4 and (arr.size == 0 or arr.max() <= np.iinfo(np.int32).max):
        # find_boundaries' "outer" mode overflows on 64-bit labels (it inverts
        # the background to the dtype's maximum), marking lone pixels wrongly.
        arr = arr.astype(np.int32)
    edge = find_boundaries(arr, mode=mode, connectivity=1)
    if width > 1:
        edge = ndi.binary_dilation(edge, iterations=width - 1)
        if mode == "inner":
            edge &= arr > 0
    return edge


def expand_labels(labels, distance: int = 1) -> np.ndarray:
    """Grow every object by ``distance`` pixels into the background, never into a neighbour.

    A thin wrapper of ``skimage.segmentation.expand_labels`` (each background
    pixel within ``distance`` goes to the nearest object).

    Args:
        labels: HxW integer instance labels.
        distance: pixels to grow; 0 returns the labels unchanged.

    Returns:
        Labels of the same shape and dtype.

    Raises:
        ValueError: labels that are not a 2-D integer image, or a negative distance.

    Example:
        >>> expand_labels(np.array([[0, 0, 1, 0, 0, 2]]), 1).tolist()
        [[0, 1, 1, 1, 2, 2]]
    """
    from skimage.segmentation import expand_labels as grow

    arr = check_labels(labels, ignore=True)
    if distance < 0:
        raise ValueError(f"expand distance must be >= 0, got {distance}")
    if distance == 0:
        return arr
    return grow(arr, distance=distance).astype(arr.dtype, copy=False)


def three_class(labels, *, boundary: str = "thick", width: int = 1, expand: int = 0,
                min_size: int = 0, one_hot: bool = False) -> np.ndarray:
    """Background (0) / interior (1) / boundary (2) target from instance labels.

    Touching nuclei are always separated by boundary pixels. With
    ``boundary="outer"`` the ring around each object is boundary (it may
    cover background); ``"inner"`` keeps the boundary inside objects, so
    interior + boundary is exactly the object; ``"thick"`` marks both sides
    of every label change (two pixels between touching nuclei).

    Args:
        labels: HxW integer instance labels (0 = background).
        boundary: ``"thick"``, ``"inner"`` or ``"outer"``.
        width: boundary width in pixels (dilations).
        expand: grow the objects by this many pixels (``expand_labels``)
            before drawing the boundary, the unet4nuclei variant that gives
            nuclei separated by a one-pixel gap a shared boundary.
        min_size: drop objects smaller than this first.
        one_hot: return HxWx3 float32 instead of HxW uint8 classes.

    Returns:
        HxW uint8 class image, or HxWx3 float32 one-hot.

    Raises:
        ValueError: labels that are not a 2-D integer image, an unknown
            boundary mode, ``width < 1`` or ``expand < 0``.

    Example:
        >>> three_class(np.array([[0, 1, 1, 1, 0]])).tolist()
        [[2, 2, 1, 2, 2]]
        >>> three_class(np.array([[0, 1, 1, 1, 0]]), boundary="inner").tolist()
        [[0, 2, 1, 2, 0]]
    """
    arr = remove_small(labels, min_size) if min_size else check_labels(labels, ignore=True)
    if expand:
        arr = expand_labels(arr, expand)
    edge = boundaries(arr, mode=boundary, width=width)
    out = np.where(arr > 0, 1, 0).astype(np.uint8)
    out[edge] = 2
    if one_hot:
        return np.eye(3, dtype=np.float32)[out]
    return out


def binary(labels, *, min_size: int = 0) -> np.ndarray:
    """Foreground mask (uint8 0/1) from instance labels, optionally dropping tiny objects.

    Args:
        labels: HxW integer instance labels.
        min_size: drop objects smaller than this first.

    Returns:
        HxW uint8 array, 1 on objects.

    Raises:
        ValueError: labels that are not a 2-D integer image.

    Example:
        >>> binary(np.array([[0, 3, 3]])).tolist()
        [[0, 1, 1]]
    """
    arr = remove_small(labels, min_size) if min_size else check_labels(labels, ignore=True)
    return (arr > 0).astype(np.uint8)


TARGETS = {"three_class": three_class, "binary": binary}


def _check_n_rays(n_rays) -> int:
    if isinstance(n_rays, bool) or not float(n_rays).is_integer() or n_rays < 3:
        raise ValueError(f"n_rays must be a whole number >= 3 (a polygon needs three "
                         f"corners), got {n_rays!r}")
    return int(n_rays)


def star_distances(labels, n_rays: int = 32) -> np.ndarray:
    """Distance from every object pixel to its object's edge along ``n_rays`` rays.

    Ray ``k`` points at angle ``2πk / n_rays``, with rows growing as
    ``sin`` and columns as ``cos`` (StarDist's convention), so the polygon
    of pixel ``(r, c)`` has corners ``(r + d_k sin φ_k, c + d_k cos φ_k)``.
    A ray stops where it meets another id, the background or the image
    border, halfway into the last step, as in StarDist. Background and
    negative (ignored) pixels get 0.

    Args:
        labels: HxW integer instance labels (0 = background).
        n_rays: rays per pixel (>= 3; 32 in StarDist).

    Returns:
        float32 ``(H, W, n_rays)`` distances in pixels.

    Raises:
        ValueError: labels that are not a 2-D integer image, or ``n_rays < 3``.

    Example:
        >>> yy, xx = np.mgrid[:21, :21]
        >>> disk = ((yy - 10) ** 2 + (xx - 10) ** 2 <= 36).astype(np.int32)
        >>> np.round(star_distances(disk, 4)[10, 10], 1).tolist()
        [6.5, 6.5, 6.5, 6.5]
    """
    from nuclib.data._star_kernel import star_distances_kernel

    arr = check_labels(labels, ignore=True)
    n_rays = _check_n_rays(n_rays)
    return star_distances_kernel(np.ascontiguousarray(arr, dtype=np.int64), n_rays)


def object_probability(labels, distances=None) -> np.ndarray:
    """StarDist's object probability: each pixel's distance to its object's edge,
    divided by the largest such distance in the object (1 at the centre, small at edges).

    The distance to the edge is the shortest ray of ``star_distances``, which
    is what the star head's candidates are ranked by: pixels near a nucleus'
    centre predict its polygon best.

    Args:
        labels: HxW integer instance labels.
        distances: ``star_distances(labels, n)`` if already computed (any n).

    Returns:
        float32 HxW map in [0, 1]; 0 on background and negative labels.

    Example:
        >>> labels = np.zeros((7, 7), np.int32); labels[1:6, 1:6] = 1
        >>> p = object_probability(labels)
        >>> float(p[3, 3]), float(p[1, 3]) < 0.5
        (1.0, True)
    """
    arr = check_labels(labels, ignore=True)
    if distances is None:
        distances = star_distances(arr, 32)
    shortest = np.asarray(distances, np.float32).min(axis=-1)
    inside = arr > 0
    ids, inverse = np.unique(arr[inside], return_inverse=True)
    top = np.zeros(len(ids), np.float32)
    np.maximum.at(top, inverse, shortest[inside])
    out = np.zeros(arr.shape, np.float32)
    out[inside] = shortest[inside] / np.maximum(top[inverse], 1e-6)
    return out


def star(labels, *, n_rays: int = 32) -> np.ndarray:
    """Training target of the star head: object probability, then ``n_rays`` distances.

    Pixels with negative labels (the ignore label ``-1`` of padding) get
    probability ``-1``, which ``StarLoss`` reads as "ignore".

    Args:
        labels: HxW integer instance labels.
        n_rays: rays per pixel (>= 3).

    Returns:
        float32 ``(H, W, 1 + n_rays)``.

    Raises:
        ValueError: labels that are not a 2-D integer image, or ``n_rays < 3``.

    Example:
        >>> star(np.array([[0, 1, 1, -1]]), n_rays=4).shape
        (1, 4, 5)
    """
    arr = check_labels(labels, ignore=True)
    dist = star_distances(arr, n_rays)
    prob = object_probability(arr, dist)
    prob[arr < 0] = -1.0
    return np.concatenate([prob[..., None], dist], axis=-1)


def three_class_distance(labels, *, n_rays: int = 16) -> np.ndarray:
    """Target of the ``"three_class_distance"`` head: class, then normalized distance.

    Channel 0 holds the three-class target with inner boundaries (0
    background, 1 interior, 2 boundary; ``-1`` where labels are negative),
    channel 1 ``object_probability``: the distance to the nucleus' edge over
    the largest in that nucleus, measured with ``n_rays`` rays.

    Args:
        labels: HxW integer instance labels.
        n_rays: rays used to measure the distance to the edge.

    Returns:
        float32 ``(H, W, 2)``.

    Example:
        >>> labels = np.zeros((7, 7), np.int32); labels[1:6, 1:6] = 1
        >>> t = three_class_distance(labels)
        >>> t[3, :, 0].tolist(), t[3, 3, 1].item()
        ([0.0, 2.0, 1.0, 1.0, 1.0, 2.0, 0.0], 1.0)
    """
    arr = check_labels(labels, ignore=True)
    classes = three_class(np.maximum(arr, 0), boundary="inner").astype(np.float32)
    classes[arr < 0] = -1.0
    distance = object_probability(np.maximum(arr, 0), star_distances(np.maximum(arr, 0), n_rays))
    return np.stack([classes, distance], axis=-1)


TARGETS["star"] = star
TARGETS["three_class_distance"] = three_class_distance
