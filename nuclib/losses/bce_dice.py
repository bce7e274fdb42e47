"""Binary cross-entropy plus soft Dice, the usual loss for binary nucleus masks."""

from __future__ import annotations

import keras

from nuclib.losses.base import NuclibLoss
from nuclib.losses.crossentropy import binary_crossentropy
from nuclib.losses.overlap import dice_loss
from nuclib.losses.utils import check_non_negative


def bce_dice_loss(y_true, y_pred, smooth: float = 100.0, bce_weight: float = 1.0,
                  dice_weight: float = 1.0, from_logits: bool = False):
    """``bce_weight * BCE + dice_weight * (1 - Dice)`` per image, for a binary head.

    BCE is averaged over the labelled pixels; Dice is the smoothed soft Dice
    ``(2 sum(p t) + smooth) / (sum(p) + sum(t) + smooth)`` over them (so an
    empty target predicted as empty has Dice loss 0).

    Args:
        y_true: mask ``(N, H, W)`` / ``(N, H, W, 1)``, 0/1, negative = ignore.
        y_pred: probabilities (or logits) ``(N, H, W, 1)``.
        smooth: Dice smoothing; 100 suits nucleus masks of a few thousand pixels.
        bce_weight: weight of the cross-entropy term.
        dice_weight: weight of the Dice term.
        from_logits: ``y_pred`` holds logits (sigmoid is applied).

    Returns:
        ``(N,)`` tensor.

    Raises:
        ValueError: ``y_pred`` has more than one channel (use ``Dice`` +
            ``WeightedCategoricalCrossentropy`` for the three-class head) or
            shapes do not fit.

    Example:
        >>> import numpy as np
        >>> y = np.array([[[1, 0]]])
        >>> p = np.array([[[[0.5], [0.5]]]])
        >>> round(float(bce_dice_loss(y, p, smooth=0)[0]), 6)   # ln 2 + (1 - 1/2)
        1.193147
    """
    y_pred = keras.ops.convert_to_tensor(y_pred)
    if y_pred.shape[-1] != 1:
        raise ValueError(f"BCEDice expects a one-channel (binary) prediction (N, H, W, 1); "
                         f"got shape {tuple(y_pred.shape)}. For a multi-class head use "
                         "Dice + WeightedCategoricalCrossentropy")
    bce = binary_crossentropy(y_true, y_pred, from_logits=from_logits)
    dice = dice_loss(y_true, y_pred, smooth=smooth, from_logits=from_logits)
    return bce_weight * bce + dice_weight * dice


@keras.saving.register_keras_serializable(package="nuclib")
class BCEDice(NuclibLoss):
    """Binary cross-entropy + soft Dice for a binary head; see :func:`bce_dice_loss`.

    Args:
        smooth: Dice smoothing (100 by default, common for nuclei).
        bce_weight: weight of the cross-entropy term.
        dice_weight: weight of the Dice term.
        from_logits: predictions are logits.
        reduction: Keras reduction of the per-image values.
        name: loss name.
        dtype: computation dtype.

    Raises:
        ValueError: a negative ``smooth``, ``bce_weight`` or ``dice_weight``.

    Example:
        >>> loss = BCEDice(smooth=100.0, from_logits=True)
    """

    def __init__(self, smooth: float = 100.0, bce_weight: float = 1.0,
                 dice_weight: float = 1.0, from_logits: bool = False,
                 reduction="sum_over_batch_size", name="bce_dice", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        check_non_negative(smooth=smooth, bce_weight=bce_weight, dice_weight=dice_weight)
        self.smooth = float(smooth)
        self.bce_weight = float(bce_weight)
        self.dice_weight = float(dice_weight)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        return bce_dice_loss(y_true, y_pred, self.smooth, self.bce_weight, self.dice_weight,
                             self.from_logits)

    def get_config(self):
        config = super().get_config()
        config.update(smooth=self.smooth, bce_weight=self.bce_weight,
                      dice_weight=self.dice_weight, from_logits=self.from_logits)
        return config
