"""Serializable Keras losses for nucleus segmentation.

Example:
    >>> from nuclib import losses
    >>> loss = losses.WeightedCategoricalCrossentropy(class_weights=(1, 1, 10))
"""

from nuclib.losses.crossentropy import (
    WeightedCategoricalCrossentropy,
    weighted_categorical_crossentropy,
)

__all__ = ["WeightedCategoricalCrossentropy", "weighted_categorical_crossentropy"]
