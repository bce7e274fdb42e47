"""Base class of nuclib's joint image / label augmentation layers.

``JointLayer`` does what every augmentation shares: it accepts
``{"images": ..., "labels": ...}`` (``"segmentation_masks"`` works too) or a
bare image tensor, batched ``(N, H, W, C)`` or not ``(H, W, C)`` / ``(H, W)``;
draws one stateless seed per call from a ``keras.random.SeedGenerator``;
applies the subclass's transform to both images and labels; and hands back
the same structure, images as float32 and labels in their own dtype and shape.

Example:
    >>> from nuclib.data.geometric import RandomFlipRotate90
    >>> out = RandomFlipRotate90(seed=0)({"images": images, "labels": labels})   # doctest: +SKIP
"""

from __future__ import annotations

import keras
import tensorflow as tf

MASK_KEYS = ("labels", "segmentation_masks")


def check_range(name: str, value, *, low: float | None = None, symmetric: bool = False):
    """``value`` as a ``(min, max)`` tuple of floats; a single number ``v`` means ``(v, v)``,
    or ``(-v, v)`` when ``symmetric``.

    Args:
        name: argument name used in error messages.
        value: a Python number or a ``(min, max)`` pair.
        low: smallest allowed bound, or None for no limit.
        symmetric: a single number ``v`` means ``(-|v|, |v|)``.

    Returns:
        ``(min, max)`` as floats.

    Raises:
        ValueError: not a number or a pair, ``min > max``, or a bound below ``low``.

    Example:
        >>> check_range("shift", 0.2, symmetric=True), check_range("zoom", (0.8, 1.2), low=0)
        ((-0.2, 0.2), (0.8, 1.2))
    """
    if isinstance(value, (int, float)):
        value = (-abs(value), abs(value)) if symmetric else (value, value)
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a number or a (min, max) pair, got {value!r}") from err
    if lo > hi:
        raise ValueError(f"{name} must satisfy min <= max, got ({lo}, {hi})")
    if low is not None and lo < low:
        raise ValueError(f"{name} must be >= {low}, got ({lo}, {hi})")
    return lo, hi


def check_probability(probability: float) -> float:
    """``probability`` as a float in [0, 1].

    Args:
        probability: a number.

    Returns:
        ``float(probability)``.

    Raises:
        ValueError: outside [0, 1] (or NaN).

    Example:
        >>> check_probability(1)
        1.0
    """
    if not 0.0 <= float(probability) <= 1.0:
        raise ValueError(f"probability must be in [0, 1], got {probability}")
    return float(probability)


class _Packed:
    """Images and labels as ``(N, H, W, C)`` / ``(N, H, W, 1)`` plus how to restore the input."""

    def __init__(self, data):
        if isinstance(data, dict):
            if "images" not in data:
                raise ValueError("augmentation expects a dict with 'images' and optionally "
                                 f"'labels' or 'segmentation_masks'; got keys {sorted(data)}")
            keys = [k for k in MASK_KEYS if k in data]
            if len(keys) > 1:
                raise ValueError("give either 'labels' or 'segmentation_masks', not both")
            self.key = keys[0] if keys else None
            self.data = data
            images = data["images"]
        else:
            self.key, self.data, images = None, None, data
        images = tf.convert_to_tensor(images)
        self.image_rank = images.shape.rank
        if self.image_rank not in (2, 3, 4):
            raise ValueError(f"images have shape {tuple(images.shape)}; expected (N, H, W, C), "
                             "(H, W, C) or (H, W)")
        self.batched = self.image_rank == 4
        if self.image_rank == 2:
            images = images[None, :, :, None]
        elif self.image_rank == 3:
            images = images[None]
        self.images = tf.cast(images, tf.float32) if not images.dtype.is_floating else images
        self.labels = None
        if self.key is not None:
            labels = tf.convert_to_tensor(data[self.key])
            self.label_rank = labels.shape.rank
            base = 3 if self.batched else 2  # rank without a channel axis
            if self.label_rank not in (base, base + 1):
                raise ValueError(
                    f"{self.key} have shape {tuple(labels.shape)}; expected "
                    + ("(N, H, W) or (N, H, W, 1)" if self.batched else "(H, W) or (H, W, 1)")
                    + f" to match images of shape {tuple(images.shape[int(not self.batched):])}")
            if self.label_rank == base:
                labels = labels[..., None]
            if not self.batched:
                labels = labels[None]
            if labels.shape[-1] not in (None, 1):
                raise ValueError(f"{self.key} have {labels.shape[-1]} channels; expected one "
                                 "instance label image per sample")
            static_l, static_i = labels.shape[1:3], self.images.shape[1:3]
            if all(v is not None for v in (*static_l, *static_i)) and static_l != static_i:
                raise ValueError(f"{self.key} are {tuple(static_l)} but images are "
                                 f"{tuple(static_i)}; expected the same height and width")
            self.labels = labels

    def unpack(self, images, labels):
        if not self.batched:
            images = images[0]
            if self.image_rank == 2:
                images = images[..., 0]
        if self.data is None:
            return images
        out = dict(self.data)
        out["images"] = images
        if self.key is not None:
            if not self.batched:
                labels = labels[0]
            if self.label_rank == (3 if self.batched else 2):
                labels = labels[..., 0]
            out[self.key] = labels
        return out


