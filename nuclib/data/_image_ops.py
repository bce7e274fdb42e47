"""Image helpers for the augmentation layers, written once for every Keras backend.

Every function takes ``B``, a Keras backend namespace (a layer's
``self.backend``: TensorFlow inside ``tf.data``, otherwise Keras' own
backend), and works on batches ``(N, H, W, C)``, eagerly and inside
``tf.data`` graphs (where H and W may be unknown). Random draws take a
``keras.random.SeedGenerator`` of that backend. Pixel centres sit at integer
coordinates; ``"reflect"`` fill mirrors about the edge with the edge pixel
repeated (``d c b a | a b c d | d c b a``), like SciPy's ``mode="reflect"``
and skimage's ``mode="symmetric"``.
"""

from __future__ import annotations

import math

FILL_MODES = ("reflect", "constant", "nearest", "wrap")
INTERPOLATIONS = ("bilinear", "nearest")


def shape(B, x):
    """``x``'s shape: ints where known, scalar tensors where not (``tf.data`` graphs)."""
    return tuple(B.core.shape(x))


def _fold_index(B, index, size, fill_mode):
    """Map integer indices outside ``[0, size)`` back inside; also return a validity mask."""
    if fill_mode == "reflect":
        period = 2 * size
        index = index % period
        return B.numpy.where(index >= size, period - 1 - index, index), None
    if fill_mode == "wrap":
        return index % size, None
    valid = (index >= 0) & (index < size) if fill_mode == "constant" else None
    return B.numpy.minimum(B.numpy.maximum(index, 0), size - 1), valid


def gather_pixels(B, images, rows, cols, *, fill_mode="reflect", fill_value=0):
    """Pixels ``images[n, rows[n, i, j], cols[n, i, j], :]`` with out-of-image indices filled.

    Args:
        B: Keras backend namespace.
        images: ``(N, H, W, C)`` tensor of any dtype.
        rows, cols: int32 ``(N, Ho, Wo)`` indices.
        fill_mode: one of ``FILL_MODES``.
        fill_value: value for ``fill_mode="constant"``.

    Returns:
        ``(N, Ho, Wo, C)`` tensor of the images' dtype.
    """
    return _Gatherer(B, images, fill_mode, fill_value)(rows, cols)


class _Gatherer:
    """Looks up pixels of one batch by (row, col); folds indices once per coordinate."""

    def __init__(self, B, images, fill_mode, fill_value):
        self.B = B
        self.n, self.h, self.w, self.c = shape(B, images)
        self.flat = B.numpy.reshape(images, (-1, self.c))
        self.fill_mode = fill_mode
        self.fill = B.core.convert_to_tensor(fill_value, dtype=images.dtype)
        self.row_base = (B.core.cast(B.numpy.arange(self.n), "int32") * self.h)[:, None, None]

    def fold_rows(self, rows):
        rows, valid = _fold_index(self.B, rows, self.h, self.fill_mode)
        return (self.row_base + rows) * self.w, valid

    def fold_cols(self, cols):
        return _fold_index(self.B, cols, self.w, self.fill_mode)

    def take(self, row, col):
        (offset, valid_r), (col, valid_c) = row, col
        out = self.B.numpy.take(self.flat, offset + col, axis=0)
        if self.fill_mode == "constant":
            out = self.B.numpy.where((valid_r & valid_c)[..., None], out, self.fill)
        return out

    def __call__(self, rows, cols):
        return self.take(self.fold_rows(rows), self.fold_cols(cols))


