"""Keras training metrics for segmentation heads: Dice, IoU, per-class precision and recall.

The metrics count hard pixel decisions over every batch seen since the last
``reset_state`` (so an epoch's value is pooled over all its pixels, not a
mean of batch values):

* predictions: a one-channel (binary) head is thresholded
  (``p >= threshold``, class 1 = foreground); a ``K``-channel head is
  argmaxed (three-class order: background, interior, boundary);
* targets: integer class maps ``(N, H, W)`` / ``(N, H, W, 1)`` as yielded by
  ``nuclib.data.make_dataset``, one-hot maps ``(N, H, W, K)`` or binary
  masks (values >= 0.5 are foreground); negative labels (and all-zero
  one-hot rows, and class ids the head does not have) are ignored. The
  targets are read by ``nuclib.losses.utils.targets_and_mask``, as the
  losses read them.

Each metric is registered with Keras (``"nuclib>JaccardIndex"``, ...) and
listed in ``__all__``, so a name can be looked up with
``getattr(nuclib.metrics.training, name)`` or
``keras.metrics.get({"class_name": "nuclib>" + name, "config": {...}})``.

Example:
    >>> import keras
    >>> from nuclib.metrics.training import (ClassPrecision, ClassRecall, DiceCoefficient,
    ...                                      JaccardIndex)
    >>> metrics = [DiceCoefficient(), JaccardIndex(), ClassPrecision(2), ClassRecall(2)]
    >>> # model.compile(optimizer="adam", loss=..., metrics=metrics)
"""

from __future__ import annotations

import keras
from keras import ops

from nuclib.losses.utils import probabilities, safe_ratio, targets_and_mask

__all__ = ["DiceCoefficient", "JaccardIndex", "ClassPrecision", "ClassRecall"]


def _class_maps(y_true, y_pred, threshold: float, from_logits: bool):
    """``(true_class, pred_class, valid)`` integer/float maps of shape ``(N, H, W)``.

    ``y_true`` is read by the losses' :func:`~nuclib.losses.utils.targets_and_mask`,
    so losses and metrics ignore the same pixels.
    """
    y_pred = ops.cast(ops.convert_to_tensor(y_pred), "float32")
    target, valid = targets_and_mask(y_true, y_pred)
    if y_pred.shape[-1] == 1:
        pred = probabilities(y_pred, from_logits)[..., 0] >= threshold
        true = target[..., 0] >= 0.5
    else:
        pred = ops.argmax(y_pred, axis=-1)
        true = ops.argmax(target, axis=-1)
    return ops.cast(true, "int32"), ops.cast(pred, "int32"), valid[..., 0]


def _pixel_weights(sample_weight, valid):
    """Validity mask times optional per-image ``(N,)`` or per-pixel weights."""
    if sample_weight is None:
        return valid
    weight = ops.cast(ops.convert_to_tensor(sample_weight), "float32")
    if len(weight.shape) == len(valid.shape) + 1 and weight.shape[-1] == 1:
        weight = ops.squeeze(weight, axis=-1)
    while len(weight.shape) < len(valid.shape):
        weight = ops.expand_dims(weight, -1)
    return valid * weight