class JointLayer(keras.layers.Layer):
    """Base class: one random draw per call, applied to images and labels alike.

    Subclasses implement ``transform(images, labels, seed, training)`` on
    ``(N, H, W, C)`` float images and ``(N, H, W, 1)`` labels (or None) and
    return both. Layers with a ``probability`` attribute apply themselves to
    each sample with that probability (the others are left untouched).

    Images come back as float32 (the layer computes in float32 whatever the
    global mixed-precision policy, so label ids and intensities keep their
    precision); labels keep their dtype and shape.

    Args:
        seed: int seed (same seed, same output) or None.
        **kwargs: Keras layer arguments (``name``, ...).

    Raises:
        ValueError: (at call) images not ``(N, H, W, C)``, ``(H, W, C)`` or
            ``(H, W)``; a dict without ``"images"`` or with both label keys;
            labels whose shape does not fit the images.
        NotImplementedError: (at call) a subclass without ``transform``.

    Example:
        >>> import numpy as np
        >>> class Invert(JointLayer):
        ...     def transform(self, images, labels, seed, training):
        ...         return 1.0 - images, labels
        >>> out = Invert(seed=0)({"images": np.zeros((4, 4), np.uint8),
        ...                       "labels": np.ones((4, 4), np.uint16)})
        >>> out["images"].dtype.name, out["labels"].dtype.name, tuple(out["images"].shape)
        ('float32', 'uint16', (4, 4))
    """

    def __init__(self, seed=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape=None):
        self.built = True

    def _draw_seed(self):
        # One stateless seed per call; everything random in the call derives
        # from it, so the generator advances by exactly one step.
        return tf.cast(keras.random.randint((2,), 0, 2**31 - 1, dtype="int32",
                                            seed=self.seed_generator), tf.int32)

    def call(self, data, training=True):
        packed = _Packed(data)
        images, labels = packed.images, packed.labels
        if training or self.acts_in_inference:
            seed = self._draw_seed()
            seeds = tf.random.experimental.stateless_split(seed, 2)
            new_images, new_labels = self.transform(images, labels, seeds[0], bool(training))
            probability = getattr(self, "probability", 1.0)
            if probability < 1.0:
                n = tf.shape(images)[0]
                apply = tf.random.stateless_uniform(tf.stack([n]), seeds[1]) < probability
                apply = apply[:, None, None, None]
                new_images = tf.where(apply, new_images, images)
                if labels is not None:
                    new_labels = tf.where(apply, new_labels, labels)
            images, labels = new_images, new_labels
        return packed.unpack(tf.cast(images, self.compute_dtype), labels)

    #: whether ``transform`` also runs with ``training=False`` (crops do).
    acts_in_inference = False

    def transform(self, images, labels, seed, training):
        """Return transformed ``(images, labels)``; ``labels`` may be None."""
        raise NotImplementedError

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["seed"] = self.seed
        return config
