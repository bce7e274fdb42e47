"""Soft overlap losses: Dice, Jaccard (IoU) and Tversky.

All three work per image on the soft counts of :func:`soft_confusion`
(``tp = sum(p t)``, ``fp = sum(p (1 - t))``, ``fn = sum((1 - p) t)`` over
labelled pixels), per class, then average the classes (optionally weighted):

* binary head ``(N, H, W, 1)``: the single foreground channel;
* multi-class head ``(N, H, W, K)`` (softmax): every class, weighted by
  ``class_weights`` (give the background weight 0 to leave it out).

Empty masks: with ``smooth > 0`` an image whose target and prediction are
both empty scores 1 (loss 0); an empty target with predicted mass ``P``
gives Dice loss ``P / (P + smooth)``. With ``smooth = 0`` the same empty /
empty case is defined as loss 0 (instead of 0/0), and an empty target with
any prediction gives loss 1. An image without labelled pixels has loss 0.

Example:
    >>> import numpy as np
    >>> y = np.array([[[1, 1, 0, 0]]])
    >>> p = np.array([[[0.9, 0.6, 0.2, 0.0]]], dtype="float32")[..., None]
    >>> round(float(dice_loss(y, p)[0]), 6)   # 1 - (2*1.5 + 1) / (2 + 1.7 + 1)
    0.148936
"""

from __future__ import annotations

import keras

from nuclib.losses.base import NuclibLoss
from nuclib.losses.utils import (
    check_class_weights,
    check_non_negative,
    class_weighted_mean,
    safe_ratio,
    soft_confusion,
)


def dice_loss(y_true, y_pred, smooth: float = 1.0, class_weights=None,
              from_logits: bool = False):
    """Soft Dice loss ``1 - (2 tp + smooth) / (2 tp + fp + fn + smooth)`` per image.

    ``2 tp + fp + fn`` equals ``sum(t) + sum(p)``.

    Args:
        y_true: integer labels ``(N, H, W[, 1])``, one-hot ``(N, H, W, K)`` or a
            binary mask; negative labels are ignored.
        y_pred: probabilities (or logits) ``(N, H, W, K)``; ``K = 1`` is binary.
        smooth: added to numerator and denominator (see the module docstring
            for empty masks).
        class_weights: ``None`` (mean over classes) or ``K`` weights.
        from_logits: apply sigmoid (``K = 1``) or softmax first.

    Returns:
        ``(N,)`` tensor in [0, 1].

    Raises:
        ValueError: targets that do not fit ``y_pred``, or ``class_weights`` of
            the wrong length.

    Example:
        >>> import numpy as np
        >>> float(dice_loss(np.array([[[1, 0]]]), np.array([[[[1.0], [0.0]]]]))[0])
        0.0
    """
    tp, fp, fn = soft_confusion(y_true, y_pred, from_logits)
    score = safe_ratio(2.0 * tp + smooth, 2.0 * tp + fp + fn + smooth)
    return class_weighted_mean(1.0 - score, class_weights)


def jaccard_loss(y_true, y_pred, smooth: float = 1.0, class_weights=None,
                 from_logits: bool = False):
    """Soft Jaccard (IoU) loss ``1 - (tp + smooth) / (tp + fp + fn + smooth)`` per image.

    ``tp + fp + fn`` equals ``sum(t) + sum(p) - sum(t p)``.

    Args:
        y_true: integer labels ``(N, H, W[, 1])``, one-hot ``(N, H, W, K)`` or a
            binary mask; negative labels are ignored.
        y_pred: probabilities (or logits) ``(N, H, W, K)``; ``K = 1`` is binary.
        smooth: added to numerator and denominator (see the module docstring
            for empty masks).
        class_weights: ``None`` (mean over classes) or ``K`` weights.
        from_logits: apply sigmoid (``K = 1``) or softmax first.

    Returns:
        ``(N,)`` tensor in [0, 1].

    Raises:
        ValueError: targets that do not fit ``y_pred``, or ``class_weights`` of
            the wrong length.

    Example:
        >>> import numpy as np
        >>> y = np.array([[[1, 0]]])
        >>> p = np.array([[[[0.5], [0.5]]]])
        >>> round(float(jaccard_loss(y, p, smooth=0)[0]), 6)  # 1 - 0.5 / 1.5
        0.666667
    """
    tp, fp, fn = soft_confusion(y_true, y_pred, from_logits)
    score = safe_ratio(tp + smooth, tp + fp + fn + smooth)
    return class_weighted_mean(1.0 - score, class_weights)