class _PixelCounts(keras.metrics.Metric):
    """Accumulates (weighted) true positive, false positive and false negative pixels.

    ``class_id=None`` counts the foreground (any class but 0); otherwise the
    pixels of class ``class_id``.
    """

    def __init__(self, class_id, threshold, from_logits, name, dtype):
        super().__init__(name=name, dtype=dtype)
        if class_id is not None and (int(class_id) != class_id or class_id < 0):
            raise ValueError(f"class_id must be a non-negative integer or None; got {class_id!r}")
        if not 0.0 <= float(threshold) <= 1.0:
            raise ValueError(f"threshold must be in [0, 1]; got {threshold!r}")
        self.class_id = None if class_id is None else int(class_id)
        self.threshold = float(threshold)
        self.from_logits = bool(from_logits)
        self.true_positives = self.add_variable((), initializer="zeros", name="true_positives")
        self.false_positives = self.add_variable((), initializer="zeros",
                                                 name="false_positives")
        self.false_negatives = self.add_variable((), initializer="zeros",
                                                 name="false_negatives")

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Add one batch's counts.

        Raises:
            ValueError: ``class_id`` is not a class of ``y_pred``, or ``y_true``
                does not fit ``y_pred``.
        """
        y_pred = ops.convert_to_tensor(y_pred)
        num_classes = max(int(y_pred.shape[-1]), 2)
        if self.class_id is not None and self.class_id >= num_classes:
            raise ValueError(f"class_id {self.class_id} does not exist: y_pred has shape "
                             f"{tuple(y_pred.shape)} ({num_classes} classes)")
        true, pred, valid = _class_maps(y_true, y_pred, self.threshold, self.from_logits)
        weight = _pixel_weights(sample_weight, valid)
        if self.class_id is None:
            is_true, is_pred = true != 0, pred != 0
        else:
            is_true, is_pred = true == self.class_id, pred == self.class_id
        is_true, is_pred = ops.cast(is_true, "float32"), ops.cast(is_pred, "float32")
        self.true_positives.assign_add(ops.cast(ops.sum(weight * is_true * is_pred), self.dtype))
        self.false_positives.assign_add(
            ops.cast(ops.sum(weight * (1.0 - is_true) * is_pred), self.dtype))
        self.false_negatives.assign_add(
            ops.cast(ops.sum(weight * is_true * (1.0 - is_pred)), self.dtype))

    def reset_state(self):
        for variable in (self.true_positives, self.false_positives, self.false_negatives):
            variable.assign(ops.zeros((), dtype=variable.dtype))

    def get_config(self):
        config = super().get_config()
        config.update(class_id=self.class_id, threshold=self.threshold,
                      from_logits=self.from_logits)
        return config


@keras.saving.register_keras_serializable(package="nuclib")
class DiceCoefficient(_PixelCounts):
    """Hard Dice coefficient ``2 TP / (2 TP + FP + FN)`` pooled over batches.

    Args:
        class_id: ``None`` (default) scores the foreground: nucleus pixels of
            any class (binary head: ``p >= threshold``; three-class head:
            argmax interior or boundary) against target labels > 0. An integer
            scores that class alone (argmax == class_id vs label == class_id).
        threshold: foreground threshold of a one-channel head.
        from_logits: a one-channel head outputs logits (the threshold applies
            to the sigmoid); multi-class argmax is unaffected.
        name: metric name.
        dtype: dtype of the counts.

    Returns (``result()``):
        Dice in [0, 1]; 1 while no pixel is positive in either target or
        prediction (nothing to find, nothing found), including before the
        first batch.

    Raises:
        ValueError: a negative or non-integer ``class_id``, a threshold outside
            [0, 1]; at update, a ``class_id`` the head does not have.

    Example:
        >>> import numpy as np
        >>> m = DiceCoefficient()
        >>> m.update_state(np.array([[[1, 1, 0, -1]]]), np.array([[[[.9], [.1], [.8], [.9]]]]))
        >>> float(m.result())   # TP 1, FP 1, FN 1
        0.5
    """

    def __init__(self, class_id=None, threshold: float = 0.5, from_logits: bool = False,
                 name="dice_coefficient", dtype=None):
        super().__init__(class_id, threshold, from_logits, name, dtype)

    def result(self):
        return safe_ratio(2.0 * self.true_positives,
                          2.0 * self.true_positives + self.false_positives + self.false_negatives)


@keras.saving.register_keras_serializable(package="nuclib")
class JaccardIndex(_PixelCounts):
    """Hard Jaccard index (pixel IoU) ``TP / (TP + FP + FN)`` pooled over batches.

    It counts what :class:`DiceCoefficient` counts, with the same
    arguments, so on the same batches ``J = D / (2 - D)``.

    Args:
        class_id: ``None`` (default) for the foreground (any class but 0, or
            ``p >= threshold`` of a binary head), or the one class scored.
        threshold: foreground threshold of a one-channel head.
        from_logits: a one-channel head outputs logits.
        name: metric name.
        dtype: dtype of the counts.

    Returns (``result()``):
        IoU in [0, 1]; 1 while neither target nor prediction has a positive
        pixel, as before the first batch.

    Raises:
        ValueError: as :class:`DiceCoefficient`.

    Example:
        >>> import numpy as np
        >>> m = JaccardIndex()
        >>> m.update_state(np.array([[[1, 1, 0, -1]]]), np.array([[[[.9], [.1], [.8], [.9]]]]))
        >>> round(float(m.result()), 4)   # TP 1, FP 1, FN 1
        0.3333
    """

    def __init__(self, class_id=None, threshold: float = 0.5, from_logits: bool = False,
                 name="jaccard_index", dtype=None):
        super().__init__(class_id, threshold, from_logits, name, dtype)

    def result(self):
        return safe_ratio(self.true_positives,
                          self.true_positives + self.false_positives + self.false_negatives)


@keras.saving.register_keras_serializable(package="nuclib")
class ClassPrecision(_PixelCounts):
    """Pixel precision ``TP / (TP + FP)`` of one class, pooled over batches.

    Args:
        class_id: the class scored, e.g. 2 for boundaries of the three-class
            head (for a binary head, 1 = foreground). ``None`` scores the
            foreground (any class but 0).
        threshold: foreground threshold of a one-channel head.
        from_logits: a one-channel head outputs logits.
        name: metric name; default ``"class_<id>_precision"``.
        dtype: dtype of the counts.

    Returns (``result()``):
        Precision in [0, 1]; 0 while the class was never predicted.

    Raises:
        ValueError: as :class:`DiceCoefficient`.

    Example:
        >>> import numpy as np
        >>> m = ClassPrecision(class_id=2)
        >>> p = np.eye(3)[[[[2, 2, 1]]]]          # predicted classes 2, 2, 1
        >>> m.update_state(np.array([[[2, 0, 2]]]), p)
        >>> float(m.result())   # TP 1, FP 1
        0.5
    """

    def __init__(self, class_id, threshold: float = 0.5, from_logits: bool = False,
                 name=None, dtype=None):
        name = name or f"class_{'foreground' if class_id is None else class_id}_precision"
        super().__init__(class_id, threshold, from_logits, name, dtype)

    def result(self):
        return ops.divide_no_nan(self.true_positives, self.true_positives + self.false_positives)


@keras.saving.register_keras_serializable(package="nuclib")
class ClassRecall(_PixelCounts):
    """Pixel recall ``TP / (TP + FN)`` of one class, pooled over batches.

    Args:
        class_id: the class scored, e.g. 2 for boundaries of the three-class
            head (for a binary head, 1 = foreground). ``None`` scores the
            foreground (any class but 0).
        threshold: foreground threshold of a one-channel head.
        from_logits: a one-channel head outputs logits.
        name: metric name; default ``"class_<id>_recall"``.
        dtype: dtype of the counts.

    Returns (``result()``):
        Recall in [0, 1]; 0 while the class never occurred in the targets.

    Raises:
        ValueError: as :class:`DiceCoefficient`.

    Example:
        >>> import numpy as np
        >>> m = ClassRecall(class_id=2)
        >>> m.update_state(np.array([[[2, 0, 2]]]), np.eye(3)[[[[2, 2, 1]]]])
        >>> float(m.result())   # TP 1, FN 1
        0.5
    """

    def __init__(self, class_id, threshold: float = 0.5, from_logits: bool = False,
                 name=None, dtype=None):
        name = name or f"class_{'foreground' if class_id is None else class_id}_recall"
        super().__init__(class_id, threshold, from_logits, name, dtype)

    def result(self):
        return ops.divide_no_nan(self.true_positives, self.true_positives + self.false_negatives)
