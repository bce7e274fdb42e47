"""Geometric joint augmentations: images and labels move together with one draw.

Images are resampled bilinearly (or nearest), labels always by nearest
neighbour, so label ids survive exactly and keep their dtype. Every layer
takes ``{"images", "labels"}`` (or ``"segmentation_masks"``), batched or not,
and runs eagerly on every Keras backend and inside ``tf.data.Dataset.map``.

Example:
    >>> import numpy as np
    >>> layer = RandomAffine(rotation=180, scale=(0.8, 1.25), seed=0)
    >>> out = layer({"images": np.random.rand(64, 64, 1).astype("float32"),
    ...              "labels": np.zeros((64, 64, 1), np.int32)})
    >>> tuple(out["images"].shape), out["labels"].dtype.name
    ((64, 64, 1), 'int32')
"""

from __future__ import annotations

import math

import keras

from nuclib.data import _image_ops as ti
from nuclib.data.joint import JointLayer, check_probability, check_range
from nuclib.labels import IGNORE_LABEL



def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; expected one of {choices}")
    return value


class _Warp(JointLayer):
    """Shared by the layers that resample through source coordinates."""

    def __init__(self, interpolation="bilinear", fill_mode="reflect", fill_value=0.0,
                 label_fill_value=0, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.interpolation = _check_choice("interpolation", interpolation, ti.INTERPOLATIONS)
        self.fill_mode = _check_choice("fill_mode", fill_mode, ti.FILL_MODES)
        self.fill_value = float(fill_value)
        self.label_fill_value = int(label_fill_value)

    def _resample(self, images, labels, ys, xs):
        B = self.backend
        images = ti.sample(B, images, ys, xs, interpolation=self.interpolation,
                           fill_mode=self.fill_mode, fill_value=self.fill_value)
        if labels is not None:
            # Labels follow the image's fill so that reflected nuclei stay
            # labelled; with constant fill they get ``label_fill_value``.
            labels = ti.sample(B, labels, ys, xs, interpolation="nearest",
                               fill_mode=self.fill_mode, fill_value=self.label_fill_value)
        return images, labels

    def get_config(self):
        config = super().get_config()
        config.update(interpolation=self.interpolation, fill_mode=self.fill_mode,
                      fill_value=self.fill_value, label_fill_value=self.label_fill_value)
        return config


@keras.saving.register_keras_serializable(package="nuclib")
class RandomFlipRotate90(JointLayer):
    """Random flips and 90-degree rotations (the 8 symmetries of a square), exact.

    Square images get each of the 8 with equal probability; non-square images
    one of the 4 that keep the shape (identity, vertical flip, horizontal
    flip, 180-degree rotation). No interpolation, so images and labels are
    permuted pixel for pixel.

    Args:
        seed: int seed or None.
        **kwargs: Keras layer arguments.

    Example:
        >>> layer = RandomFlipRotate90(seed=1)
        >>> out = layer({"images": images, "labels": labels})   # doctest: +SKIP
    """

    def transform(self, images, labels, seed, training):
        B = self.backend
        n = B.core.shape(images)[0]
        bits = B.random.randint((n, 3), 0, 2, dtype="int32", seed=seed) > 0
        flip_rows = bits[:, 0, None, None, None]
        flip_cols = bits[:, 1, None, None, None]
        swap = bits[:, 2, None, None, None]

        def flips(x):
            x = B.numpy.where(flip_rows, B.numpy.flip(x, 1), x)
            return B.numpy.where(flip_cols, B.numpy.flip(x, 2), x)

        def with_transpose(x):
            # Transposing (plus the flips) yields the four odd symmetries.
            return B.numpy.where(swap, B.numpy.transpose(x, (0, 2, 1, 3)), x)

        h, w = images.shape[1], images.shape[2]
        tensors = [images] if labels is None else [images, labels]
        if h is not None and w is not None:
            square = h == w
            out = [flips(with_transpose(x) if square else x) for x in tensors]
        else:  # only in tf.data graphs, where the backend is TensorFlow
            dyn = B.core.shape(images)
            out = B.core.cond(dyn[1] == dyn[2],
                              lambda: [flips(with_transpose(x)) for x in tensors],
                              lambda: [flips(x) for x in tensors])
        return (out[0], None) if labels is None else (out[0], out[1])


@keras.saving.register_keras_serializable(package="nuclib")
class RandomAffine(_Warp):
    """Random rotation, scaling, shear and translation in one resampling step.

    One affine transform per sample about the image centre: rotate by an
    angle drawn uniformly from ``rotation`` (degrees, counter-clockwise as
    displayed), scale by a factor drawn log-uniformly from ``scale`` (> 1
    enlarges), shear along x by an angle from ``shear`` (degrees) and shift by
    a fraction of the image size drawn from ``translation``. Doing it in one
    step interpolates the image once instead of once per transform.

    Args:
        rotation: degrees; ``r`` means ``(-r, r)``, or a ``(min, max)`` pair.
        scale: ``(min, max)`` scale factors (> 0), or one factor.
        shear: degrees; ``s`` means ``(-s, s)``, or a pair.
        translation: fraction of height/width; ``t`` means ``(-t, t)``.
        interpolation: ``"bilinear"`` or ``"nearest"`` for images (labels are
            always nearest).
        fill_mode: ``"reflect"``, ``"constant"``, ``"nearest"`` or ``"wrap"``
            for pixels that come from outside the image.
        fill_value: image value for ``fill_mode="constant"``.
        label_fill_value: label for ``fill_mode="constant"`` (0 background,
            or -1 so that losses ignore those pixels).
        seed: int seed or None.

    Raises:
        ValueError: bad ranges or an unknown mode.

    Example:
        >>> layer = RandomAffine(rotation=180, scale=(0.7, 1.4), shear=10, seed=0)
    """

    def __init__(self, rotation=180.0, scale=(0.75, 1.33), shear=0.0, translation=0.0,
                 interpolation="bilinear", fill_mode="reflect", fill_value=0.0,
                 label_fill_value=0, seed=None, **kwargs):
        super().__init__(interpolation=interpolation, fill_mode=fill_mode,
                         fill_value=fill_value, label_fill_value=label_fill_value,
                         seed=seed, **kwargs)
        self.rotation = check_range("rotation", rotation, symmetric=True)
        self.scale = check_range("scale", scale)
        if self.scale[0] <= 0:
            raise ValueError(f"scale factors must be > 0, got {self.scale}")
        self.shear = check_range("shear", shear, symmetric=True)
        if max(abs(v) for v in self.shear) >= 90:
            raise ValueError(f"shear must stay within (-90, 90) degrees, got {self.shear}")
        self.translation = check_range("translation", translation, symmetric=True)

    def transform(self, images, labels, seed, training):
        B = self.backend
        n, h, w = ti.shape(B, images)[:3]
        deg = math.pi / 180.0
        theta = ti.uniform(B, seed, n, *self.rotation) * deg
        s = ti.log_uniform(B, seed, n, *self.scale)
        k = B.numpy.tan(ti.uniform(B, seed, n, *self.shear) * deg)
        tx = ti.uniform(B, seed, n, *self.translation) * B.core.cast(w, "float32")
        ty = ti.uniform(B, seed, n, *self.translation) * B.core.cast(h, "float32")
        # Forward map (centred, x right, y down): M = R(theta) @ Shear(k) @ s.
        # A counter-clockwise turn on screen is x' = x cos + y sin, y' = -x sin + y cos.
        cos, sin = B.numpy.cos(theta), B.numpy.sin(theta)
        a, b = s * cos, s * (cos * k + sin)
        c, d = -s * sin, s * (-sin * k + cos)
        det = a * d - b * c
        ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
        # source = M^-1 (out - t)
        stack = B.numpy.stack
        inverse = stack([
            stack([ia, ib, -(ia * tx + ib * ty)], axis=1),
            stack([ic, id_, -(ic * tx + id_ * ty)], axis=1)], axis=1)
        ys, xs = ti.affine_source(B, inverse, h, w, n)
        return self._resample(images, labels, ys, xs)

    def get_config(self):
        config = super().get_config()
        config.update(rotation=list(self.rotation), scale=list(self.scale),
                      shear=list(self.shear), translation=list(self.translation))
        return config


@keras.saving.register_keras_serializable(package="nuclib")
class RandomGridElastic(_Warp):
    """Elastic deformation from a random grid of control points (unet4nuclei's form).

    A ``points x points`` grid spans the image; each control point moves by
    ``normal() * uniform(0, distortion)`` pixels along each axis (as
    unet4nuclei's ``deform(points=16, distort=5)``), and displacements are
    interpolated bilinearly in between (unet4nuclei used a piecewise-affine
    triangulation of the same grid, which is nearly the same field).

    Args:
        points: control points per side (>= 2).
        distortion: displacement scale in pixels (>= 0).
        probability: fraction of samples deformed.
        interpolation, fill_mode, fill_value, label_fill_value: as ``RandomAffine``.
        seed: int seed or None.

    Raises:
        ValueError: ``points < 2``, negative distortion, bad probability or modes.

    Example:
        >>> layer = RandomGridElastic(points=16, distortion=5.0, seed=0)
    """

    def __init__(self, points=16, distortion=5.0, probability=1.0, interpolation="bilinear",
                 fill_mode="reflect", fill_value=0.0, label_fill_value=0, seed=None, **kwargs):
        super().__init__(interpolation=interpolation, fill_mode=fill_mode,
                         fill_value=fill_value, label_fill_value=label_fill_value,
                         seed=seed, **kwargs)
        if int(points) < 2:
            raise ValueError(f"points must be >= 2, got {points}")
        if distortion < 0:
            raise ValueError(f"distortion must be >= 0 pixels, got {distortion}")
        self.points = int(points)
        self.distortion = float(distortion)
        self.probability = check_probability(probability)

    @classmethod
    def from_grid_distortion(cls, num_steps=5, distort_limit=0.3, *, image_size,
                             probability=1.0, seed=None, **kwargs):
        """The ``RandomGridElastic`` closest to albumentations' ``GridDistortion``.

        ``GridDistortion(num_steps, distort_limit)`` cuts each side into
        ``num_steps`` cells and scales every cell's width and height by
        ``1 + uniform(distort_limit)``. The mapping keeps the grid
        (``points = num_steps + 1``) and the local stretch: the RMS change of
        a cell's size, ``step * rms(u)`` with ``step = image_size /
        num_steps``, equals that of ``RandomGridElastic``, whose neighbouring
        control points move independently (``sqrt(2 / 3) * distortion``
        RMS), so ``distortion = step * rms(u) * sqrt(3 / 2)``; for a
        symmetric limit ``d``, ``distortion = step * d / sqrt(2)``. What is
        not kept: GridDistortion's grid lines stay straight and drift (the
        cell changes add up along each axis), while here each control point
        moves on its own in 2-D.

        Args:
            num_steps: cells per side (>= 1), as in GridDistortion.
            distort_limit: ``d`` for ``(-d, d)``, or a ``(min, max)`` pair,
                each > -1, as in GridDistortion.
            image_size: side in pixels of the images the layer will see (the
                training crop), which GridDistortion's cells are relative to.
            probability: fraction of samples deformed (GridDistortion's ``p``).
            seed: int seed or None.
            **kwargs: other ``RandomGridElastic`` arguments (``fill_mode``, ...).

        Returns:
            A ``RandomGridElastic``.

        Raises:
            ValueError: ``num_steps < 1``, a limit not above -1, or a
                non-positive ``image_size``.

        Example:
            >>> layer = RandomGridElastic.from_grid_distortion(5, 0.3, image_size=256, seed=0)
            >>> layer.points, round(layer.distortion, 2)
            (6, 10.86)
        """
        if int(num_steps) < 1:
            raise ValueError(f"num_steps must be >= 1 (cells per side), got {num_steps}")
        if float(image_size) <= 0:
            raise ValueError(f"image_size must be > 0 pixels, got {image_size}")
        lo, hi = check_range("distort_limit", distort_limit, symmetric=True)
        if lo <= -1:
            raise ValueError(f"distort_limit must stay above -1 (a cell cannot shrink to "
                             f"nothing), got ({lo}, {hi})")
        rms = math.sqrt((lo * lo + lo * hi + hi * hi) / 3.0)  # of uniform(lo, hi)
        step = float(image_size) / int(num_steps)
        return cls(points=int(num_steps) + 1, distortion=step * rms * math.sqrt(1.5),
                   probability=probability, seed=seed, **kwargs)

    def transform(self, images, labels, seed, training):
        B = self.backend
        n, h, w = ti.shape(B, images)[:3]
        grid_shape = (n, self.points, self.points, 2)
        grid = (B.random.normal(grid_shape, dtype="float32", seed=seed)
                * B.random.uniform(grid_shape, 0.0, self.distortion, dtype="float32", seed=seed))
        disp = ti.grid_displacement(B, grid, h, w)
        yy, xx = ti.pixel_grid(B, n, h, w)
        return self._resample(images, labels, yy + disp[..., 0], xx + disp[..., 1])

    def get_config(self):
        config = super().get_config()
        config.update(points=self.points, distortion=self.distortion,
                      probability=self.probability)
        return config


@keras.saving.register_keras_serializable(package="nuclib")
class RandomElastic(_Warp):
    """Elastic deformation in the alpha / sigma form (Simard et al. 2003).

    A random field uniform in [-1, 1] per pixel and axis is smoothed by a
    Gaussian of ``sigma`` pixels and multiplied by ``alpha`` (drawn per
    sample from a range), giving the displacement in pixels.

    Args:
        alpha: displacement strength; a number or a ``(min, max)`` range.
        sigma: smoothness in pixels (> 0); images must be at least
            ``4 * sigma`` pixels on each side.
        probability: fraction of samples deformed.
        interpolation, fill_mode, fill_value, label_fill_value: as ``RandomAffine``.
        seed: int seed or None.

    Raises:
        ValueError: negative alpha, ``sigma <= 0``, bad probability or modes.

    Example:
        >>> layer = RandomElastic(alpha=(0.0, 40.0), sigma=5.0, seed=0)
    """

    def __init__(self, alpha=(0.0, 40.0), sigma=5.0, probability=1.0,
                 interpolation="bilinear", fill_mode="reflect", fill_value=0.0,
                 label_fill_value=0, seed=None, **kwargs):
        super().__init__(interpolation=interpolation, fill_mode=fill_mode,
                         fill_value=fill_value, label_fill_value=label_fill_value,
                         seed=seed, **kwargs)
        self.alpha = check_range("alpha", alpha, low=0.0)
        if sigma <= 0:
            raise ValueError(f"sigma must be > 0 pixels, got {sigma}")
        self.sigma = float(sigma)
        self.probability = check_probability(probability)

    @classmethod
    def from_elastic_transform(cls, alpha, sigma, *, probability=1.0, seed=None, **kwargs):
        """The ``RandomElastic`` equal to imgaug's ``ElasticTransformation`` and
        albumentations' ``ElasticTransform`` (before 2.0) with the same ``alpha`` and ``sigma``.

        Those draw the same field as this layer (uniform noise in [-1, 1],
        smoothed by a Gaussian of ``sigma`` pixels, times ``alpha``), so the
        numbers carry over as they are: a recipe's ``distortion_alpha`` and
        ``distortion_sigma`` are ``alpha`` and ``sigma`` here. Not carried
        over: albumentations 1.x's ``alpha_affine`` (add a ``RandomAffine``)
        and albumentations 2's default Gaussian noise divided by its maximum,
        which is about 2.5 times weaker for the same alpha on 256 x 256
        images (pass ``alpha / 2.5`` to match it).

        Args:
            alpha: displacement strength, a number or a ``(min, max)`` range
                (imgaug draws from a range as well).
            sigma: one smoothness in pixels (> 0).
            probability: fraction of samples deformed (albumentations' ``p``).
            seed: int seed or None.
            **kwargs: other ``RandomElastic`` arguments (``fill_mode``, ...).

        Returns:
            A ``RandomElastic``.

        Raises:
            ValueError: a ``sigma`` range (this layer smooths with one sigma),
                or the constructor's errors.

        Example:
            >>> layer = RandomElastic.from_elastic_transform(alpha=34, sigma=4, seed=0)
            >>> layer.alpha, layer.sigma
            ((34.0, 34.0), 4.0)
        """
        if not isinstance(sigma, (int, float)) or isinstance(sigma, bool):
            raise ValueError(f"sigma must be one number of pixels, got {sigma!r}; RandomElastic "
                             "smooths every sample with the same sigma")
        return cls(alpha=alpha, sigma=sigma, probability=probability, seed=seed, **kwargs)

    def transform(self, images, labels, seed, training):
        B = self.backend
        n, h, w = ti.shape(B, images)[:3]
        noise = B.random.uniform((n, h, w, 2), -1.0, 1.0, dtype="float32", seed=seed)
        sigma = B.numpy.zeros((n,), "float32") + self.sigma
        field = ti.gaussian_blur(B, noise, sigma, ti.radius_for(self.sigma))
        alpha = ti.uniform(B, seed, n, *self.alpha)
        field = field * alpha[:, None, None, None]
        yy, xx = ti.pixel_grid(B, n, h, w)
        return self._resample(images, labels, yy + field[..., 0], xx + field[..., 1])

    def get_config(self):
        config = super().get_config()
        config.update(alpha=list(self.alpha), sigma=self.sigma, probability=self.probability)
        return config


@keras.saving.register_keras_serializable(package="nuclib")
class RandomRadialDistortion(_Warp):
    """Barrel or pincushion (lens) distortion with a random coefficient per sample.

    Output pixel ``p`` (relative to the image centre, in units of the half
    diagonal, so ``r = |p|`` is 1 in the corners) shows the input at
    ``p * (1 + k * r**2)``, with ``k`` drawn uniformly from ``k`` per
    sample: ``k > 0`` is barrel distortion (the middle bulges, straight
    lines bow outwards and the edges are squeezed), ``k < 0`` pincushion
    (lines bow inwards), ``k = 0`` the identity. The centre stays put;
    pixels that come from beyond the edges (the corners, for barrel) are
    filled by ``fill_mode``.

    Args:
        k: the coefficient; ``c`` means ``(-c, c)``, or a ``(min, max)``
            pair. ``min`` must exceed -1/3: below, the image folds over
            itself at the corners.
        probability: fraction of samples distorted.
        interpolation, fill_mode, fill_value, label_fill_value: as ``RandomAffine``.
        seed: int seed or None.

    Raises:
        ValueError: a coefficient at or below -1/3, a bad range, probability or mode.

    Example:
        >>> layer = RandomRadialDistortion(k=(-0.2, 0.2), seed=0)   # barrel and pincushion
        >>> barrel = RandomRadialDistortion(k=(0.05, 0.3), seed=0)
    """

    def __init__(self, k=0.2, probability=1.0, interpolation="bilinear", fill_mode="reflect",
                 fill_value=0.0, label_fill_value=0, seed=None, **kwargs):
        super().__init__(interpolation=interpolation, fill_mode=fill_mode,
                         fill_value=fill_value, label_fill_value=label_fill_value,
                         seed=seed, **kwargs)
        self.k = check_range("k", k, symmetric=True)
        if self.k[0] <= -1.0 / 3.0:
            # d/dr [r (1 + k r^2)] = 1 + 3 k r^2 must stay > 0 up to the corners (r = 1).
            raise ValueError(f"k must stay above -1/3, got {self.k}; a stronger pincushion "
                             "folds the image over itself at the corners")
        self.probability = check_probability(probability)

    def transform(self, images, labels, seed, training):
        B = self.backend
        n, h, w = ti.shape(B, images)[:3]
        k = ti.uniform(B, seed, n, *self.k)[:, None, None]
        yy, xx = ti.pixel_grid(B, n, h, w)
        cy = (B.core.cast(h, "float32") - 1.0) / 2.0
        cx = (B.core.cast(w, "float32") - 1.0) / 2.0
        half_diagonal = B.numpy.maximum(B.numpy.sqrt(cy * cy + cx * cx), 1.0)
        dy, dx = yy - cy, xx - cx
        factor = 1.0 + k * (B.numpy.square(dy) + B.numpy.square(dx)) / (half_diagonal ** 2)
        return self._resample(images, labels, cy + dy * factor, cx + dx * factor)

    def get_config(self):
        config = super().get_config()
        config.update(k=list(self.k), probability=self.probability)
        return config


def _rotation_table(angles) -> tuple[list[float], list[float]]:
    """Cosines and sines of ``angles`` (degrees); exact 0 / 1 / -1 for multiples of 90."""
    cos, sin = [], []
    for angle in angles:
        quarter = angle / 90.0
        if quarter == round(quarter):
            c, s = ((1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0))[int(round(quarter)) % 4]
        else:
            c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        cos.append(c)
        sin.append(s)
    return cos, sin


@keras.saving.register_keras_serializable(package="nuclib")
class RandomDiscreteRotation(_Warp):
    """Rotate each sample by an angle drawn from a list (degrees, counter-clockwise as displayed).

    Every angle of ``angles`` is equally likely (list one twice to draw it
    twice as often). The rotation is about the image centre and keeps the
    image's shape. Multiples of 90 degrees use exact cosines and sines, so
    on square images they move pixels exactly as ``np.rot90`` does (no
    interpolation, images and labels pixel for pixel); other angles, and
    quarter turns of non-square images, resample and fill the corners by
    ``fill_mode``.

    Args:
        angles: one or more angles in degrees, e.g. ``(0, 90, 180, 270)``
            or ``(-15, 0, 15)``.
        interpolation, fill_mode, fill_value, label_fill_value: as ``RandomAffine``.
        seed: int seed or None.

    Raises:
        ValueError: no angles, or angles that are not finite numbers; a bad mode.

    Example:
        >>> import numpy as np
        >>> image = np.arange(9, dtype="float32").reshape(3, 3)
        >>> turned = RandomDiscreteRotation(angles=(90,), seed=0)(image)
        >>> bool(np.array_equal(turned, np.rot90(image)))
        True
    """

    def __init__(self, angles=(0, 90, 180, 270), interpolation="bilinear", fill_mode="reflect",
                 fill_value=0.0, label_fill_value=0, seed=None, **kwargs):
        super().__init__(interpolation=interpolation, fill_mode=fill_mode,
                         fill_value=fill_value, label_fill_value=label_fill_value,
                         seed=seed, **kwargs)
        if isinstance(angles, (int, float)):
            angles = (angles,)
        try:
            values = tuple(float(a) for a in angles)
        except (TypeError, ValueError) as err:
            raise ValueError(f"angles must be a sequence of numbers (degrees), got "
                             f"{angles!r}") from err
        if not values or not all(math.isfinite(a) for a in values):
            raise ValueError(f"angles must be one or more finite numbers (degrees), got "
                             f"{angles!r}")
        self.angles = values
        self._cos, self._sin = _rotation_table(values)

    def transform(self, images, labels, seed, training):
        B = self.backend
        n, h, w = ti.shape(B, images)[:3]
        m = len(self.angles)
        u = B.random.uniform((n,), dtype="float32", seed=seed)
        index = B.numpy.minimum(B.core.cast(B.numpy.floor(u * m), "int32"), m - 1)
        cos = B.numpy.take(B.core.convert_to_tensor(self._cos, "float32"), index)
        sin = B.numpy.take(B.core.convert_to_tensor(self._sin, "float32"), index)
        zero = B.numpy.zeros_like(cos)
        # source = R(-theta) out, as RandomAffine's inverse without scale, shear or shift.
        stack = B.numpy.stack
        inverse = stack([stack([cos, -sin, zero], axis=1),
                         stack([sin, cos, zero], axis=1)], axis=1)
        ys, xs = ti.affine_source(B, inverse, h, w, n)
        return self._resample(images, labels, ys, xs)

    def get_config(self):
        config = super().get_config()
        config["angles"] = list(self.angles)
        return config


@keras.saving.register_keras_serializable(package="nuclib")
class RandomCrop(JointLayer):
    """Crop the same random window from images and labels (joint, per sample).

    Inputs smaller than the crop are padded at the bottom / right: images by
    reflection, labels with ``label_pad_value`` (-1, the label losses
    ignore). Without training (``training=False``) the centre is cropped, so
    the output size is the same either way.

    Args:
        height, width: crop size in pixels.
        label_pad_value: label for padded pixels (use 0 for unsigned labels).
        seed: int seed or None.

    Raises:
        ValueError: non-positive size; at call time, a negative pad value for
            unsigned labels.

    Example:
        >>> crop = RandomCrop(256, 256, seed=0)
    """

    acts_in_inference = True

    def __init__(self, height, width, label_pad_value=IGNORE_LABEL, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if int(height) < 1 or int(width) < 1:
            raise ValueError(f"crop size must be positive, got {height}x{width}")
        self.height = int(height)
        self.width = int(width)
        self.label_pad_value = int(label_pad_value)

    def transform(self, images, labels, seed, training):
        B = self.backend
        cast = B.core.cast
        n, h, w = ti.shape(B, images)[:3]
        room_y = B.numpy.maximum(cast(h - self.height, "int32"), 0)
        room_x = B.numpy.maximum(cast(w - self.width, "int32"), 0)
        if training:
            u = B.random.uniform((n, 2), dtype="float32", seed=seed)
            oy = cast(B.numpy.floor(u[:, 0] * cast(room_y + 1, "float32")), "int32")
            ox = cast(B.numpy.floor(u[:, 1] * cast(room_x + 1, "float32")), "int32")
            oy, ox = B.numpy.minimum(oy, room_y), B.numpy.minimum(ox, room_x)
        else:
            oy = B.numpy.zeros((n,), "int32") + room_y // 2
            ox = B.numpy.zeros((n,), "int32") + room_x // 2
        rows = oy[:, None, None] + cast(B.numpy.arange(self.height), "int32")[None, :, None]
        cols = ox[:, None, None] + cast(B.numpy.arange(self.width), "int32")[None, None, :]
        rows = B.numpy.broadcast_to(rows, (n, self.height, self.width))
        cols = B.numpy.broadcast_to(cols, (n, self.height, self.width))
        images = ti.gather_pixels(B, images, rows, cols, fill_mode="reflect")
        if labels is not None:
            dtype = keras.backend.standardize_dtype(labels.dtype)
            if self.label_pad_value < 0 and dtype.startswith("uint"):
                raise ValueError(f"labels of dtype {dtype} cannot hold the pad value "
                                 f"{self.label_pad_value}; use label_pad_value=0 or signed labels")
            labels = ti.gather_pixels(B, labels, rows, cols, fill_mode="constant",
                                      fill_value=self.label_pad_value)
        return images, labels

    def compute_output_shape(self, input_shape):
        def cropped(shape, batched):
            shape = list(shape)
            first = 1 if batched else 0
            shape[first:first + 2] = [self.height, self.width]
            return tuple(shape)

        if isinstance(input_shape, dict):
            batched = len(input_shape["images"]) == 4
            return {k: cropped(v, batched) if k in ("images", "labels", "segmentation_masks")
                    else v for k, v in input_shape.items()}
        return cropped(input_shape, len(input_shape) == 4)

    def get_config(self):
        config = super().get_config()
        config.update(height=self.height, width=self.width,
                      label_pad_value=self.label_pad_value)
        return config
