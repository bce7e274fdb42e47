"""Cross-entropies that ignore unlabelled pixels.

``weighted_categorical_crossentropy`` is the unet4nuclei boundary weighting
for the three-class head; ``binary_crossentropy`` is the plain, masked
binary cross-entropy used by ``BCEDice``.
"""

from __future__ import annotations

import keras
from keras import ops

from nuclib.losses.base import NuclibLoss
from nuclib.losses.utils import binary_targets, class_targets, masked_pixel_mean


def weighted_categorical_crossentropy(y_true, y_pred, class_weights=(1.0, 1.0, 10.0),
                                      from_logits: bool = False, epsilon: float = 1e-7):
    """Per-sample class-weighted cross-entropy, averaged over labelled pixels.

    Args:
        y_true: one-hot ``(N, H, W, K)`` or integer labels ``(N, H, W)`` /
            ``(N, H, W, 1)``. Pixels with a negative integer label (or an
            all-zero one-hot row) are ignored.
        y_pred: probabilities (or logits if ``from_logits``) ``(N, H, W, K)``.
        class_weights: one weight per class; (1, 1, 10) up-weights boundaries.
        from_logits: ``y_pred`` holds logits.
        epsilon: probabilities are clipped to ``[epsilon, 1]`` before the log.

    Returns:
        Tensor of shape ``(N,)``: sum of weighted pixel losses divided by the
        number of labelled pixels (0 when none).

    Raises:
        ValueError: targets that do not fit ``y_pred``, or ``class_weights``
            of the wrong length.

    Example:
        >>> import numpy as np
        >>> y = np.array([[[0, 2]]])
        >>> p = np.array([[[[0.8, 0.1, 0.1], [0.2, 0.3, 0.5]]]], dtype="float32")
        >>> float(weighted_categorical_crossentropy(y, p)[0])  # (-ln .8 - 10 ln .5) / 2
        3.577...
    """
    y_pred = ops.convert_to_tensor(y_pred)
    num_classes = y_pred.shape[-1]
    if len(class_weights) != num_classes:
        raise ValueError(f"class_weights has {len(class_weights)} entries but y_pred has "
                         f"{num_classes} classes; expected one weight per class")
    y_true, _ = class_targets(y_true, y_pred)
    if from_logits:
        log_p = ops.log_softmax(y_pred, axis=-1)
    else:
        log_p = ops.log(ops.clip(y_pred, epsilon, 1.0))
    weights = ops.convert_to_tensor(class_weights, dtype=y_pred.dtype)
    pixel = -ops.sum(y_true * weights * log_p, axis=-1)
    valid = ops.sum(y_true, axis=-1)
    axes = tuple(range(1, len(pixel.shape)))
    return ops.sum(pixel, axis=axes) / ops.maximum(ops.sum(valid, axis=axes), 1.0)


@keras.saving.register_keras_serializable(package="nuclib")
class WeightedCategoricalCrossentropy(NuclibLoss):
    """Class-weighted categorical cross-entropy; negative labels are ignored.

    See :func:`weighted_categorical_crossentropy` for the formula.

    Args:
        class_weights: one weight per class, e.g. (1, 1, 10) for
            (background, interior, boundary).
        from_logits: predictions are logits.
        reduction: Keras reduction of the per-image values.
        name: loss name.
        dtype: computation dtype.

    Example:
        >>> loss = WeightedCategoricalCrossentropy(class_weights=(1, 1, 10))
    """

    def __init__(self, class_weights=(1.0, 1.0, 10.0), from_logits: bool = False,
                 reduction="sum_over_batch_size", name="weighted_categorical_crossentropy",
                 dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.class_weights = tuple(float(w) for w in class_weights)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        return weighted_categorical_crossentropy(y_true, y_pred, self.class_weights,
                                                 self.from_logits)

    def get_config(self):
        config = super().get_config()
        config.update(class_weights=list(self.class_weights), from_logits=self.from_logits)
        return config


def binary_crossentropy(y_true, y_pred, from_logits: bool = False, epsilon: float = 1e-7):
    """Per-image binary cross-entropy, averaged over labelled pixels.

    ``-(t log p + (1 - t) log(1 - p))`` with ``p`` clipped to
    ``[epsilon, 1 - epsilon]`` (or computed stably from logits).

    Args:
        y_true: mask ``(N, H, W)`` / ``(N, H, W, 1)``, 0/1 (or soft), negative = ignore.
        y_pred: probabilities (or logits) ``(N, H, W, 1)``.
        from_logits: ``y_pred`` holds logits.
        epsilon: clipping of probabilities.

    Returns:
        ``(N,)`` tensor (0 for an image without labelled pixels).

    Raises:
        ValueError: ``y_pred`` has more than one channel or shapes do not fit.

    Example:
        >>> import numpy as np
        >>> round(float(binary_crossentropy(np.array([[[1]]]), np.array([[[[0.5]]]]))[0]), 4)
        0.6931
    """
    y_pred = ops.convert_to_tensor(y_pred)
    target, valid = binary_targets(y_true, y_pred)
    if from_logits:
        pixel = ops.relu(y_pred) - y_pred * target + ops.log1p(ops.exp(-ops.abs(y_pred)))
    else:
        p = ops.clip(y_pred, epsilon, 1.0 - epsilon)
        pixel = -(target * ops.log(p) + (1.0 - target) * ops.log(1.0 - p))
    return masked_pixel_mean(pixel, valid)