def sample(B, images, ys, xs, *, interpolation="bilinear", fill_mode="reflect", fill_value=0):
    """Resample images at float source coordinates.

    Args:
        B: Keras backend namespace.
        images: ``(N, H, W, C)``; float for bilinear, any dtype for nearest.
        ys, xs: float32 ``(N, Ho, Wo)`` source row and column of each output pixel.
        interpolation: ``"bilinear"`` or ``"nearest"`` (labels).
        fill_mode, fill_value: see ``gather_pixels``.

    Returns:
        ``(N, Ho, Wo, C)`` tensor of the images' dtype.
    """
    gather = _Gatherer(B, images, fill_mode, fill_value)
    floor, cast = B.numpy.floor, B.core.cast
    if interpolation == "nearest":
        return gather(cast(floor(ys + 0.5), "int32"), cast(floor(xs + 0.5), "int32"))
    y0 = floor(ys)
    x0 = floor(xs)
    dy = (ys - y0)[..., None]
    dx = (xs - x0)[..., None]
    r0 = cast(y0, "int32")
    c0 = cast(x0, "int32")
    top, bottom = gather.fold_rows(r0), gather.fold_rows(r0 + 1)
    left, right = gather.fold_cols(c0), gather.fold_cols(c0 + 1)
    v00, v01 = gather.take(top, left), gather.take(top, right)
    v10, v11 = gather.take(bottom, left), gather.take(bottom, right)
    upper = v00 + (v01 - v00) * dx
    lower = v10 + (v11 - v10) * dx
    return upper + (lower - upper) * dy


def pixel_grid(B, n, h, w):
    """Float32 row and column coordinates ``(N, H, W)`` of every output pixel."""
    rows = B.core.cast(B.numpy.arange(h), "float32")
    cols = B.core.cast(B.numpy.arange(w), "float32")
    yy, xx = B.numpy.meshgrid(rows, cols, indexing="ij")
    return (B.numpy.broadcast_to(yy[None], (n, h, w)),
            B.numpy.broadcast_to(xx[None], (n, h, w)))


def affine_source(B, inverse, h, w, n):
    """Source coordinates for an affine warp about the image centre.

    Args:
        B: Keras backend namespace.
        inverse: ``(N, 2, 3)`` matrices mapping centred output ``(x, y, 1)``
            to centred source ``(x, y)``.
        h, w, n: output height, width and batch size.

    Returns:
        ``(ys, xs)`` float32 ``(N, H, W)``.
    """
    yy, xx = pixel_grid(B, n, h, w)
    cy = (B.core.cast(h, "float32") - 1.0) / 2.0
    cx = (B.core.cast(w, "float32") - 1.0) / 2.0
    x = xx - cx
    y = yy - cy
    m = inverse[:, :, :, None, None]
    xs = m[:, 0, 0] * x + m[:, 0, 1] * y + m[:, 0, 2] + cx
    ys = m[:, 1, 0] * x + m[:, 1, 1] * y + m[:, 1, 2] + cy
    return ys, xs


def _interpolation_matrix(B, size, points):
    """``(size, points)`` weights that linearly interpolate ``points`` control values
    placed at ``linspace(0, size, points)`` onto pixels ``0 .. size-1``."""
    size_f = B.core.cast(size, "float32")
    pos = B.core.cast(B.numpy.arange(size), "float32") * (points - 1) / size_f
    i0 = B.numpy.minimum(B.core.cast(B.numpy.floor(pos), "int32"), points - 2)
    frac = (pos - B.core.cast(i0, "float32"))[:, None]
    return (B.nn.one_hot(i0, points, dtype="float32") * (1.0 - frac)
            + B.nn.one_hot(i0 + 1, points, dtype="float32") * frac)


def grid_displacement(B, grid, h, w):
    """Dense ``(N, H, W, 2)`` displacement from ``(N, P, P, 2)`` control-point displacements.

    Control points lie on a regular ``P x P`` grid spanning the image
    (unet4nuclei's ``linspace(0, size, points)``); values between them are
    bilinear.
    """
    points = grid.shape[1]
    wy = _interpolation_matrix(B, h, points)
    wx = _interpolation_matrix(B, w, points)
    return B.numpy.einsum("hp,npqk,wq->nhwk", wy, grid, wx)


def gaussian_kernels(B, sigma, radius):
    """Normalized 1-D Gaussian kernels ``(N, 2 * radius + 1)`` for per-sample ``sigma`` (N,).

    A sigma of (almost) zero gives the identity kernel.
    """
    taps = B.core.cast(B.numpy.arange(-radius, radius + 1), "float32")[None, :]
    s = B.numpy.maximum(sigma, 1e-3)[:, None]
    kernels = B.numpy.exp(-0.5 * B.numpy.square(taps / s))
    identity = B.core.cast(taps == 0.0, "float32")
    kernels = B.numpy.where(sigma[:, None] < 1e-3, identity, kernels)
    return kernels / B.numpy.sum(kernels, axis=1, keepdims=True)


