"""TensorFlow image helpers for the augmentation layers: resampling, blur, warps.

All functions work on batches ``(N, H, W, C)`` inside ``tf.data`` graphs and
eagerly. Pixel centres sit at integer coordinates; ``"reflect"`` fill mirrors
about the edge with the edge pixel repeated (``d c b a | a b c d | d c b a``),
like SciPy's ``mode="reflect"`` and skimage's ``mode="symmetric"``.
"""

from __future__ import annotations

import math

import tensorflow as tf

FILL_MODES = ("reflect", "constant", "nearest", "wrap")
INTERPOLATIONS = ("bilinear", "nearest")


def _fold_index(index, size, fill_mode):
    """Map integer indices outside ``[0, size)`` back inside; also return a validity mask."""
    if fill_mode == "reflect":
        period = 2 * size
        index = tf.math.floormod(index, period)
        return tf.where(index >= size, period - 1 - index, index), None
    if fill_mode == "wrap":
        return tf.math.floormod(index, size), None
    valid = (index >= 0) & (index < size) if fill_mode == "constant" else None
    return tf.clip_by_value(index, 0, size - 1), valid


def gather_pixels(images, rows, cols, *, fill_mode="reflect", fill_value=0):
    """Pixels ``images[n, rows[n, i, j], cols[n, i, j], :]`` with out-of-image indices filled.

    Args:
        images: ``(N, H, W, C)`` tensor of any dtype.
        rows, cols: int32 ``(N, Ho, Wo)`` indices.
        fill_mode: one of ``FILL_MODES``.
        fill_value: value for ``fill_mode="constant"``.

    Returns:
        ``(N, Ho, Wo, C)`` tensor of the images' dtype.
    """
    return _Gatherer(images, fill_mode, fill_value)(rows, cols)


class _Gatherer:
    """Looks up pixels of one batch by (row, col); folds indices once per coordinate."""

    def __init__(self, images, fill_mode, fill_value):
        shape = tf.shape(images)
        self.n, self.h, self.w, self.c = shape[0], shape[1], shape[2], shape[3]
        self.flat = tf.reshape(images, tf.stack([-1, self.c]))
        self.fill_mode = fill_mode
        self.fill = tf.cast(fill_value, images.dtype)
        self.row_base = (tf.range(self.n) * self.h)[:, None, None]

    def fold_rows(self, rows):
        rows, valid = _fold_index(rows, self.h, self.fill_mode)
        return (self.row_base + rows) * self.w, valid

    def fold_cols(self, cols):
        return _fold_index(cols, self.w, self.fill_mode)

    def take(self, row, col):
        (offset, valid_r), (col, valid_c) = row, col
        out = tf.gather(self.flat, offset + col)
        if self.fill_mode == "constant":
            out = tf.where((valid_r & valid_c)[..., None], out, self.fill)
        return out

    def __call__(self, rows, cols):
        return self.take(self.fold_rows(rows), self.fold_cols(cols))


def sample(images, ys, xs, *, interpolation="bilinear", fill_mode="reflect", fill_value=0):
    """Resample images at float source coordinates.

    Args:
        images: ``(N, H, W, C)``; float for bilinear, any dtype for nearest.
        ys, xs: float32 ``(N, Ho, Wo)`` source row and column of each output pixel.
        interpolation: ``"bilinear"`` or ``"nearest"`` (labels).
        fill_mode, fill_value: see ``gather_pixels``.

    Returns:
        ``(N, Ho, Wo, C)`` tensor of the images' dtype.
    """
    gather = _Gatherer(images, fill_mode, fill_value)
    if interpolation == "nearest":
        return gather(tf.cast(tf.floor(ys + 0.5), tf.int32), tf.cast(tf.floor(xs + 0.5), tf.int32))
    y0 = tf.floor(ys)
    x0 = tf.floor(xs)
    dy = (ys - y0)[..., None]
    dx = (xs - x0)[..., None]
    r0 = tf.cast(y0, tf.int32)
    c0 = tf.cast(x0, tf.int32)
    top, bottom = gather.fold_rows(r0), gather.fold_rows(r0 + 1)
    left, right = gather.fold_cols(c0), gather.fold_cols(c0 + 1)
    v00, v01 = gather.take(top, left), gather.take(top, right)
    v10, v11 = gather.take(bottom, left), gather.take(bottom, right)
    upper = v00 + (v01 - v00) * dx
    lower = v10 + (v11 - v10) * dx
    return upper + (lower - upper) * dy


def pixel_grid(n, h, w):
    """Float32 row and column coordinates ``(N, H, W)`` of every output pixel."""
    rows = tf.range(tf.cast(h, tf.float32))
    cols = tf.range(tf.cast(w, tf.float32))
    yy, xx = tf.meshgrid(rows, cols, indexing="ij")
    tile = tf.stack([n, 1, 1])
    return tf.tile(yy[None], tile), tf.tile(xx[None], tile)


