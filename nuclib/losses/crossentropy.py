"""Cross-entropies that ignore unlabelled pixels.

``weighted_categorical_crossentropy`` is the unet4nuclei boundary weighting
for the three-class head; ``binary_crossentropy`` is the plain, masked
binary cross-entropy used by ``BCEDice``; ``weighted_binary_crossentropy``
weighs background and foreground pixels of the binary head apart, as a
weighted mean that stays finite for weights as far apart as 1 : 1e6.
"""

from __future__ import annotations

import keras
from keras import ops

from nuclib.losses.base import NuclibLoss
from nuclib.losses.utils import (
    binary_targets,
    check_class_weights,
    class_targets,
    masked_pixel_mean,
    pixel_binary_crossentropy,
    safe_ratio,
)


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
            of the wrong length, negative, not finite or all zero.

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
    class_weights = check_class_weights(class_weights)  # a negative weight rewards errors
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


class _ClassWeightedLoss(NuclibLoss):
    """A loss of ``class_weights`` and ``from_logits``, computed by the function ``_twin``."""

    _twin = None

    def __init__(self, class_weights, from_logits, reduction, name, dtype):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.class_weights = tuple(float(w) for w in class_weights)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        return type(self)._twin(y_true, y_pred, self.class_weights, self.from_logits)

    def get_config(self):
        config = super().get_config()
        config.update(class_weights=list(self.class_weights), from_logits=self.from_logits)
        return config


@keras.saving.register_keras_serializable(package="nuclib")
class WeightedCategoricalCrossentropy(_ClassWeightedLoss):
    """Class-weighted categorical cross-entropy; negative labels are ignored.

    See :func:`weighted_categorical_crossentropy` for the formula.

    Args:
        class_weights: one weight per class, e.g. (1, 1, 10) for
            (background, interior, boundary).
        from_logits: predictions are logits.
        reduction: Keras reduction of the per-image values.
        name: loss name.
        dtype: computation dtype.

    Raises:
        ValueError: a negative or non-finite weight, or all weights zero.

    Example:
        >>> loss = WeightedCategoricalCrossentropy(class_weights=(1, 1, 10))
    """

    _twin = staticmethod(weighted_categorical_crossentropy)

    def __init__(self, class_weights=(1.0, 1.0, 10.0), from_logits: bool = False,
                 reduction="sum_over_batch_size", name="weighted_categorical_crossentropy",
                 dtype=None):
        super().__init__(check_class_weights(class_weights), from_logits, reduction, name,
                         dtype)


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
    return masked_pixel_mean(pixel_binary_crossentropy(target, y_pred, from_logits, epsilon),
                             valid)


def check_binary_weights(class_weights):
    """Validate ``(w_background, w_foreground)``: two finite, non-negative numbers, sum > 0.

    Args:
        class_weights: a sequence of two numbers.

    Returns:
        A tuple of two floats.

    Raises:
        ValueError: not two numbers, a negative or non-finite weight, or both zero.

    Example:
        >>> check_binary_weights([1, 1e6])
        (1.0, 1000000.0)
    """
    try:
        count = len(class_weights)
    except TypeError:
        count = None
    if count != 2:
        raise ValueError(f"class_weights must be two numbers (w_background, w_foreground) for "
                         f"the binary head; got {class_weights!r}")
    return check_class_weights(class_weights)


def weighted_binary_crossentropy(y_true, y_pred, class_weights=(1.0, 1.0),
                                 from_logits: bool = False, epsilon: float = 1e-7):
    """Per-image class-weighted binary cross-entropy: a weighted mean over labelled pixels.

    With pixel weights ``w = w_bg (1 - t) + w_fg t`` (``t`` the target, soft
    targets interpolate) and ``b`` the pixel BCE of :func:`binary_crossentropy`,
    each image's loss is ``sum(w b) / sum(w)`` over its labelled pixels.

    Normalization: dividing by the sum of the weights (not by the number of
    pixels) keeps the loss a weighted *mean* of pixel BCEs, so its value and
    its gradients stay in the range of plain BCE (at most ``-ln epsilon``,
    about 16) whatever the weights: 1 : 1e6 gives a finite loss and finite
    gradients, (1, 1) is plain BCE, and only the ratio of the weights
    matters. The weights are divided by their maximum before use, so no
    intermediate sum grows with them. The ratio is per image: an image with
    foreground is dominated by it, an image of background alone still
    scores its background at full (plain BCE) scale. An image without
    labelled pixels (or whose labelled pixels all have weight 0) has loss 0.

    Args:
        y_true: mask ``(N, H, W)`` / ``(N, H, W, 1)``, 0/1 (or soft), negative = ignore.
        y_pred: probabilities (or logits) ``(N, H, W, 1)``.
        class_weights: ``(w_background, w_foreground)``, non-negative, not both 0.
        from_logits: ``y_pred`` holds logits.
        epsilon: clipping of probabilities.

    Returns:
        ``(N,)`` tensor.

    Raises:
        ValueError: bad ``class_weights``, ``y_pred`` with more than one
            channel, or shapes that do not fit.

    Example:
        >>> import numpy as np
        >>> y = np.array([[[1, 0]]]); p = np.array([[[[0.5], [0.8]]]])
        >>> round(float(weighted_binary_crossentropy(y, p, (1, 3))[0]), 4)  # (ln 5 + 3 ln 2) / 4
        0.9222
    """
    w_background, w_foreground = check_binary_weights(class_weights)
    top = max(w_background, w_foreground)
    y_pred = ops.convert_to_tensor(y_pred)
    target, valid = binary_targets(y_true, y_pred)
    weight = valid * ((w_background / top) * (1.0 - target) + (w_foreground / top) * target)
    axes = tuple(range(1, len(y_pred.shape)))
    pixel = pixel_binary_crossentropy(target, y_pred, from_logits, epsilon)
    return safe_ratio(ops.sum(weight * pixel, axis=axes), ops.sum(weight, axis=axes),
                      empty_value=0.0)


@keras.saving.register_keras_serializable(package="nuclib")
class WeightedBinaryCrossentropy(_ClassWeightedLoss):
    """Binary cross-entropy with a weight for background and one for foreground.

    For the binary head (one sigmoid channel, or logits with
    ``from_logits=True``); negative labels are ignored. The loss is the
    weighted mean ``sum(w b) / sum(w)`` over each image's labelled pixels,
    which stays finite for extreme weights such as ``(1, 1e6)``; see
    :func:`weighted_binary_crossentropy` for why this normalization.

    Args:
        class_weights: ``(w_background, w_foreground)``; ``(1, 1)`` is plain BCE.
        from_logits: predictions are logits.
        reduction: Keras reduction of the per-image values.
        name: loss name.
        dtype: computation dtype.

    Raises:
        ValueError: ``class_weights`` not two finite non-negative numbers with
            a positive sum.

    Example:
        >>> loss = WeightedBinaryCrossentropy(class_weights=(1, 1e6))
        >>> loss.get_config()["class_weights"]
        [1.0, 1000000.0]
    """

    _twin = staticmethod(weighted_binary_crossentropy)

    def __init__(self, class_weights=(1.0, 1.0), from_logits: bool = False,
                 reduction="sum_over_batch_size", name="weighted_binary_crossentropy",
                 dtype=None):
        super().__init__(check_binary_weights(class_weights), from_logits, reduction, name,
                         dtype)
