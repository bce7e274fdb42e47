"""Shared tensor helpers for the losses: target parsing, activations, overlaps.

The target parsing here is nuclib's one reading of ``y_true``: the training
metrics (``nuclib.metrics.training``) use it too.

Targets come in three forms and every loss accepts all of them:

* integer class maps ``(N, H, W)`` or ``(N, H, W, 1)`` (what
  ``nuclib.data.make_dataset`` yields), possibly cast to float by Keras;
* one-hot maps ``(N, H, W, K)`` for a ``K``-class softmax head;
* binary masks ``(N, H, W, 1)`` (0/1 or soft values in [0, 1]) for a
  one-channel sigmoid head.

A negative label marks a pixel to ignore (padding, unlabelled regions); an
all-zero one-hot row is ignored too.

Example:
    >>> import numpy as np
    >>> one_hot, valid = class_targets(np.array([[[0, -1, 2]]]), np.zeros((1, 1, 3, 3)))
    >>> valid.numpy().tolist()
    [[[1.0, 0.0, 1.0]]]
"""

from __future__ import annotations

import math

from keras import ops


def to_one_hot(y_true, num_classes: int, dtype="float32"):
    """One-hot targets from integer labels; already one-hot input passes through.

    Kept for backward compatibility; the losses use :func:`class_targets`,
    which also checks shapes against the prediction.

    Args:
        y_true: integer labels ``(N, H, W)`` / ``(N, H, W, 1)`` or float
            one-hot ``(N, H, W, K)``.
        num_classes: ``K``.
        dtype: dtype of the result.

    Returns:
        ``(N, H, W, K)`` one-hot tensor; negative labels become all-zero rows
        (ignored by the losses).

    Example:
        >>> import numpy as np
        >>> to_one_hot(np.array([[1, -1]]), 2).numpy().tolist()
        [[[0.0, 1.0], [0.0, 0.0]]]
    """
    y_true = ops.convert_to_tensor(y_true)
    if num_classes > 1 and y_true.shape[-1] == num_classes and len(y_true.shape) >= 2 \
            and "int" not in str(y_true.dtype):
        return ops.cast(y_true, dtype)
    if y_true.shape[-1] == 1 and num_classes > 1:
        y_true = ops.squeeze(y_true, axis=-1)
    y_int = ops.cast(y_true, "int32")
    return ops.one_hot(ops.maximum(y_int, -1), num_classes, dtype=dtype) * \
        ops.cast(ops.expand_dims(y_int >= 0, -1), dtype)


def class_targets(y_true, y_pred):
    """One-hot targets and a validity mask for a ``K``-class prediction.

    The form of ``y_true`` is decided by its rank and channel count relative
    to ``y_pred``: one rank lower, or the same rank with one channel, means
    integer labels; the same rank with ``K`` channels means one-hot.

    Args:
        y_true: integer labels ``(N, H, W)`` / ``(N, H, W, 1)`` (negative =
            ignore) or one-hot ``(N, H, W, K)`` (all-zero row = ignore).
        y_pred: prediction ``(N, H, W, K)``, ``K >= 2``; only its shape and
            dtype are used.

    Returns:
        ``(one_hot, valid)``: ``(N, H, W, K)`` one-hot targets with zero rows
        at ignored pixels, and the ``(N, H, W)`` float mask of labelled
        pixels, which is 0 exactly where the row is zero. Integer labels
        ``>= K`` also give zero rows (ignored); float labels are rounded.

    Raises:
        ValueError: ``y_true`` fits neither form, e.g. a one-hot target whose
            channel count differs from ``y_pred``'s class count.

    Example:
        >>> import numpy as np
        >>> one_hot, valid = class_targets(np.array([[[[1]]]]), np.zeros((1, 1, 1, 3)))
        >>> one_hot.numpy().ravel().tolist()
        [0.0, 1.0, 0.0]
    """
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.convert_to_tensor(y_true)
    num_classes = y_pred.shape[-1]
    rank_pred, rank_true = len(y_pred.shape), len(y_true.shape)
    dtype = y_pred.dtype
    if rank_true == rank_pred and y_true.shape[-1] == num_classes:
        one_hot = ops.cast(y_true, dtype)
        return one_hot, ops.cast(ops.sum(one_hot, axis=-1) > 0, dtype)
    if rank_true == rank_pred and y_true.shape[-1] == 1:
        labels = ops.squeeze(y_true, axis=-1)
    elif rank_true == rank_pred - 1:
        labels = y_true
    else:
        raise ValueError(
            f"y_true has shape {tuple(y_true.shape)} but y_pred has shape "
            f"{tuple(y_pred.shape)} ({num_classes} classes); expected integer labels "
            f"(N, H, W) or (N, H, W, 1), or one-hot targets with {num_classes} channels")
    # Float labels (Keras may cast integer targets) are rounded, not truncated.
    labels = ops.cast(ops.round(ops.cast(labels, "float32")), "int32")
    valid = ops.cast(ops.logical_and(labels >= 0, labels < num_classes), dtype)
    one_hot = ops.one_hot(ops.maximum(labels, 0), num_classes, dtype=dtype)
    return one_hot * ops.expand_dims(valid, -1), valid


