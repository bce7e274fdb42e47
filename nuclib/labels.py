"""Instance label images: the one check of their arrays and the ignore label.

An instance label image is HxW integers: 0 is background, each nucleus has
its own positive id. Training crops padded beyond an image's edge carry
``IGNORE_LABEL`` (-1) there, which every loss and target skips. Readers,
targets, post-processing, metrics, stitching and figures all take label
images; they all check them here, by the same rules, so that the same array
is accepted or refused with the same message everywhere.

This module imports only NumPy, so any room may use it.

Example:
    >>> import numpy as np
    >>> check_labels(np.zeros((2, 3, 1), np.uint16)).shape
    (2, 3)
    >>> check_labels(np.full((2, 2), -1), ignore=True).min()
    -1
    >>> check_labels(np.zeros((2, 2), float))
    Traceback (most recent call last):
    ...
    ValueError: labels: dtype float64; expected integer instance ids (0 = background)
"""

from __future__ import annotations

import numpy as np

__all__ = ["IGNORE_LABEL", "check_labels"]

# The label of pixels that are not part of the image (padding): losses and targets skip them.
IGNORE_LABEL = -1


def check_labels(labels, *, name: str = "labels", shape=None, boolean: bool = True,
                 ignore: bool = False, ndim: int | None = 2) -> np.ndarray:
    """``labels`` as an HxW integer array, or a ``ValueError`` that says what is wrong.

    Args:
        labels: array-like, HxW or HxWx1.
        name: what to call the array in messages (``"y_true"``, ``"segment_fn's labels"``).
        shape: the ``(H, W)`` it must have, if known (e.g. its image's).
        boolean: accept a boolean mask (one object per True region is the
            caller's business); False refuses it with a hint to label it.
        ignore: accept ``IGNORE_LABEL`` pixels (training crops); other
            negative values are refused either way.
        ndim: the dimensions it must have (2; an HxWx1 array is squeezed),
            or None for any (metrics also score 3-D label volumes).

    Returns:
        The HxW array (a view where possible), dtype unchanged.

    Raises:
        ValueError: not HxW or HxWx1 (with ``ndim=2``), not integer (or
            boolean), another ``shape`` than asked, or negative ids.

    Example:
        >>> check_labels(np.ones((2, 2), bool), boolean=False)
        Traceback (most recent call last):
        ...
        ValueError: labels: dtype bool; expected integer instance ids (0 = background) (a binary mask? label it first, e.g. with scipy.ndimage.label)
    """
    arr = np.asarray(labels)
    if ndim == 2 and arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name}: shape {arr.shape}; expected an HxW instance label image")
    if not (np.issubdtype(arr.dtype, np.integer) or (boolean and arr.dtype == bool)):
        hint = (" (a binary mask? label it first, e.g. with scipy.ndimage.label)"
                if arr.dtype == bool else "")
        raise ValueError(f"{name}: dtype {arr.dtype}; expected integer instance ids "
                         f"(0 = background){hint}")
    if shape is not None and arr.shape != tuple(shape):
        raise ValueError(f"{name}: shape {arr.shape}, but {tuple(shape)} was expected "
                         "(one label per pixel of the image)")
    if arr.size and np.issubdtype(arr.dtype, np.signedinteger):
        low = arr.min()
        if low < (IGNORE_LABEL if ignore else 0):
            allowed = f"0 (background), {IGNORE_LABEL} (ignored)" if ignore else "0 (background)"
            raise ValueError(f"{name}: negative ids (min {low}); expected {allowed} "
                             "and positive ids")
    return arr
