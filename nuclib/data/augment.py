"""Joint image / label augmentation that runs inside ``tf.data`` and eagerly, on every
Keras backend (TensorFlow, JAX, PyTorch).

Layers take ``{"images": ..., "labels": ...}`` (``"segmentation_masks"`` is
accepted too), draw one random transform and apply it to both: geometry
moves labels with nearest-neighbour sampling, intensity changes leave labels
alone, and label ids come back with their original dtype.

nuclib's own layers live in ``geometric`` (``RandomFlipRotate90``,
``RandomDiscreteRotation``, ``RandomAffine``, ``RandomRadialDistortion``,
``RandomGridElastic``, ``RandomElastic``, ``RandomCrop``) and ``intensity``
(``RandomGamma``, ``RandomGaussianBlur``, ``RandomSharpen``,
``RandomGaussianNoise``, ``RandomPoissonNoise``). ``JointAugment`` chains
them with Keras' own image-preprocessing layers (``RandomBrightness``,
``RandomContrast``, ``RandomRotation``, ...), converting labels to the float
masks Keras expects and back.

Example:
    >>> aug = default_augment(seed=0)
    >>> out = aug({"images": images, "labels": labels})   # doctest: +SKIP
"""

from __future__ import annotations

import keras
from keras import layers
from keras.src.utils import backend_utils

from nuclib.data.geometric import (RandomAffine, RandomCrop, RandomDiscreteRotation,
                                   RandomElastic, RandomFlipRotate90, RandomGridElastic,
                                   RandomRadialDistortion)
from nuclib.data.intensity import (RandomGamma, RandomGaussianBlur, RandomGaussianNoise,
                                   RandomPoissonNoise, RandomSharpen)
from nuclib.data.joint import MASK_KEYS, BackendSwitch, JointLayer

__all__ = [
    "JointAugment", "default_augment", "strong_augment", "JointLayer",
    "RandomFlipRotate90", "RandomDiscreteRotation", "RandomAffine", "RandomRadialDistortion",
    "RandomGridElastic", "RandomElastic", "RandomCrop",
    "RandomGamma", "RandomGaussianBlur", "RandomSharpen", "RandomGaussianNoise",
    "RandomPoissonNoise",
]

# Float formats that hold every integer id below 2**24 exactly.
_EXACT_DTYPES = ("float32", "float64")