def binary_targets(y_true, y_pred):
    """Foreground targets and a validity mask for a one-channel prediction.

    Args:
        y_true: mask ``(N, H, W)`` or ``(N, H, W, 1)``: 0 background,
            1 foreground (soft values in [0, 1] allowed, values above 1 count
            as foreground), negative = ignore.
        y_pred: prediction ``(N, H, W, 1)``; only its shape and dtype are used.

    Returns:
        ``(target, valid)``, both ``(N, H, W, 1)`` floats; ``target`` is 0 at
        ignored pixels.

    Raises:
        ValueError: ``y_pred`` has more than one channel, or ``y_true`` does
            not have a matching shape.

    Example:
        >>> import numpy as np
        >>> t, valid = binary_targets(np.array([[[[1], [-1]]]]), np.zeros((1, 1, 2, 1)))
        >>> valid.numpy().ravel().tolist()
        [1.0, 0.0]
    """
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.convert_to_tensor(y_true)
    if y_pred.shape[-1] != 1:
        raise ValueError(f"y_pred has shape {tuple(y_pred.shape)}; expected one channel "
                         "(N, H, W, 1) for a binary loss")
    rank_pred, rank_true = len(y_pred.shape), len(y_true.shape)
    if rank_true == rank_pred - 1:
        y_true = ops.expand_dims(y_true, -1)
    elif not (rank_true == rank_pred and y_true.shape[-1] == 1):
        raise ValueError(f"y_true has shape {tuple(y_true.shape)} but y_pred has shape "
                         f"{tuple(y_pred.shape)}; expected a binary mask (N, H, W) or "
                         "(N, H, W, 1) with 0/1 values and negative values to ignore")
    y_true = ops.cast(y_true, y_pred.dtype)
    valid = ops.cast(y_true >= 0, y_pred.dtype)
    return ops.clip(y_true, 0.0, 1.0), valid


def targets_and_mask(y_true, y_pred):
    """``(targets, valid)`` of shape ``(N, H, W, K)`` for any head.

    One-channel predictions use :func:`binary_targets`, ``K >= 2`` use
    :func:`class_targets` (whose ``(N, H, W)`` mask gets a channel axis).

    Args:
        y_true: targets in any accepted form (see the module docstring).
        y_pred: prediction ``(N, H, W, K)``; only its shape and dtype are used.

    Returns:
        ``(targets, valid)``: ``(N, H, W, K)`` targets (0 at ignored pixels)
        and the ``(N, H, W, 1)`` float mask of labelled pixels.

    Raises:
        ValueError: targets that do not fit the prediction.

    Example:
        >>> import numpy as np
        >>> t, valid = targets_and_mask(np.array([[[1]]]), np.zeros((1, 1, 1, 1)))
        >>> tuple(valid.shape)
        (1, 1, 1, 1)
    """
    y_pred = ops.convert_to_tensor(y_pred)
    if y_pred.shape[-1] == 1:
        return binary_targets(y_true, y_pred)
    one_hot, valid = class_targets(y_true, y_pred)
    return one_hot, ops.expand_dims(valid, -1)


def probabilities(y_pred, from_logits: bool):
    """Probabilities from a head: sigmoid for one channel, softmax for several.

    Args:
        y_pred: head output ``(..., K)``.
        from_logits: whether ``y_pred`` holds logits; if False it is returned
            unchanged (as a tensor).

    Returns:
        Tensor of the same shape.

    Example:
        >>> float(probabilities(ops.zeros((1, 1)), from_logits=True)[0, 0])
        0.5
    """
    y_pred = ops.convert_to_tensor(y_pred)
    if not from_logits:
        return y_pred
    if y_pred.shape[-1] == 1:
        return ops.sigmoid(y_pred)
    return ops.softmax(y_pred, axis=-1)


def soft_confusion(y_true, y_pred, from_logits: bool = False):
    """Soft true positives, false positives and false negatives per class.

    ``tp = sum(p * t)``, ``fp = sum(p * (1 - t))``, ``fn = sum((1 - p) * t)``
    over the labelled pixels of each image.

    Args:
        y_true: targets in any accepted form (see the module docstring).
        y_pred: probabilities (or logits) ``(N, H, W, K)``, ``K >= 1``.
        from_logits: apply sigmoid (``K == 1``) or softmax (``K >= 2``) first.

    Returns:
        ``(tp, fp, fn)``, each ``(N, K)``.

    Raises:
        ValueError: targets that do not fit the prediction.

    Example:
        >>> import numpy as np
        >>> tp, fp, fn = soft_confusion(np.array([[[1, 0]]]), np.array([[[[0.5], [0.5]]]]))
        >>> [float(tp[0, 0]), float(fp[0, 0]), float(fn[0, 0])]
        [0.5, 0.5, 0.5]
    """
    y_pred = ops.convert_to_tensor(y_pred)
    target, valid = targets_and_mask(y_true, y_pred)
    prob = probabilities(y_pred, from_logits) * valid
    axes = tuple(range(1, len(y_pred.shape) - 1))
    tp = ops.sum(prob * target, axis=axes)
    fp = ops.sum(prob * (1.0 - target), axis=axes)
    fn = ops.sum((1.0 - prob) * target, axis=axes)
    return tp, fp, fn


