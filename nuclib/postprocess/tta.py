"""Test-time augmentation: the mean prediction over the 8 symmetries of the square.

Each of the 4 rotations, with and without a mirror, is predicted and mapped
back; for the star head the rays turn with the image
(``nuclib.postprocess.star.rays_from_view``).

Example:
    >>> import numpy as np
    >>> def predict(x):  # a network that sees only intensity: every view agrees
    ...     return np.repeat(x, 3, axis=-1)
    >>> x = np.random.default_rng(0).random((6, 8, 1), dtype=np.float32)
    >>> np.allclose(predict_symmetries(predict, x, "three_class"), predict(x))
    True
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["predict_symmetries"]


def predict_symmetries(predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
                       head: str) -> np.ndarray:
    """The mean of ``predict`` over the 8 rotations and mirrors of ``x``, each mapped back.

    Args:
        predict: ``(H, W, C)`` image → ``(H, W, K)`` probabilities.
        x: the prepared image.
        head: the model's head (the star head's rays are turned back too).

    Returns:
        float32 ``(H, W, K)``.
    """
    from nuclib.postprocess.star import rays_from_view

    total = None
    for turns in range(4):
        for mirror in (False, True):
            view = np.rot90(x, turns)
            view = view[:, ::-1] if mirror else view
            probs = predict(np.ascontiguousarray(view))
            if head == "star":  # the rays turn with the image
                probs = rays_from_view(probs, turns, mirror)
            probs = np.rot90(probs[:, ::-1] if mirror else probs, -turns)
            total = probs.astype(np.float32) if total is None else total + probs
    return total / 8
