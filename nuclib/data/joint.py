"""Base class of nuclib's joint image / label augmentation layers.

``JointLayer`` does what every augmentation shares: it accepts
``{"images": ..., "labels": ...}`` (``"segmentation_masks"`` works too) or a
bare image tensor, batched ``(N, H, W, C)`` or not ``(H, W, C)`` / ``(H, W)``;
draws one stateless seed per call from a ``keras.random.SeedGenerator``;
applies the subclass's transform to both images and labels; and hands back
the same structure, images as float32 and labels in their own dtype and shape.

The layers compute with Keras' backend ops (``self.backend``), so one
implementation runs eagerly on every backend (TensorFlow, JAX, PyTorch) and
inside ``tf.data`` graphs, where, as in Keras' own preprocessing layers, it
switches to TensorFlow ops whatever Keras' backend.

Example:
    >>> from nuclib.data.geometric import RandomFlipRotate90
    >>> out = RandomFlipRotate90(seed=0)({"images": images, "labels": labels})   # doctest: +SKIP
"""

from __future__ import annotations

import keras
from keras.src import tree
from keras.src.utils import backend_utils, jax_utils, tracking

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


def _dtype(x) -> str:
    return keras.backend.standardize_dtype(x.dtype)


class _Packed:
    """Images and labels as ``(N, H, W, C)`` / ``(N, H, W, 1)`` plus how to restore the input."""

    def __init__(self, data, B):
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
        images = B.core.convert_to_tensor(images)
        self.image_rank = len(images.shape)
        if self.image_rank not in (2, 3, 4):
            raise ValueError(f"images have shape {tuple(images.shape)}; expected (N, H, W, C), "
                             "(H, W, C) or (H, W)")
        self.batched = self.image_rank == 4
        if self.image_rank == 2:
            images = images[None, :, :, None]
        elif self.image_rank == 3:
            images = images[None]
        floating = "float" in _dtype(images)
        self.images = images if floating else B.core.cast(images, "float32")
        self.labels = None
        if self.key is not None:
            labels = B.core.convert_to_tensor(data[self.key])
            self.label_rank = len(labels.shape)
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
            static_l, static_i = tuple(labels.shape[1:3]), tuple(self.images.shape[1:3])
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


class BackendSwitch:
    """Mixin for layers that compute with ``self.backend``: inside a ``tf.data`` graph it
    is TensorFlow (and the inputs stay TensorFlow tensors, labels in their own
    dtype) whatever Keras' backend, as in Keras' own preprocessing layers;
    elsewhere it is Keras' backend."""

    def __call__(self, data, **kwargs):
        sample = tree.flatten(data)[0]
        if (keras.backend.backend() != "tensorflow"
                and not isinstance(sample, keras.KerasTensor)
                and backend_utils.in_tf_graph()
                and not jax_utils.is_in_jax_tracing_scope(sample)):
            # Inside a tf.data pipeline: TensorFlow ops whatever Keras' backend,
            # and the inputs stay TensorFlow tensors (labels in their own dtype).
            self.backend.set_backend("tensorflow")
            convert, self._convert_input_args = self._convert_input_args, False
            try:
                return super().__call__(data, **kwargs)
            finally:
                self.backend.reset()
                self._convert_input_args = convert
        return super().__call__(data, **kwargs)


class JointLayer(BackendSwitch, keras.layers.Layer):
    """Base class: one random draw per call, applied to images and labels alike.

    Subclasses implement ``transform(images, labels, seed, training)`` on
    ``(N, H, W, C)`` float images and ``(N, H, W, 1)`` labels (or None) and
    return both, computing with ``self.backend``'s ops and drawing random
    numbers with ``seed``, a ``keras.random.SeedGenerator`` for that backend
    (``self.backend.random.uniform(shape, seed=seed)``). Layers with a
    ``probability`` attribute apply themselves to each sample with that
    probability (the others are left untouched).

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
        self.backend = backend_utils.DynamicBackend()
        self._allow_non_tensor_positional_args = True

    def build(self, input_shape=None):
        self.built = True

    @tracking.no_automatic_dependency_tracking
    def _seed_generator_for(self, backend: str):
        """The layer's SeedGenerator, or a twin of it for the TensorFlow ops of tf.data."""
        if backend == keras.backend.backend():
            return self.seed_generator
        if not hasattr(self, "_backend_generators"):
            self._backend_generators = {}
        if backend not in self._backend_generators:
            self._backend_generators[backend] = keras.random.SeedGenerator(
                self.seed, backend=self.backend)
        return self._backend_generators[backend]

    def call(self, data, training=True):
        B = self.backend
        packed = _Packed(data, B)
        images, labels = packed.images, packed.labels
        if training or self.acts_in_inference:
            seed = self._seed_generator_for(B.name)
            new_images, new_labels = self.transform(images, labels, seed, bool(training))
            probability = getattr(self, "probability", 1.0)
            if probability < 1.0:
                n = B.core.shape(images)[0]
                draw = B.random.uniform((n,), dtype="float32", seed=seed)
                apply = (draw < probability)[:, None, None, None]
                new_images = B.numpy.where(apply, new_images, images)
                if labels is not None:
                    new_labels = B.numpy.where(apply, new_labels, labels)
            images, labels = new_images, new_labels
        return packed.unpack(B.core.cast(images, self.compute_dtype), labels)

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