def safe_ratio(numerator, denominator, empty_value: float = 1.0):
    """``numerator / denominator``, or ``empty_value`` where the denominator is 0.

    Used for overlap scores with ``smooth=0``: an empty target predicted as
    empty is a perfect score (1), not 0/0.

    Args:
        numerator: tensor.
        denominator: tensor of the same (or a broadcastable) shape.
        empty_value: result where ``denominator <= 0``.

    Returns:
        Tensor of elementwise ratios.

    Example:
        >>> float(safe_ratio(ops.convert_to_tensor(0.0), ops.convert_to_tensor(0.0)))
        1.0
    """
    positive = denominator > 0
    ratio = numerator / ops.where(positive, denominator, ops.ones_like(denominator))
    return ops.where(positive, ratio, empty_value * ops.ones_like(ratio))


def class_weighted_mean(per_class, class_weights):
    """Mean over the class axis of ``(N, K)`` values, optionally weighted.

    Args:
        per_class: ``(N, K)`` tensor.
        class_weights: ``None`` (plain mean) or ``K`` non-negative weights.

    Returns:
        ``(N,)`` tensor ``sum_k w_k x_k / sum_k w_k``.

    Raises:
        ValueError: ``class_weights`` does not have ``K`` entries.

    Example:
        >>> float(class_weighted_mean(ops.convert_to_tensor([[1.0, 3.0]]), (1, 3))[0])
        2.5
    """
    if class_weights is None:
        return ops.mean(per_class, axis=-1)
    num_classes = per_class.shape[-1]
    if len(class_weights) != num_classes:
        raise ValueError(f"class_weights has {len(class_weights)} entries but y_pred has "
                         f"{num_classes} classes; expected one weight per class")
    weights = ops.convert_to_tensor(class_weights, dtype=per_class.dtype)
    return ops.sum(per_class * weights, axis=-1) / ops.sum(weights)


def masked_pixel_mean(pixel_values, valid):
    """Per-image mean of pixel values over the labelled pixels (0 when none).

    Args:
        pixel_values: ``(N, H, W)`` or ``(N, H, W, 1)`` values.
        valid: mask of the same shape.

    Returns:
        ``(N,)`` tensor.

    Example:
        >>> import numpy as np
        >>> float(masked_pixel_mean(np.array([[2.0, 4.0]]), np.array([[1.0, 0.0]]))[0])
        2.0
    """
    pixel_values = ops.convert_to_tensor(pixel_values)
    valid = ops.cast(valid, pixel_values.dtype)
    axes = tuple(range(1, len(pixel_values.shape)))
    return ops.sum(pixel_values * valid, axis=axes) / ops.maximum(ops.sum(valid, axis=axes), 1.0)


def pixel_binary_crossentropy(target, y_pred, from_logits: bool = False,
                              epsilon: float = 1e-7):
    """Per-pixel ``-(t log p + (1 - t) log(1 - p))``, computed stably from logits.

    Args:
        target: targets in [0, 1], broadcastable to ``y_pred``.
        y_pred: probabilities (clipped to ``[epsilon, 1 - epsilon]``) or logits.
        from_logits: ``y_pred`` holds logits.
        epsilon: clipping of probabilities.

    Returns:
        A tensor shaped like ``y_pred``.

    Example:
        >>> import numpy as np
        >>> round(float(pixel_binary_crossentropy(np.float32(1), np.float32(0.5))), 4)
        0.6931
    """
    if from_logits:
        return ops.relu(y_pred) - y_pred * target + ops.log1p(ops.exp(-ops.abs(y_pred)))
    p = ops.clip(y_pred, epsilon, 1.0 - epsilon)
    return -(target * ops.log(p) + (1.0 - target) * ops.log(1.0 - p))


def check_class_weights(class_weights):
    """Validate constructor class weights: ``None`` or non-negative numbers, sum > 0.

    Args:
        class_weights: ``None`` or a sequence of numbers.

    Returns:
        ``None`` or a tuple of floats.

    Raises:
        ValueError: a negative or non-finite weight, all weights zero, or no weights.

    Example:
        >>> check_class_weights([1, 1, 10])
        (1.0, 1.0, 10.0)
    """
    if class_weights is None:
        return None
    weights = tuple(float(w) for w in class_weights)
    if not weights or not all(math.isfinite(w) and w >= 0 for w in weights) \
            or sum(weights) <= 0:
        raise ValueError(f"class_weights {list(weights)} must be finite and non-negative with "
                         "a positive sum, one weight per class")
    return weights


def check_non_negative(**values):
    """Raise ``ValueError`` naming the first argument that is negative.

    Args:
        **values: ``name=value`` numbers to check.

    Raises:
        ValueError: a value is negative or NaN (named in the message).

    Example:
        >>> check_non_negative(smooth=1.0, gamma=0.0)
    """
    for name, value in values.items():
        if not float(value) >= 0:
            raise ValueError(f"{name} must be >= 0; got {value!r}")
