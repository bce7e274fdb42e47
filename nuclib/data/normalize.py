"""Intensity normalization and model-input preparation.

All functions accept any integer or float dtype and return float32.

Example:
    >>> import numpy as np
    >>> x = np.arange(100, dtype=np.uint16).reshape(10, 10)
    >>> y = percentile_normalize(x, 0, 100)
    >>> float(y.min()), float(y.max())
    (0.0, 1.0)
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-6


def _as_float(image) -> np.ndarray:
    arr = np.asarray(image)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.number)):
        raise ValueError(f"image has dtype {arr.dtype}; expected an integer or float array")
    if np.issubdtype(arr.dtype, np.complexfloating):  # astype would drop the imaginary part
        raise ValueError(f"image has complex values ({arr.dtype}); expected real intensities: "
                         "pass np.abs(image) or image.real")
    if arr.size == 0:
        raise ValueError(f"image is empty (shape {arr.shape})")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise ValueError("image contains NaN or infinite values; expected finite intensities")
    with np.errstate(over="ignore"):  # overflow is reported below, with the value
        out = arr.astype(np.float32, copy=False)
    if arr.dtype == np.float64 and not np.all(np.isfinite(out)):
        raise ValueError(f"image values up to {np.abs(arr).max()} overflow float32; expected "
                         "intensities below 3.4e38")
    return out


def percentile_normalize(image, low: float = 1.0, high: float = 99.8, *,
                         clip: bool = False) -> np.ndarray:
    """Map the ``low`` and ``high`` percentiles to 0 and 1 (per channel for HxWxC).

    A constant image (or channel) maps to zeros instead of dividing by zero.

    Args:
        image: HxW or HxWxC array of any numeric dtype.
        low, high: percentiles in [0, 100], ``low < high``.
        clip: clip the result to [0, 1].

    Returns:
        float32 array of the same shape.

    Raises:
        ValueError: bad percentiles, empty, non-numeric or non-finite image.

    Example:
        >>> percentile_normalize(np.array([[0, 50, 100]]), 0, 100).tolist()
        [[0.0, 0.5, 1.0]]
    """
    if not 0 <= low < high <= 100:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {low}, {high}")
    arr = _as_float(image)
    axes = (0, 1) if arr.ndim == 3 else None
    lo = np.percentile(arr, low, axis=axes, keepdims=arr.ndim == 3)
    hi = np.percentile(arr, high, axis=axes, keepdims=arr.ndim == 3)
    return scale_levels(arr, lo, hi, clip=clip)


def scale_levels(image, lo, hi, *, clip: bool = False) -> np.ndarray:
    """Map the intensities ``lo`` and ``hi`` (scalars, or one per channel) to 0 and 1.

    The arithmetic of ``percentile_normalize`` with given levels: a large
    image segmented block by block uses the whole image's percentiles for
    every block (``Segmenter.segment_large``).

    Args:
        image: HxW or HxWxC array of any numeric dtype.
        lo, hi: the levels; ``hi - lo`` below 1e-6 counts as 1e-6.
        clip: clip the result to [0, 1].

    Returns:
        float32 array of the same shape.

    Example:
        >>> scale_levels(np.array([[0, 5, 20]]), 0, 10, clip=True).tolist()
        [[0.0, 0.5, 1.0]]
    """
    arr = _as_float(image)
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    if arr.ndim == 3:  # one level per channel
        lo, hi = lo.reshape(1, 1, -1), hi.reshape(1, 1, -1)
    out = (arr - lo) / np.maximum(hi - lo, _EPS)
    if clip:
        out = np.clip(out, 0.0, 1.0)
    return out.astype(np.float32, copy=False)


def standardize(image) -> np.ndarray:
    """Zero mean, unit variance (per channel for HxWxC); constant input gives zeros.

    Args:
        image: HxW or HxWxC array of any numeric dtype.

    Returns:
        float32 array of the same shape.

    Raises:
        ValueError: empty, non-numeric or non-finite image.

    Example:
        >>> float(standardize(np.array([[1.0, 3.0]])).std())
        1.0
    """
    arr = _as_float(image)
    axes = (0, 1) if arr.ndim == 3 else None
    mean = arr.mean(axis=axes, keepdims=arr.ndim == 3)
    std = arr.std(axis=axes, keepdims=arr.ndim == 3)
    return ((arr - mean) / np.maximum(std, _EPS)).astype(np.float32)


def minmax_normalize(image) -> np.ndarray:
    """Scale to [0, 1] by the minimum and maximum (per channel); constant input gives zeros.

    Args:
        image: HxW or HxWxC array of any numeric dtype.

    Returns:
        float32 array of the same shape.

    Raises:
        ValueError: empty, non-numeric or non-finite image.

    Example:
        >>> minmax_normalize(np.array([[2, 4]], dtype=np.uint8)).tolist()
        [[0.0, 1.0]]
    """
    return percentile_normalize(image, 0.0, 100.0)


def to_grayscale(image) -> np.ndarray:
    """HxW, HxWx1, HxWx3 or HxWx4 (alpha dropped) → HxW float32 (luminance for RGB).

    Args:
        image: the image, any numeric dtype.

    Returns:
        HxW float32 array (0.299 R + 0.587 G + 0.114 B for colour).

    Raises:
        ValueError: another shape, or an empty, non-numeric or non-finite image.

    Example:
        >>> to_grayscale(np.ones((2, 2, 3))).shape
        (2, 2)
    """
    arr = _as_float(image)
    if arr.ndim == 2:
        return arr
    if arr.ndim == 3 and arr.shape[2] == 1:
        return arr[..., 0]
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        return arr[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    raise ValueError(f"image has shape {arr.shape}; expected HxW or HxWxC with C in (1, 3, 4)")


def is_color(image) -> bool:
    """True if an HxWx3/4 image has channels that differ (not gray stored as RGB).

    Args:
        image: any array.

    Returns:
        False for HxW, HxWx1 and RGB(A) images whose R, G and B are equal.

    Example:
        >>> is_color(np.zeros((2, 2, 3))), is_color(np.eye(3)[None])
        (False, True)
    """
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] < 3:
        return False
    rgb = arr[..., :3]
    return bool(np.any(rgb[..., 0] != rgb[..., 1]) or np.any(rgb[..., 0] != rgb[..., 2]))


def model_channels(image, channels: int) -> np.ndarray:
    """The first step of ``prepare_image``: the image with the model's channel count.

    Args:
        image: HxW or HxWxC (C in 1, 3, 4), any numeric dtype.
        channels: 1 (luminance of colour images, alpha dropped) or 3 (gray
            repeated, alpha dropped).

    Returns:
        float32 array ``(H, W, channels)``, intensities unchanged.

    Raises:
        ValueError: another channel count, or an unusable image.

    Example:
        >>> model_channels(np.zeros((4, 5), np.uint8), 3).shape
        (4, 5, 3)
    """
    if channels == 1:
        return to_grayscale(image)[..., None]
    if channels == 3:
        x = _as_float(image)
        x = np.repeat(x[..., None], 3, axis=2) if x.ndim == 2 else x
        return np.repeat(x, 3, axis=2) if x.shape[2] == 1 else x[..., :3]
    raise ValueError(f"channels must be 1 or 3, got {channels}")


def prepare_image(image, *, channels: int = 1, low: float = 1.0, high: float = 99.8,
                  invert: str | bool = "auto", levels=None) -> np.ndarray:
    """Turn any microscopy image into the model input: HxWxC float32, nuclei bright.

    Steps: drop alpha; convert to grayscale when ``channels == 1``;
    percentile-normalize and clip to [0, 1]; invert if asked. With ``invert="auto"`` colour
    images (stained histology, where nuclei are dark) are inverted, and
    grayscale images are inverted when their median lies above the middle of
    the normalized range (bright-field: light background, dark nuclei).

    Args:
        image: HxW or HxWxC (C in 1, 3, 4), any numeric dtype.
        channels: 1 (grayscale model) or 3.
        low, high: normalization percentiles.
        invert: ``"auto"``, True or False.
        levels: ``(lo, hi)`` intensities (of the converted channels) to map
            to 0 and 1 instead of the image's own percentiles, e.g. a large
            image's, for each of its blocks (see ``scale_levels``).

    Returns:
        float32 array ``(H, W, channels)``.

    Raises:
        ValueError: unusable shape, dtype, empty or non-finite image.

    Example:
        >>> prepare_image(np.zeros((4, 5), np.uint8)).shape
        (4, 5, 1)
    """
    arr = np.asarray(image)
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise ValueError(f"image has shape {arr.shape}; expected HxW or HxWxC with C in "
                         "(1, 3, 4)")
    if invert not in ("auto", True, False):
        raise ValueError(f"invert must be 'auto', True or False, got {invert!r}")
    color = is_color(arr)
    x = model_channels(arr, channels)
    # Clipped so training (where augmentation clips to [0, 1]) and inference agree.
    x = (percentile_normalize(x, low, high, clip=True) if levels is None
         else scale_levels(x, *levels, clip=True))
    if invert == "auto":
        invert = color or float(np.median(x)) > 0.5
    if invert:
        x = 1.0 - x
    return np.ascontiguousarray(x, dtype=np.float32)
