"""Serializable Keras losses for nucleus segmentation.

Every loss accepts integer class maps ``(N, H, W[, 1])`` (negative labels
ignored), one-hot targets or binary masks, returns one value per image, and
composes: ``a + 0.5 * b`` is a serializable :class:`CombinedLoss`.

Example:
    >>> from nuclib import losses
    >>> loss = losses.WeightedCategoricalCrossentropy(class_weights=(1, 1, 10))
    >>> loss = loss + 0.5 * losses.Dice(class_weights=(0, 1, 1))
"""

from nuclib.losses.base import CombinedLoss, NuclibLoss
from nuclib.losses.bce_dice import BCEDice, bce_dice_loss
from nuclib.losses.crossentropy import (
    WeightedBinaryCrossentropy,
    WeightedCategoricalCrossentropy,
    binary_crossentropy,
    weighted_binary_crossentropy,
    weighted_categorical_crossentropy,
)
from nuclib.losses.focal import Focal, focal_loss
from nuclib.losses.distance import ThreeClassDistanceLoss, three_class_distance_loss
from nuclib.losses.star import StarLoss, star_loss
from nuclib.losses.overlap import Dice, Jaccard, Tversky, dice_loss, jaccard_loss, tversky_loss

__all__ = [
    "NuclibLoss",
    "CombinedLoss",
    "BCEDice",
    "Dice",
    "Jaccard",
    "Tversky",
    "Focal",
    "WeightedCategoricalCrossentropy",
    "WeightedBinaryCrossentropy",
    "StarLoss",
    "ThreeClassDistanceLoss",
    "bce_dice_loss",
    "dice_loss",
    "jaccard_loss",
    "tversky_loss",
    "focal_loss",
    "binary_crossentropy",
    "weighted_categorical_crossentropy",
    "weighted_binary_crossentropy",
    "star_loss",
    "three_class_distance_loss",
]
