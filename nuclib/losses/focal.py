"""Focal loss (Lin et al. 2017) for binary and multi-class heads.

Example:
    >>> import numpy as np
    >>> y = np.array([[[1]]])
    >>> p = np.array([[[[0.5]]]], dtype="float32")
    >>> round(float(focal_loss(y, p)[0]), 6)   # -0.25 * 0.5**2 * ln 0.5
    0.043322
"""

from __future__ import annotations

import numbers

import keras
from keras import ops

from nuclib.losses.base import NuclibLoss
from nuclib.losses.utils import (
    binary_targets,
    check_non_negative,
    class_targets,
    masked_pixel_mean,
)


def _check_alpha(alpha):
    """``None``, a float, or a tuple of floats (per-class weights)."""
    if alpha is None:
        return None
    if isinstance(alpha, numbers.Real):
        check_non_negative(alpha=alpha)
        return float(alpha)
    weights = tuple(float(a) for a in alpha)
    if not weights or min(weights) < 0:
        raise ValueError(f"alpha {list(weights)} must be non-negative, one weight per class")
    return weights


def focal_loss(y_true, y_pred, gamma: float = 2.0, alpha=0.25, from_logits: bool = False,
               epsilon: float = 1e-7):
    """Per-image focal loss, averaged over labelled pixels.

    Binary head ``(N, H, W, 1)`` (sigmoid):
    ``-[alpha t (1 - p)^gamma ln p + (1 - alpha) (1 - t) p^gamma ln(1 - p)]``;
    ``alpha`` weighs the foreground, ``1 - alpha`` the background, and
    ``alpha=None`` weighs both by 1.

    Multi-class head ``(N, H, W, K)`` (softmax):
    ``-sum_k alpha_k t_k (1 - p_k)^gamma ln p_k``; ``alpha`` is one number
    for all classes (as ``keras.losses.CategoricalFocalCrossentropy``), ``K``
    per-class numbers, or ``None`` (1).

    ``gamma = 0`` and ``alpha = None`` give plain cross-entropy.

    Args:
        y_true: integer labels, one-hot targets or a binary mask; negative
            labels are ignored.
        y_pred: probabilities (or logits) ``(N, H, W, K)``.
        gamma: focusing exponent (>= 0).
        alpha: class balancing, see above.
        from_logits: ``y_pred`` holds logits.
        epsilon: probabilities are clipped to ``[epsilon, 1 - epsilon]``.

    Returns:
        ``(N,)`` tensor (0 for an image without labelled pixels).

    Raises:
        ValueError: targets that do not fit ``y_pred``, or per-class ``alpha``
            of the wrong length (or given for a binary head).

    Example:
        >>> import numpy as np
        >>> y = np.array([[[0]]])
        >>> p = np.array([[[[0.5, 0.25, 0.25]]]])
        >>> round(float(focal_loss(y, p, alpha=None)[0]), 6)   # -(0.5**2) ln 0.5
        0.173287
    """
    y_pred = ops.convert_to_tensor(y_pred)
    num_classes = y_pred.shape[-1]
    if num_classes == 1:
        if alpha is not None and not isinstance(alpha, numbers.Real):
            raise ValueError(f"alpha {alpha!r} has per-class weights but y_pred has one "
                             "channel (binary head); expected a single number or None")
        target, valid = binary_targets(y_true, y_pred)
        if from_logits:
            prob = ops.sigmoid(y_pred)
            log_p, log_q = ops.log_sigmoid(y_pred), ops.log_sigmoid(-y_pred)
        else:
            prob = ops.clip(y_pred, epsilon, 1.0 - epsilon)
            log_p, log_q = ops.log(prob), ops.log(1.0 - prob)
        positive = target * ops.power(1.0 - prob, gamma) * log_p
        negative = (1.0 - target) * ops.power(prob, gamma) * log_q
        if alpha is None:
            pixel = -(positive + negative)
        else:
            pixel = -(alpha * positive + (1.0 - alpha) * negative)
        return masked_pixel_mean(pixel, valid)

    if alpha is not None and not isinstance(alpha, numbers.Real) and len(alpha) != num_classes:
        raise ValueError(f"alpha has {len(alpha)} entries but y_pred has {num_classes} "
                         "classes; expected one number or one weight per class")
    one_hot, valid = class_targets(y_true, y_pred)
    if from_logits:
        log_p = ops.log_softmax(y_pred, axis=-1)
        prob = ops.exp(log_p)
    else:
        prob = ops.clip(y_pred, epsilon, 1.0 - epsilon)
        log_p = ops.log(prob)
    terms = one_hot * ops.power(1.0 - prob, gamma) * log_p
    if alpha is not None:
        terms = terms * ops.convert_to_tensor(alpha, dtype=y_pred.dtype)
    return masked_pixel_mean(-ops.sum(terms, axis=-1), valid)


@keras.saving.register_keras_serializable(package="nuclib")
class Focal(NuclibLoss):
    """Focal loss for binary or multi-class heads; see :func:`focal_loss`.

    Args:
        gamma: focusing exponent (2 by default).
        alpha: binary head: foreground weight in [0, 1] (0.25 by default, as
            Lin et al.); multi-class head: one number or one weight per class;
            ``None`` for no weighting.
        from_logits: predictions are logits.
        reduction: Keras reduction of the per-image values.
        name: loss name.
        dtype: computation dtype.

    Raises:
        ValueError: negative ``gamma`` or ``alpha``.

    Example:
        >>> loss = Focal(gamma=2.0, alpha=(0.25, 0.5, 1.0))   # three-class head
    """

    def __init__(self, gamma: float = 2.0, alpha=0.25, from_logits: bool = False,
                 reduction="sum_over_batch_size", name="focal", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        check_non_negative(gamma=gamma)
        self.gamma = float(gamma)
        self.alpha = _check_alpha(alpha)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        return focal_loss(y_true, y_pred, self.gamma, self.alpha, self.from_logits)

    def get_config(self):
        config = super().get_config()
        config.update(gamma=self.gamma, from_logits=self.from_logits,
                      alpha=list(self.alpha) if isinstance(self.alpha, tuple) else self.alpha)
        return config
