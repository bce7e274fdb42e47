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

BOUNDARY_MODES = ("outer", "inner", "thick")


def _check_labels(labels) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise ValueError(f"labels have shape {arr.shape}; expected an HxW instance label image")
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
        raise ValueError(f"labels have dtype {arr.dtype}; expected integer instance ids")
    return arr


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
    arr = _check_labels(labels)
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
    arr = _check_labels(labels)
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

    arr = _check_labels(labels)
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
    arr = remove_small(labels, min_size) if min_size else _check_labels(labels)
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
    arr = remove_small(labels, min_size) if min_size else _check_labels(labels)
    return (arr > 0).astype(np.uint8)


TARGETS = {"three_class": three_class, "binary": binary}
