"""Loss of the ``"three_class_distance"`` head: class cross-entropy plus distance L1.

Example:
    >>> from nuclib.losses import ThreeClassDistanceLoss
    >>> loss = ThreeClassDistanceLoss(class_weights=(1, 1, 5), distance_weight=1.0)
"""

from __future__ import annotations

import keras
from keras import ops

from nuclib.losses.base import NuclibLoss
from nuclib.losses.crossentropy import weighted_categorical_crossentropy
from nuclib.losses.utils import check_class_weights, check_non_negative, masked_pixel_mean


def three_class_distance_loss(y_true, y_pred, class_weights=(1.0, 1.0, 5.0),
                              distance_weight: float = 1.0, from_logits: bool = False):
    """Per-image ``WCCE(classes) + distance_weight * L1(distance)`` over labelled pixels.

    Args:
        y_true: ``(N, H, W, 2)``: class (0 background, 1 interior, 2 boundary,
            negative = ignore), then the normalized distance to the edge.
        y_pred: ``(N, H, W, 4)``: the three class probabilities, then the distance.
        class_weights: weights of (background, interior, boundary).
        distance_weight: weight of the distance term.
        from_logits: ``y_pred`` holds class logits and the distance's logit.

    Returns:
        ``(N,)`` tensor.

    Raises:
        ValueError: shapes other than ``(N, H, W, 2)`` and ``(N, H, W, 4)``.

    Example:
        >>> import numpy as np
        >>> t = np.array([[[[1.0, 0.5]]]]); p = np.array([[[[0.0, 1.0, 0.0, 0.25]]]])
        >>> round(float(three_class_distance_loss(t, p)[0]), 4)   # -ln 1 + |0.5 - 0.25|
        0.25
    """
    y_true = ops.convert_to_tensor(y_true)
    y_pred = ops.convert_to_tensor(y_pred)
    if y_true.shape[-1] != 2 or y_pred.shape[-1] != 4:
        raise ValueError(f"y_true has shape {tuple(y_true.shape)} and y_pred "
                         f"{tuple(y_pred.shape)}; expected (N, H, W, 2) targets (class, "
                         "distance) and (N, H, W, 4) predictions (3 classes, distance)")
    classes = ops.cast(ops.round(y_true[..., :1]), "int32")
    cce = weighted_categorical_crossentropy(classes, y_pred[..., :3], class_weights,
                                            from_logits)
    distance = y_pred[..., 3:]
    if from_logits:
        distance = ops.sigmoid(distance)
    valid = ops.cast(y_true[..., :1] >= 0, distance.dtype)
    error = ops.abs(ops.cast(y_true[..., 1:], distance.dtype) - distance)
    return cce + distance_weight * masked_pixel_mean(error, valid)


@keras.saving.register_keras_serializable(package="nuclib")
class ThreeClassDistanceLoss(NuclibLoss):
    """Class-weighted cross-entropy on the classes plus L1 on the normalized distance.

    See :func:`three_class_distance_loss`.

    Args:
        class_weights: weights of (background, interior, boundary).
        distance_weight: weight of the distance term.
        from_logits: predictions are logits.
        reduction: Keras reduction of the per-image values.
        name: loss name.
        dtype: computation dtype.

    Raises:
        ValueError: bad class weights or a negative distance weight.

    Example:
        >>> ThreeClassDistanceLoss().get_config()["distance_weight"]
        1.0
    """

    def __init__(self, class_weights=(1.0, 1.0, 5.0), distance_weight: float = 1.0,
                 from_logits: bool = False, reduction="sum_over_batch_size",
                 name="three_class_distance_loss", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.class_weights = tuple(check_class_weights(class_weights))
        check_non_negative(distance_weight=distance_weight)
        self.distance_weight = float(distance_weight)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        return three_class_distance_loss(y_true, y_pred, self.class_weights,
                                         self.distance_weight, self.from_logits)

    def get_config(self):
        config = super().get_config()
        config.update(class_weights=list(self.class_weights),
                      distance_weight=self.distance_weight, from_logits=self.from_logits)
        return config