def affine_source(inverse, h, w, n):
    """Source coordinates for an affine warp about the image centre.

    Args:
        inverse: ``(N, 2, 3)`` matrices mapping centred output ``(x, y, 1)``
            to centred source ``(x, y)``.
        h, w, n: output height, width and batch size.

    Returns:
        ``(ys, xs)`` float32 ``(N, H, W)``.
    """
    yy, xx = pixel_grid(n, h, w)
    cy = (tf.cast(h, tf.float32) - 1.0) / 2.0
    cx = (tf.cast(w, tf.float32) - 1.0) / 2.0
    x = xx - cx
    y = yy - cy
    m = inverse[:, :, :, None, None]
    xs = m[:, 0, 0] * x + m[:, 0, 1] * y + m[:, 0, 2] + cx
    ys = m[:, 1, 0] * x + m[:, 1, 1] * y + m[:, 1, 2] + cy
    return ys, xs


def _interpolation_matrix(size, points):
    """``(size, points)`` weights that linearly interpolate ``points`` control values
    placed at ``linspace(0, size, points)`` onto pixels ``0 .. size-1``."""
    pos = tf.range(tf.cast(size, tf.float32)) * (points - 1) / tf.cast(size, tf.float32)
    i0 = tf.minimum(tf.cast(tf.floor(pos), tf.int32), points - 2)
    frac = (pos - tf.cast(i0, tf.float32))[:, None]
    return tf.one_hot(i0, points) * (1.0 - frac) + tf.one_hot(i0 + 1, points) * frac


def grid_displacement(grid, h, w):
    """Dense ``(N, H, W, 2)`` displacement from ``(N, P, P, 2)`` control-point displacements.

    Control points lie on a regular ``P x P`` grid spanning the image
    (unet4nuclei's ``linspace(0, size, points)``); values between them are
    bilinear.
    """
    points = grid.shape[1]
    wy = _interpolation_matrix(h, points)
    wx = _interpolation_matrix(w, points)
    return tf.einsum("hp,npqk,wq->nhwk", wy, grid, wx)


def gaussian_kernels(sigma, radius):
    """Normalized 1-D Gaussian kernels ``(N, 2 * radius + 1)`` for per-sample ``sigma`` (N,).

    A sigma of (almost) zero gives the identity kernel.
    """
    taps = tf.range(-radius, radius + 1, dtype=tf.float32)[None, :]
    s = tf.maximum(sigma, 1e-3)[:, None]
    kernels = tf.exp(-0.5 * tf.square(taps / s))
    identity = tf.cast(tf.equal(taps, 0.0), tf.float32)
    kernels = tf.where(sigma[:, None] < 1e-3, identity, kernels)
    return kernels / tf.reduce_sum(kernels, axis=1, keepdims=True)


def radius_for(sigma_max: float) -> int:
    """Kernel radius for a Gaussian of ``sigma_max`` (SciPy's default ``truncate=4``)."""
    return max(int(4.0 * sigma_max + 0.5), 1)


def gaussian_blur(images, sigma, radius: int):
    """Separable Gaussian blur with a different ``sigma`` per sample, reflect borders.

    Args:
        images: float ``(N, H, W, C)``; H and W must be at least ``radius``.
        sigma: float32 ``(N,)`` standard deviations in pixels.
        radius: kernel half-width (static Python int).

    Returns:
        Blurred images, same shape and dtype.
    """
    shape = tf.shape(images)
    n, h, w, c = shape[0], shape[1], shape[2], shape[3]
    kernels = gaussian_kernels(sigma, radius)                       # (N, K)
    per_channel = tf.repeat(kernels, c, axis=0)                     # (N*C, K)
    # Fold the batch into channels so one depthwise convolution applies a
    # different kernel to every sample.
    x = tf.reshape(tf.transpose(images, [1, 2, 0, 3]), tf.stack([1, h, w, n * c]))
    x = tf.pad(x, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="SYMMETRIC")
    vertical = tf.transpose(per_channel)[:, None, :, None]          # (K, 1, N*C, 1)
    horizontal = tf.transpose(per_channel)[None, :, :, None]        # (1, K, N*C, 1)
    x = tf.nn.depthwise_conv2d(x, vertical, [1, 1, 1, 1], "VALID")
    x = tf.nn.depthwise_conv2d(x, horizontal, [1, 1, 1, 1], "VALID")
    x = tf.reshape(x, tf.stack([h, w, n, c]))
    return tf.transpose(x, [2, 0, 1, 3])


def log_uniform(seed, n, low: float, high: float):
    """``n`` values whose logarithm is uniform in ``[log low, log high]``."""
    u = tf.random.stateless_uniform(tf.stack([n]), seed, math.log(low), math.log(high))
    return tf.exp(u)
