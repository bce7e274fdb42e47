"""Nucleus size: measure it and rescale images so nuclei have one size.

Nuclei in DSB2018 range from 8 to 50 pixels across. A U-Net sees them
through a fixed receptive field and draws one-pixel boundaries, so it does
best when every image is shown at the same nucleus size, as Cellpose does
with its ``diameter``. Training rescales each image so that its median
nucleus has ``diameter`` pixels; inference measures (or is told) the
diameter and rescales the input the same way, then maps the result back.

The diameter of a nucleus is that of the circle with its area.

Example:
    >>> labels = np.zeros((64, 64), np.int32)
    >>> labels[10:20, 10:20] = 1                       # 100 px: a 11.3 px circle
    >>> round(median_diameter(labels), 1)
    11.3
    >>> image, labels2 = rescale_pair(np.zeros((64, 64, 1), np.float32), labels, 2.0)
    >>> image.shape, labels2.shape, int((labels2 == 1).sum())
    ((128, 128, 1), (128, 128), 400)
"""

from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = ["median_diameter", "scale_for_diameter", "rescale_image", "rescale_labels",
           "rescale_pair", "scaled_shape"]

# Rescaling by less than this fraction is not worth the interpolation blur.
SCALE_TOLERANCE = 0.05


def median_diameter(labels, *, min_area: int = 1) -> float:
    """Median equivalent-circle diameter of the objects in an instance label image.

    Args:
        labels: HxW integer instance labels, 0 = background.
        min_area: objects smaller than this (pixels) are ignored.

    Returns:
        ``2 * sqrt(median_area / pi)`` in pixels, or ``nan`` when there is no object.

    Raises:
        ValueError: labels that are not a 2-D integer array or hold negative ids.

    Example:
        >>> lab = np.zeros((9, 9), np.int32); lab[:2, :2] = 1; lab[5:, 5:] = 2
        >>> round(median_diameter(lab), 3)      # areas 4 and 16: median 10
        3.568
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 2-D integer array, got {labels.dtype} "
                         f"with shape {labels.shape}")
    if labels.size and labels.min() < 0:
        raise ValueError("labels hold negative ids; expected 0 for background and "
                         "positive object ids")
    areas = np.bincount(labels.ravel())[1:]
    areas = areas[areas >= max(int(min_area), 1)]
    if not len(areas):
        return float("nan")
    return 2.0 * math.sqrt(float(np.median(areas)) / math.pi)


def scale_for_diameter(diameter, target, *, limits=(0.25, 4.0)) -> float:
    """The zoom factor that brings nuclei of ``diameter`` pixels to ``target`` pixels.

    Args:
        diameter: measured nucleus diameter (pixels); ``nan``, 0 or None means
            unknown and gives 1.
        target: the diameter the model was trained at.
        limits: the factor is clipped to this range, so one bad estimate
            cannot blow an image up 100-fold.

    Returns:
        ``clip(target / diameter, *limits)``, or 1.0 when the factor is within
        5 % of 1 (not worth resampling).

    Example:
        >>> scale_for_diameter(10, 20), scale_for_diameter(float("nan"), 20)
        (2.0, 1.0)
    """
    if diameter is None or not np.isfinite(diameter) or diameter <= 0 or not target:
        return 1.0
    factor = float(np.clip(float(target) / float(diameter), *limits))
    return 1.0 if abs(factor - 1.0) <= SCALE_TOLERANCE else factor


def scaled_shape(shape, factor: float) -> tuple[int, int]:
    """``(height, width)`` of an image of ``shape`` zoomed by ``factor`` (at least 1 px).

    Args:
        shape: the image's shape (only the first two numbers are used).
        factor: the zoom factor.

    Returns:
        ``(height, width)``, each rounded and at least 1.

    Example:
        >>> scaled_shape((100, 51), 0.5)
        (50, 26)
    """
    return tuple(max(int(round(s * factor)), 1) for s in shape[:2])


def rescale_image(image, factor: float | None = None, *, shape=None) -> np.ndarray:
    """Zoom an HxW or HxWxC float image by ``factor`` or to ``shape``.

    Area averaging when shrinking (no aliasing), bilinear when enlarging.

    Args:
        image: HxW or HxWxC array (any number of channels).
        factor: zoom factor; ignored when ``shape`` is given.
        shape: target ``(height, width)``.

    Returns:
        float32 array of the new size with the same number of channels.

    Example:
        >>> rescale_image(np.ones((4, 6, 3)), 0.5).shape
        (2, 3, 3)
    """
    image = np.asarray(image, dtype=np.float32)
    h, w = image.shape[:2]
    nh, nw = shape[:2] if shape is not None else scaled_shape(image.shape, factor)
    if (nh, nw) == (h, w):
        return image
    method = cv2.INTER_AREA if nh * nw < h * w else cv2.INTER_LINEAR
    if image.ndim == 3 and image.shape[2] > 4:
        # OpenCV resizes at most 4 channels at a time in some builds: go slice by slice.
        return np.stack([rescale_image(image[..., c], shape=(nh, nw))
                         for c in range(image.shape[2])], axis=-1)
    out = cv2.resize(image, (nw, nh), interpolation=method)
    if image.ndim == 3 and out.ndim == 2:
        out = out[..., None]
    return out


def rescale_labels(labels, factor: float | None = None, *, shape=None) -> np.ndarray:
    """Zoom instance labels with nearest-neighbour sampling (ids are kept).

    Args:
        labels: HxW integer labels.
        factor: zoom factor; ignored when ``shape`` is given.
        shape: target ``(height, width)``.

    Returns:
        int32 labels of the new size. Objects smaller than a pixel of the
        new grid may vanish when shrinking.

    Example:
        >>> rescale_labels(np.array([[1, 2]]), 2.0).tolist()
        [[1, 1, 2, 2], [1, 1, 2, 2]]
    """
    labels = np.asarray(labels)
    h, w = labels.shape[:2]
    nh, nw = shape[:2] if shape is not None else scaled_shape(labels.shape, factor)
    if (nh, nw) == (h, w):
        return labels.astype(np.int32, copy=False)
    # Index arithmetic instead of cv2: exact for any id, no float round trip.
    ys = np.minimum(((np.arange(nh) + 0.5) * h / nh).astype(np.int64), h - 1)
    xs = np.minimum(((np.arange(nw) + 0.5) * w / nw).astype(np.int64), w - 1)
    return labels[ys[:, None], xs[None, :]].astype(np.int32, copy=False)


def rescale_pair(image, labels, factor: float):
    """Zoom an image and its instance labels together by ``factor``.

    Args:
        image: HxWxC (or HxW) image.
        labels: HxW instance labels of the same size.
        factor: zoom factor (2 doubles height and width).

    Returns:
        ``(image, labels)`` with the same new height and width.

    Raises:
        ValueError: image and labels of different sizes, or a factor that is
            not positive.

    Example:
        >>> im, lab = rescale_pair(np.zeros((10, 10, 1)), np.zeros((10, 10), int), 0.5)
        >>> im.shape, lab.shape
        ((5, 5, 1), (5, 5))
    """
    if np.shape(image)[:2] != np.shape(labels)[:2]:
        raise ValueError(f"image {np.shape(image)} and labels {np.shape(labels)} differ in "
                         "size; expected the same height and width")
    if not factor or factor <= 0 or not np.isfinite(factor):
        raise ValueError(f"zoom factor must be a positive number, got {factor}")
    shape = scaled_shape(np.shape(labels), factor)
    return rescale_image(image, shape=shape), rescale_labels(labels, shape=shape)
