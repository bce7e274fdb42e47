"""Intensity augmentations: gamma, Gaussian blur, sharpening, Gaussian and Poisson noise.

They change the images only and hand labels back untouched, on every Keras
backend. Each draws its
strength per sample; ``probability`` applies a layer to only a fraction of
the samples. Images are expected in ``value_range`` (``(0, 1)`` after
``prepare_image``) and stay in it.

Example:
    >>> import numpy as np
    >>> noisy = RandomGaussianNoise(stddev=(0.0, 0.05), seed=0)(
    ...     {"images": np.full((8, 8, 1), 0.5, "float32"), "labels": np.ones((8, 8), "int32")})
    >>> int(noisy["labels"].numpy().min())
    1
"""

from __future__ import annotations

import keras

from nuclib.data import _image_ops as ti
from nuclib.data.joint import JointLayer, check_probability, check_range


class _Intensity(JointLayer):
    """Shared: a value range, a probability, labels passed through."""

    def __init__(self, value_range=(0.0, 1.0), probability=1.0, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.value_range = check_range("value_range", value_range)
        if self.value_range[0] >= self.value_range[1]:
            raise ValueError(f"value_range must have min < max, got {self.value_range}")
        self.probability = check_probability(probability)

    def transform(self, images, labels, seed, training):
        return self.transform_images(images, seed), labels

    def transform_images(self, images, seed):
        raise NotImplementedError

    def _to_unit(self, images):
        lo, hi = self.value_range
        return self.backend.numpy.clip((images - lo) / (hi - lo), 0.0, 1.0)

    def _from_unit(self, unit):
        lo, hi = self.value_range
        return lo + (hi - lo) * unit

    def get_config(self):
        config = super().get_config()
        config.update(value_range=list(self.value_range), probability=self.probability)
        return config


@keras.saving.register_keras_serializable(package="nuclib")
class RandomGamma(_Intensity):
    """Gamma correction ``x ** gamma`` (within ``value_range``), gamma log-uniform per sample.

    Gamma < 1 brightens dim structures, > 1 darkens them; both ends of the
    range stay fixed.

    Args:
        gamma: ``(min, max)`` gamma, > 0.
        value_range: the images' range; values outside are clipped.
        probability: fraction of samples changed.
        seed: int seed or None.

    Raises:
        ValueError: a gamma range not > 0, a bad range or probability.

    Example:
        >>> layer = RandomGamma(gamma=(0.7, 1.5), seed=0)
    """

    def __init__(self, gamma=(0.7, 1.5), value_range=(0.0, 1.0), probability=1.0, seed=None,
                 **kwargs):
        super().__init__(value_range=value_range, probability=probability, seed=seed, **kwargs)
        self.gamma = check_range("gamma", gamma)
        if self.gamma[0] <= 0:
            raise ValueError(f"gamma must be > 0, got {self.gamma}")

    def transform_images(self, images, seed):
        B = self.backend
        gamma = ti.log_uniform(B, seed, B.core.shape(images)[0], *self.gamma)
        return self._from_unit(B.numpy.power(self._to_unit(images), gamma[:, None, None, None]))

    def get_config(self):
        config = super().get_config()
        config["gamma"] = list(self.gamma)
        return config


@keras.saving.register_keras_serializable(package="nuclib")
class RandomGaussianBlur(_Intensity):
    """Gaussian blur with a standard deviation drawn uniformly from ``sigma`` per sample.

    Mimics defocus. Borders are reflected; the kernel reaches ``4 * max sigma``
    pixels (SciPy's default), and images must be at least that large.

    Args:
        sigma: ``(min, max)`` in pixels, >= 0 (0 leaves a sample unchanged).
        value_range: the images' range (blurring cannot leave it).
        probability: fraction of samples blurred.
        seed: int seed or None.

    Raises:
        ValueError: negative sigma, bad probability.

    Example:
        >>> layer = RandomGaussianBlur(sigma=(0.0, 1.5), probability=0.3, seed=0)
    """

    def __init__(self, sigma=(0.0, 1.5), value_range=(0.0, 1.0), probability=1.0, seed=None,
                 **kwargs):
        super().__init__(value_range=value_range, probability=probability, seed=seed, **kwargs)
        self.sigma = check_range("sigma", sigma, low=0.0)

    def transform_images(self, images, seed):
        B = self.backend
        sigma = ti.uniform(B, seed, B.core.shape(images)[0], *self.sigma)
        return ti.gaussian_blur(B, images, sigma, ti.radius_for(self.sigma[1]))

    def get_config(self):
        config = super().get_config()
        config["sigma"] = list(self.sigma)
        return config


@keras.saving.register_keras_serializable(package="nuclib")
class RandomSharpen(_Intensity):
    """Sharpening as imgaug's ``Sharpen(alpha, lightness)``, alpha and lightness drawn per sample.

    Each image (scaled to [0, 1] by ``value_range``) is convolved with the
    3 x 3 kernel ``(1 - alpha) * I + alpha * E``, where ``I`` is the
    identity and ``E`` has -1 on the eight neighbours and ``8 + lightness``
    in the centre (imgaug's and albumentations' matrix): ``alpha = 0``
    leaves the image alone, 1 is full sharpening; ``lightness = 1`` keeps
    flat regions as they are, more brightens, less darkens. Borders are
    reflected; results are clipped to ``value_range``. Labels are untouched.

    Args:
        alpha: ``(min, max)`` blend of the sharpened image, within [0, 1]
            (imgaug's default ``(0, 0.2)``).
        lightness: ``(min, max)`` centre weight less 8, >= 0 (imgaug's
            default ``(0.8, 1.2)``).
        value_range: the images' range.
        probability: fraction of samples sharpened.
        seed: int seed or None.

    Raises:
        ValueError: alpha outside [0, 1], negative lightness, a bad range or probability.

    Example:
        >>> import numpy as np
        >>> spot = np.full((1, 5, 5, 1), 0.2, "float32")
        >>> spot[0, 2, 2, 0] = 0.3
        >>> out = RandomSharpen(alpha=1.0, lightness=1.0, seed=0)(spot).numpy()
        >>> round(float(out[0, 2, 2, 0]), 4), round(float(out[0, 0, 0, 0]), 4)
        (1.0, 0.2)
    """

    def __init__(self, alpha=(0.0, 0.2), lightness=(0.8, 1.2), value_range=(0.0, 1.0),
                 probability=1.0, seed=None, **kwargs):
        super().__init__(value_range=value_range, probability=probability, seed=seed, **kwargs)
        self.alpha = check_range("alpha", alpha, low=0.0)
        if self.alpha[1] > 1.0:
            raise ValueError(f"alpha must lie within [0, 1] (a blend), got {self.alpha}")
        self.lightness = check_range("lightness", lightness, low=0.0)

    def transform_images(self, images, seed):
        B = self.backend
        n = B.core.shape(images)[0]
        alpha = ti.uniform(B, seed, n, *self.alpha)[:, None, None, None]
        lightness = ti.uniform(B, seed, n, *self.lightness)[:, None, None, None]
        unit = self._to_unit(images)
        sharpened = (8.0 + lightness) * unit - ti.neighbour_sum(B, unit)
        out = (1.0 - alpha) * unit + alpha * sharpened
        return self._from_unit(B.numpy.clip(out, 0.0, 1.0))

    def get_config(self):
        config = super().get_config()
        config.update(alpha=list(self.alpha), lightness=list(self.lightness))
        return config


@keras.saving.register_keras_serializable(package="nuclib")
class RandomGaussianNoise(_Intensity):
    """Additive Gaussian noise, standard deviation drawn uniformly from ``stddev`` per sample.

    Args:
        stddev: ``(min, max)`` noise level in image units (>= 0).
        value_range: the images' range; results are clipped to it.
        probability: fraction of samples made noisy.
        seed: int seed or None.

    Raises:
        ValueError: negative stddev, bad range or probability.

    Example:
        >>> layer = RandomGaussianNoise(stddev=(0.0, 0.05), seed=0)
    """

    def __init__(self, stddev=(0.0, 0.05), value_range=(0.0, 1.0), probability=1.0, seed=None,
                 **kwargs):
        super().__init__(value_range=value_range, probability=probability, seed=seed, **kwargs)
        self.stddev = check_range("stddev", stddev, low=0.0)

    def transform_images(self, images, seed):
        B = self.backend
        shape = ti.shape(B, images)
        level = ti.uniform(B, seed, shape[0], *self.stddev)
        noise = B.random.normal(shape, dtype="float32", seed=seed)
        return B.numpy.clip(images + noise * level[:, None, None, None], *self.value_range)

    def get_config(self):
        config = super().get_config()
        config["stddev"] = list(self.stddev)
        return config


@keras.saving.register_keras_serializable(package="nuclib")
class RandomPoissonNoise(_Intensity):
    """Shot noise: the image is read as photon counts with ``peak`` photons at full scale.

    Each pixel becomes ``Poisson(x * peak) / peak`` (x scaled to [0, 1] by
    ``value_range``); ``peak`` is drawn log-uniformly per sample, so low
    values give noisy, photon-starved images.

    Args:
        peak: ``(min, max)`` photons at the top of ``value_range`` (> 0).
        value_range: the images' range; results are clipped to it.
        probability: fraction of samples made noisy.
        seed: int seed or None.

    Raises:
        ValueError: a peak range not > 0, bad range or probability.

    Example:
        >>> layer = RandomPoissonNoise(peak=(30.0, 1000.0), probability=0.2, seed=0)
    """

    def __init__(self, peak=(30.0, 1000.0), value_range=(0.0, 1.0), probability=1.0, seed=None,
                 **kwargs):
        super().__init__(value_range=value_range, probability=probability, seed=seed, **kwargs)
        self.peak = check_range("peak", peak)
        if self.peak[0] <= 0:
            raise ValueError(f"peak must be > 0 photons, got {self.peak}")

    def transform_images(self, images, seed):
        B = self.backend
        peak = ti.log_uniform(B, seed, B.core.shape(images)[0], *self.peak)[:, None, None, None]
        counts = ti.poisson(B, seed, self._to_unit(images) * peak)
        return self._from_unit(B.numpy.clip(counts / peak, 0.0, 1.0))

    def get_config(self):
        config = super().get_config()
        config["peak"] = list(self.peak)
        return config