@keras.saving.register_keras_serializable(package="nuclib")
class JointAugment(BackendSwitch, keras.layers.Layer):
    """Apply a chain of augmentation layers to images and labels, one draw per layer.

    nuclib layers (``JointLayer``) get the labels as they are; Keras
    image-preprocessing layers get them as float ``segmentation_masks`` and
    the result is rounded and cast back, so ids survive either way.

    Args:
        transforms: layers to apply in order (instances or their serialized configs).
        seed: base seed, kept for the record (each transform has its own).
        **kwargs: Keras layer arguments.

    Raises:
        ValueError: a Keras transform computing in a low-precision float
            (e.g. created under a ``mixed_bfloat16`` policy), which would round
            label ids above 256; create it with ``dtype="float32"``.

    Example:
        >>> aug = JointAugment([RandomFlipRotate90(seed=1),
        ...                     keras.layers.RandomContrast(0.3, value_range=(0, 1), seed=2)])
    """

    def __init__(self, transforms, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.transforms = [keras.layers.deserialize(t) if isinstance(t, dict) else t
                           for t in transforms]
        for t in self.transforms:
            if not isinstance(t, JointLayer) and t.compute_dtype not in _EXACT_DTYPES:
                raise ValueError(
                    f"{type(t).__name__} {t.name!r} computes in {t.compute_dtype}, which rounds "
                    "label ids above 256 (bfloat16) or 2048 (float16); create it with "
                    "dtype='float32'")
        self.seed = seed
        self.backend = backend_utils.DynamicBackend()
        self._allow_non_tensor_positional_args = True

    def build(self, input_shape=None):
        self.built = True

    def call(self, data, training=True):
        if not isinstance(data, dict) or "images" not in data:
            raise ValueError("augmentation expects a dict with 'images' and optionally "
                             f"'labels' or 'segmentation_masks'; got {type(data).__name__}")
        key = next((k for k in MASK_KEYS if k in data), None)
        images = data["images"]
        labels = data[key] if key is not None else None
        for transform in self.transforms:
            if isinstance(transform, JointLayer):
                batch = {"images": images} if labels is None else {"images": images,
                                                                   "labels": labels}
                batch = transform(batch, training=training)
                images, labels = batch["images"], batch.get("labels")
            else:
                images, labels = _keras_transform(transform, images, labels, training,
                                                  self.backend)
        out = dict(data)
        out["images"] = images
        if key is not None:
            out[key] = labels
        return out

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(transforms=[keras.layers.serialize(t) for t in self.transforms],
                      seed=self.seed)
        return config


def _keras_transform(transform, images, labels, training, B):
    """Run a Keras image-preprocessing layer with labels as float masks and back."""
    batch = {"images": images}
    squeeze = False
    if labels is not None:
        masks = B.core.cast(labels, "float32")
        squeeze = len(masks.shape) == len(images.shape) - 1
        batch["segmentation_masks"] = B.numpy.expand_dims(masks, -1) if squeeze else masks
    batch = transform(batch, training=training)
    if labels is None:
        return batch["images"], None
    masks = batch["segmentation_masks"]
    if squeeze:
        masks = B.numpy.squeeze(masks, -1)
    dtype = keras.backend.standardize_dtype(labels.dtype)
    return batch["images"], B.core.cast(B.numpy.round(masks), dtype)


def default_augment(seed: int | None = None) -> JointAugment:
    """Augmentation that works well for nuclei: flips, any rotation, zoom ±30 %,
    brightness and contrast.

    Zoom covers the wide range of nucleus sizes across microscopes; reflect
    filling avoids empty corners that the model would learn as background.
    The layers compute in float32 even under a mixed-precision policy, so
    label ids stay exact.

    Args:
        seed: base seed (transform ``i`` uses ``seed + i``); None counts as 0.

    Returns:
        A ``JointAugment`` for images in [0, 1].

    Example:
        >>> aug = default_augment(seed=42)
    """
    s = 0 if seed is None else seed
    f32 = "float32"
    return JointAugment([
        layers.RandomFlip("horizontal_and_vertical", seed=s + 1, dtype=f32),
        layers.RandomRotation(0.5, fill_mode="reflect", seed=s + 2, dtype=f32),
        layers.RandomZoom((-0.3, 0.3), fill_mode="reflect", seed=s + 3, dtype=f32),
        layers.RandomContrast(0.3, value_range=(0, 1), seed=s + 4, dtype=f32),
        layers.RandomBrightness(0.1, value_range=(0, 1), seed=s + 5, dtype=f32),
    ], seed=seed, name="default_augment")


def strong_augment(seed: int | None = None) -> JointAugment:
    """Heavier augmentation for small or varied datasets: geometry, elastic warps and
    imaging artefacts.

    Flips and 90-degree turns; rotation, zoom 0.75-1.33 and shear ±10° in one
    resampling; unet4nuclei's elastic grid (16 points, 5 px) on half the
    samples; contrast and brightness; gamma 0.7-1.5; blur, Gaussian noise and
    Poisson noise on a fraction of the samples.

    Args:
        seed: base seed (transform ``i`` uses ``seed + i``); None counts as 0.

    Returns:
        A ``JointAugment`` for images in [0, 1].

    Example:
        >>> aug = strong_augment(seed=42)
    """
    s = 0 if seed is None else seed
    f32 = "float32"
    return JointAugment([
        RandomFlipRotate90(seed=s + 1),
        RandomAffine(rotation=180.0, scale=(0.75, 1.33), shear=10.0, seed=s + 2),
        RandomGridElastic(points=16, distortion=5.0, probability=0.5, seed=s + 3),
        layers.RandomContrast(0.3, value_range=(0, 1), seed=s + 4, dtype=f32),
        layers.RandomBrightness(0.1, value_range=(0, 1), seed=s + 5, dtype=f32),
        RandomGamma(gamma=(0.7, 1.5), probability=0.5, seed=s + 6),
        RandomGaussianBlur(sigma=(0.0, 1.5), probability=0.3, seed=s + 7),
        RandomGaussianNoise(stddev=(0.0, 0.05), probability=0.3, seed=s + 8),
        RandomPoissonNoise(peak=(30.0, 1000.0), probability=0.2, seed=s + 9),
    ], seed=seed, name="strong_augment")