def tversky_loss(y_true, y_pred, alpha: float = 0.3, beta: float = 0.7, smooth: float = 1.0,
                 class_weights=None, from_logits: bool = False):
    """Tversky loss ``1 - (tp + smooth) / (tp + alpha fp + beta fn + smooth)`` per image.

    ``alpha`` weighs false positives and ``beta`` false negatives (Salehi et
    al. 2017); ``beta > alpha`` favours recall. ``alpha = beta = 1`` is the
    Jaccard loss.

    Args:
        y_true: integer labels ``(N, H, W[, 1])``, one-hot ``(N, H, W, K)`` or a
            binary mask; negative labels are ignored.
        y_pred: probabilities (or logits) ``(N, H, W, K)``; ``K = 1`` is binary.
        alpha: weight of false positives.
        beta: weight of false negatives.
        smooth: added to numerator and denominator.
        class_weights: ``None`` (mean over classes) or ``K`` weights.
        from_logits: apply sigmoid (``K = 1``) or softmax first.

    Returns:
        ``(N,)`` tensor; in [0, 1] when ``alpha`` and ``beta`` are at most 1.

    Raises:
        ValueError: targets that do not fit ``y_pred``, or ``class_weights`` of
            the wrong length.

    Example:
        >>> import numpy as np
        >>> y = np.array([[[1, 0]]])
        >>> p = np.array([[[[0.5], [0.5]]]])
        >>> round(float(tversky_loss(y, p, smooth=0)[0]), 6)  # 1 - .5 / (.5 + .3*.5 + .7*.5)
        0.5
    """
    tp, fp, fn = soft_confusion(y_true, y_pred, from_logits)
    score = safe_ratio(tp + smooth, tp + alpha * fp + beta * fn + smooth)
    return class_weighted_mean(1.0 - score, class_weights)


class _OverlapLoss(NuclibLoss):
    """Shared constructor and config of the overlap losses."""

    def __init__(self, smooth, class_weights, from_logits, reduction, name, dtype):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        check_non_negative(smooth=smooth)
        self.smooth = float(smooth)
        self.class_weights = check_class_weights(class_weights)
        self.from_logits = bool(from_logits)

    def get_config(self):
        config = super().get_config()
        config.update(smooth=self.smooth, from_logits=self.from_logits,
                      class_weights=None if self.class_weights is None
                      else list(self.class_weights))
        return config


@keras.saving.register_keras_serializable(package="nuclib")
class Dice(_OverlapLoss):
    """Soft Dice loss (per image, per class, classes averaged); see :func:`dice_loss`.

    Args:
        smooth: smoothing term (1 by default).
        class_weights: ``None`` or one weight per class of a multi-class head.
        from_logits: predictions are logits.
        reduction: Keras reduction of the per-image values.
        name: loss name.
        dtype: computation dtype.

    Raises:
        ValueError: negative ``smooth`` or invalid ``class_weights``.

    Example:
        >>> loss = Dice(class_weights=(0, 1, 1))   # interior and boundary only
    """

    def __init__(self, smooth: float = 1.0, class_weights=None, from_logits: bool = False,
                 reduction="sum_over_batch_size", name="dice", dtype=None):
        super().__init__(smooth, class_weights, from_logits, reduction, name, dtype)

    def call(self, y_true, y_pred):
        return dice_loss(y_true, y_pred, self.smooth, self.class_weights, self.from_logits)


@keras.saving.register_keras_serializable(package="nuclib")
class Jaccard(_OverlapLoss):
    """Soft Jaccard (IoU) loss; see :func:`jaccard_loss`.

    Args:
        smooth: smoothing term (1 by default).
        class_weights: ``None`` or one weight per class of a multi-class head.
        from_logits: predictions are logits.
        reduction: Keras reduction of the per-image values.
        name: loss name.
        dtype: computation dtype.

    Raises:
        ValueError: negative ``smooth`` or invalid ``class_weights``.

    Example:
        >>> loss = Jaccard(smooth=1.0)
    """

    def __init__(self, smooth: float = 1.0, class_weights=None, from_logits: bool = False,
                 reduction="sum_over_batch_size", name="jaccard", dtype=None):
        super().__init__(smooth, class_weights, from_logits, reduction, name, dtype)

    def call(self, y_true, y_pred):
        return jaccard_loss(y_true, y_pred, self.smooth, self.class_weights, self.from_logits)


@keras.saving.register_keras_serializable(package="nuclib")
class Tversky(_OverlapLoss):
    """Tversky loss; see :func:`tversky_loss`.

    Args:
        alpha: weight of false positives.
        beta: weight of false negatives.
        smooth, class_weights, from_logits, reduction, name, dtype: as :class:`Dice`.

    Raises:
        ValueError: negative ``alpha``, ``beta`` or ``smooth``, or invalid
            ``class_weights``.

    Example:
        >>> loss = Tversky(alpha=0.3, beta=0.7)
    """

    def __init__(self, alpha: float = 0.3, beta: float = 0.7, smooth: float = 1.0,
                 class_weights=None, from_logits: bool = False,
                 reduction="sum_over_batch_size", name="tversky", dtype=None):
        super().__init__(smooth, class_weights, from_logits, reduction, name, dtype)
        check_non_negative(alpha=alpha, beta=beta)
        self.alpha = float(alpha)
        self.beta = float(beta)

    def call(self, y_true, y_pred):
        return tversky_loss(y_true, y_pred, self.alpha, self.beta, self.smooth,
                            self.class_weights, self.from_logits)

    def get_config(self):
        config = super().get_config()
        config.update(alpha=self.alpha, beta=self.beta)
        return config