def radius_for(sigma_max: float) -> int:
    """Kernel radius for a Gaussian of ``sigma_max`` (SciPy's default ``truncate=4``)."""
    return max(int(4.0 * sigma_max + 0.5), 1)


def _pad_symmetric(B, x, radius: int, h, w):
    """Pad rows and columns of ``(1, H, W, C)`` by ``radius`` with symmetric reflection
    (by index folding: not every backend's ``pad`` has ``mode="symmetric"``)."""
    for axis, size in ((1, h), (2, w)):
        index = B.core.cast(B.numpy.arange(-radius, size + radius), "int32")
        index, _ = _fold_index(B, index, size, "reflect")
        x = B.numpy.take(x, index, axis=axis)
    return x


def neighbour_sum(B, images):
    """Sum of each pixel's 8 neighbours (3 x 3 window less the centre), reflect borders.

    Args:
        B: Keras backend namespace.
        images: float ``(N, H, W, C)``.

    Returns:
        Tensor of the same shape and dtype.
    """
    n, h, w, c = shape(B, images)
    padded = _pad_symmetric(B, images, 1, h, w)
    total = None
    for dy in range(3):
        for dx in range(3):
            window = padded[:, dy:dy + h, dx:dx + w, :]
            total = window if total is None else total + window
    return total - images


def gaussian_blur(B, images, sigma, radius: int):
    """Separable Gaussian blur with a different ``sigma`` per sample, reflect borders.

    Args:
        B: Keras backend namespace.
        images: float ``(N, H, W, C)``; H and W must be at least ``radius``.
        sigma: float32 ``(N,)`` standard deviations in pixels.
        radius: kernel half-width (static Python int).

    Returns:
        Blurred images, same shape and dtype.
    """
    n, h, w, c = shape(B, images)
    kernels = gaussian_kernels(B, sigma, radius)                     # (N, K)
    per_channel = B.numpy.repeat(kernels, c, axis=0)                 # (N*C, K)
    # Fold the batch into channels so one depthwise convolution applies a
    # different kernel to every sample.
    x = B.numpy.reshape(B.numpy.transpose(images, (1, 2, 0, 3)), (1, h, w, n * c))
    x = _pad_symmetric(B, x, radius, h, w)
    taps = B.numpy.transpose(per_channel)                            # (K, N*C)
    vertical = taps[:, None, :, None]                                # (K, 1, N*C, 1)
    horizontal = taps[None, :, :, None]                              # (1, K, N*C, 1)
    x = B.nn.depthwise_conv(x, vertical, strides=1, padding="valid", data_format="channels_last")
    x = B.nn.depthwise_conv(x, horizontal, strides=1, padding="valid",
                            data_format="channels_last")
    x = B.numpy.reshape(x, (h, w, n, c))
    return B.numpy.transpose(x, (2, 0, 1, 3))


def uniform(B, seed, n, low: float, high: float):
    """``n`` float32 values uniform in ``[low, high)``."""
    return B.random.uniform((n,), low, high, dtype="float32", seed=seed)


def log_uniform(B, seed, n, low: float, high: float):
    """``n`` values whose logarithm is uniform in ``[log low, log high]``."""
    return B.numpy.exp(uniform(B, seed, n, math.log(low), math.log(high)))


def poisson(B, seed, rates):
    """Float32 Poisson draws with the given (float32) rates; Keras has no Poisson op, so
    each backend's own sampler is used."""
    if B.name == "torch":
        import torch
        from keras.src.backend.torch.random import torch_seed_generator

        return torch.poisson(rates, generator=torch_seed_generator(seed)).to(torch.float32)
    key = seed.next()
    if B.name == "tensorflow":
        import tensorflow as tf

        return tf.random.stateless_poisson(tf.shape(rates), tf.cast(key, tf.int32), rates,
                                           dtype=tf.float32)
    if B.name == "jax":
        import jax

        return jax.random.poisson(jax.random.wrap_key_data(key.astype("uint32")),
                                  rates).astype("float32")
    raise NotImplementedError(f"Poisson noise is not available on the {B.name} backend")
