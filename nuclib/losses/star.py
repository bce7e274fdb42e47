"""The star head's loss: StarDist's probability BCE plus a probability-weighted ray L1.

Example:
    >>> from nuclib.losses import StarLoss
    >>> loss = StarLoss(distance_weight=0.2)
"""

from __future__ import annotations

import keras
from keras import ops

from nuclib.losses.base import NuclibLoss
from nuclib.losses.utils import (check_non_negative, masked_pixel_mean,
                                 pixel_binary_crossentropy)


def _split_star(y_true, y_pred):
    y_true = ops.convert_to_tensor(y_true)
    y_pred = ops.convert_to_tensor(y_pred)
    if (len(y_pred.shape) != 4 or y_pred.shape[-1] is None or y_pred.shape[-1] < 4
            or tuple(y_true.shape[1:]) != tuple(y_pred.shape[1:])):
        raise ValueError(f"y_true has shape {tuple(y_true.shape)} and y_pred "
                         f"{tuple(y_pred.shape)}; expected both (N, H, W, 1 + n_rays) with "
                         "n_rays >= 3: object probability, then ray distances "
                         "(nuclib.data.targets.star)")
    y_true = ops.cast(y_true, y_pred.dtype)
    return y_true[..., :1], y_true[..., 1:], y_pred[..., :1], y_pred[..., 1:]


def star_loss(y_true, y_pred, distance_weight: float = 0.2, background_weight: float = 1e-4,
              from_logits: bool = False, epsilon: float = 1e-7):
    """Per-image star loss, as StarDist trains its two outputs.

    ``BCE(p_true, p_pred) + distance_weight * L`` where ``L`` is the mean
    over rays of ``|d_true - d_pred|`` weighted by ``p_true`` and divided by
    the mean ``p_true`` (StarDist's ``norm_by_mask``), plus
    ``background_weight`` times the mean ``|d_pred|`` on background, which
    keeps unused distances from drifting. Pixels whose ``p_true`` is
    negative (padding) are ignored.

    Args:
        y_true: ``(N, H, W, 1 + R)``: object probability (``-1`` = ignore), then R distances.
        y_pred: ``(N, H, W, 1 + R)`` from a ``head="star"`` model.
        distance_weight: weight of the distance term (StarDist: 0.2).
        background_weight: weight of the background regularizer (StarDist: 1e-4).
        from_logits: the probability channel holds logits.
        epsilon: probability clipping for the BCE.

    Returns:
        ``(N,)`` tensor.

    Raises:
        ValueError: shapes that are not ``(N, H, W, 1 + R)`` with R >= 3.

    Example:
        >>> import numpy as np
        >>> t = np.zeros((1, 2, 2, 5), np.float32); t[..., 0] = 1; t[..., 1:] = 3
        >>> p = t.copy(); p[..., 0] = 0.5; p[..., 1:] = 2
        >>> round(float(star_loss(t, p)[0]), 4)     # BCE ln 2 + 0.2 * |3 - 2|
        0.8931
    """
    p_true, d_true, p_pred, d_pred = _split_star(y_true, y_pred)
    valid = ops.cast(p_true >= 0, p_pred.dtype)
    p_true = ops.clip(p_true, 0.0, 1.0)
    bce = pixel_binary_crossentropy(p_true, p_pred, from_logits, epsilon)
    ray_error = ops.mean(ops.abs(d_true - d_pred), axis=-1, keepdims=True)
    weight = p_true * valid
    axes = (1, 2, 3)
    distance = ops.sum(ray_error * weight, axis=axes) / ops.maximum(
        ops.sum(weight, axis=axes), 1e-6)
    background = ops.cast(p_true <= 0, p_pred.dtype) * valid
    regularizer = masked_pixel_mean(ops.mean(ops.abs(d_pred), axis=-1, keepdims=True),
                                    background)
    return (masked_pixel_mean(bce, valid) + distance_weight * distance
            + background_weight * regularizer)


@keras.saving.register_keras_serializable(package="nuclib")
class StarLoss(NuclibLoss):
    """Loss of the star head: BCE on the object probability plus weighted ray L1.

    See :func:`star_loss` for the formula.

    Args:
        distance_weight: weight of the distance term (StarDist: 0.2).
        background_weight: weight of the background regularizer (StarDist: 1e-4).
        from_logits: the probability channel holds logits.
        reduction: Keras reduction of the per-image values.
        name: loss name.
        dtype: computation dtype.

    Raises:
        ValueError: a negative weight.

    Example:
        >>> loss = StarLoss()
        >>> loss.get_config()["distance_weight"]
        0.2
    """

    def __init__(self, distance_weight: float = 0.2, background_weight: float = 1e-4,
                 from_logits: bool = False, reduction="sum_over_batch_size",
                 name="star_loss", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        check_non_negative(distance_weight=distance_weight, background_weight=background_weight)
        self.distance_weight = float(distance_weight)
        self.background_weight = float(background_weight)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        return star_loss(y_true, y_pred, self.distance_weight, self.background_weight,
                         self.from_logits)

    def get_config(self):
        config = super().get_config()
        config.update(distance_weight=self.distance_weight,
                      background_weight=self.background_weight, from_logits=self.from_logits)
        return config
