"""Intensity normalization and model-input preparation.

All functions accept any integer or float dtype; images come back as float32.
``dataset_stats`` computes a training set's mean and std for ``standardize``.

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


def standardize(image, *, mean=None, std=None) -> np.ndarray:
    """Zero mean, unit variance (per channel for HxWxC); constant input gives zeros.

    By default each image is standardized by its own statistics. With
    ``mean`` and ``std`` (e.g. a training set's, from ``dataset_stats``)
    every image gets the same shift and scale, so intensities stay comparable
    between images.

    Args:
        image: HxW or HxWxC array of any numeric dtype.
        mean, std: both or neither; a number, or one value per channel
            (length C, or length 1). ``std`` must be > 0.

    Returns:
        float32 array of the same shape.

    Raises:
        ValueError: empty, non-numeric or non-finite image; only one of
            ``mean`` and ``std``; a count of values that fits neither 1 nor
            the image's channels; a non-finite mean or a ``std`` that is not > 0.

    Example:
        >>> float(standardize(np.array([[1.0, 3.0]])).std())
        1.0
        >>> standardize(np.array([[1.0, 3.0]]), mean=2.0, std=0.5).tolist()
        [[-2.0, 2.0]]
    """
    arr = _as_float(image)
    if (mean is None) != (std is None):
        raise ValueError("standardize needs both mean and std, or neither (then the image's "
                         f"own statistics are used); got mean={mean!r}, std={std!r}")
    if mean is None:
        axes = (0, 1) if arr.ndim == 3 else None
        mean = arr.mean(axis=axes, keepdims=arr.ndim == 3)
        std = arr.std(axis=axes, keepdims=arr.ndim == 3)
        return ((arr - mean) / np.maximum(std, _EPS)).astype(np.float32)
    channels = arr.shape[2] if arr.ndim == 3 else 1
    mean = _per_channel("mean", mean, channels, arr.shape)
    std = _per_channel("std", std, channels, arr.shape)
    if np.any(std <= 0):
        raise ValueError(f"std must be > 0, got {std.tolist()}; a channel that is constant "
                         "over the whole dataset cannot be standardized (drop it)")
    if arr.ndim == 2:
        mean, std = mean[0], std[0]
    return ((arr - mean) / std).astype(np.float32)


def _per_channel(name: str, value, channels: int, shape) -> np.ndarray:
    values = np.atleast_1d(np.asarray(value, np.float64)).ravel()
    if values.size not in (1, channels):
        raise ValueError(f"{name} has {values.size} values but the image {shape} has "
                         f"{channels} channel(s); expected 1 or {channels}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} must be finite, got {values.tolist()}")
    return np.broadcast_to(values, (channels,))


def dataset_stats(images, *, per_channel: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of every pixel of a set of images, one image at a time.

    The statistics are those of all the images' pixels pooled (as if they
    were concatenated), computed by merging per-image means and sums of
    squares (Chan et al.'s parallel algorithm, in float64), so a generator
    that reads one file at a time never holds more than one image. Pass the
    result to ``standardize(image, mean=..., std=...)``.

    Args:
        images: an iterable of HxW or HxWxC arrays (a list, or a generator
            such as ``(read_image(p) for p in paths)``); all with the same
            channel count (HxW counts as one channel).
        per_channel: one mean and std per channel; False pools the channels.

    Returns:
        ``(mean, std)``: float64 arrays of shape ``(C,)`` (``(1,)`` for gray
        images or with ``per_channel=False``); std is the population standard
        deviation (NumPy's ``ddof=0``).

    Raises:
        ValueError: no images, images with different channel counts, or an
            empty, non-numeric or non-finite image (its position is named).

    Example:
        >>> mean, std = dataset_stats([np.array([[0, 2]]), np.array([[4, 6, 8, 10]])])
        >>> mean.tolist(), std.tolist()
        ([5.0], [3.415650255319866])
        >>> standardize(np.array([[5, 8]]), mean=mean, std=std).astype(float).round(3).tolist()
        [[0.0, 0.878]]
    """
    count = 0
    total_mean = total_m2 = None
    channels = None
    for index, image in enumerate(images):
        try:
            arr = _as_float(image)
        except ValueError as err:
            raise ValueError(f"image {index} of the dataset: {err}") from None
        if arr.ndim not in (2, 3):
            raise ValueError(f"image {index} of the dataset has shape {arr.shape}; expected "
                             "HxW or HxWxC")
        c = arr.shape[2] if arr.ndim == 3 else 1
        if channels is None:
            channels = c
        elif c != channels:
            raise ValueError(f"image {index} of the dataset has {c} channel(s) but the first "
                             f"has {channels}; expected the same channel count throughout")
        pixels = arr.reshape(-1, c) if per_channel else arr.reshape(-1, 1)
        n = pixels.shape[0]
        mean = pixels.mean(axis=0, dtype=np.float64)
        m2 = np.square(pixels - mean, dtype=np.float64).sum(axis=0)
        if total_mean is None:
            count, total_mean, total_m2 = n, mean, m2
        else:  # Chan et al.: merge two sets' counts, means and sums of squares
            delta = mean - total_mean
            merged = count + n
            total_mean = total_mean + delta * (n / merged)
            total_m2 = total_m2 + m2 + delta ** 2 * (count * n / merged)
            count = merged
    if total_mean is None:
        raise ValueError("dataset_stats got no images; expected at least one")
    return total_mean, np.sqrt(total_m2 / count)


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


def to_hsv(image) -> np.ndarray:
    """RGB → HSV (hue, saturation, value), each in [0, 1], as ``skimage.color.rgb2hsv``.

    A preprocessing option for colour (e.g. stained histology) images: hue
    separates the stains better than R, G and B. Value is the largest of R,
    G and B, saturation ``(max - min) / max`` (0 for black), hue the angle on
    the colour wheel divided by 360 degrees (0 for grays: red 0, green 1/3,
    blue 2/3).

    Args:
        image: HxWx3 RGB (or HxWx4, alpha dropped). Integer images are
            scaled by their dtype's maximum (uint8 by 255, uint16 by 65535);
            float images must lie in [0, 1].

    Returns:
        float32 HxWx3 array: H, S, V.

    Raises:
        ValueError: not HxWx3 or HxWx4, negative integers, floats outside
            [0, 1], or an empty, non-numeric or non-finite image.

    Example:
        >>> hsv = to_hsv(np.array([[[255, 0, 0], [0, 128, 0], [51, 51, 51]]], np.uint8))
        >>> hsv[0].astype(float).round(3).tolist()
        [[0.0, 1.0, 1.0], [0.333, 1.0, 0.502], [0.0, 0.0, 0.2]]
    """
    raw = np.asarray(image)
    if raw.ndim != 3 or raw.shape[-1] not in (3, 4):
        raise ValueError(f"image has shape {raw.shape}; expected RGB as HxWx3 (or HxWx4 with "
                         "alpha)")
    arr = _as_float(raw[..., :3]).astype(np.float64)
    if np.issubdtype(raw.dtype, np.integer):
        if raw.min() < 0:
            raise ValueError(f"image has negative values ({raw.dtype}); expected RGB "
                             "intensities >= 0")
        arr /= np.iinfo(raw.dtype).max
    elif arr.min() < 0 or arr.max() > 1:
        raise ValueError(f"float image has values in [{arr.min()}, {arr.max()}]; expected RGB "
                         "in [0, 1] (scale it first, e.g. minmax_normalize)")
    r, g, b = arr[..., 0], arr[..., 1], arr[..., 2]
    value = arr.max(axis=-1)
    delta = value - arr.min(axis=-1)
    gray = delta == 0
    safe = np.where(gray, 1.0, delta)
    saturation = np.where(value > 0, delta / np.where(value > 0, value, 1.0), 0.0)
    # Where two channels tie for the maximum, the later one decides (as skimage);
    # the hue is the same either way.
    hue = np.where(b == value, 4.0 + (r - g) / safe,
                   np.where(g == value, 2.0 + (b - r) / safe, (g - b) / safe))
    hue = np.where(gray, 0.0, (hue / 6.0) % 1.0)
    return np.stack([hue, saturation, value], axis=-1).astype(np.float32)


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
