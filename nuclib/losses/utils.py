"""Shared tensor helpers for the losses."""

from __future__ import annotations

from keras import ops


def to_one_hot(y_true, num_classes: int, dtype="float32"):
    """One-hot targets from integer labels; already one-hot input passes through.

    Integer labels may be ``(N, H, W)`` or ``(N, H, W, 1)``; negative labels
    become all-zero rows (ignored by the losses).
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
