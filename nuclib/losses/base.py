"""The base class of nuclib's losses and their weighted sums.

Every nuclib loss derives from :class:`NuclibLoss`, which adds arithmetic:
``a + b``, ``0.5 * a``, ``a * 2`` and ``sum([a, b])`` build a
:class:`CombinedLoss`, a registered, serializable weighted sum.

Example:
    >>> from nuclib.losses import Dice, WeightedCategoricalCrossentropy
    >>> loss = WeightedCategoricalCrossentropy((1, 1, 10)) + 0.5 * Dice()
    >>> loss.weights
    [1.0, 0.5]
"""

from __future__ import annotations

import numbers

import keras
from keras import ops


def _is_factor(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@keras.saving.register_keras_serializable(package="nuclib")
class NuclibLoss(keras.losses.Loss):
    """A ``keras.losses.Loss`` that can be added to losses and scaled by numbers.

    Subclasses implement ``call(y_true, y_pred)`` returning one value per
    image, shape ``(N,)``, and ``get_config``.

    Example:
        >>> from nuclib.losses import Dice, Focal
        >>> combined = Dice() + 2 * Focal()
        >>> [type(m).__name__ for m in combined.losses], combined.weights
        (['Dice', 'Focal'], [1.0, 2.0])
    """

    def __add__(self, other):
        if not isinstance(other, keras.losses.Loss):
            return NotImplemented
        return CombinedLoss.join([(self, 1.0), (other, 1.0)])

    def __radd__(self, other):
        # sum([a, b]) starts from 0: 0 + a is a.
        if _is_factor(other) and other == 0:
            return self
        if not isinstance(other, keras.losses.Loss):
            return NotImplemented
        return CombinedLoss.join([(other, 1.0), (self, 1.0)])

    def __mul__(self, factor):
        if not _is_factor(factor):
            return NotImplemented
        return CombinedLoss.join([(self, float(factor))])

    __rmul__ = __mul__


def _per_image(values):
    # Members may return per-pixel values (e.g. Keras' own losses): average
    # them per image, which is what their "sum_over_batch_size" would do.
    values = ops.convert_to_tensor(values)
    if len(values.shape) <= 1:
        return values
    return ops.mean(values, axis=tuple(range(1, len(values.shape))))


@keras.saving.register_keras_serializable(package="nuclib")
class CombinedLoss(NuclibLoss):
    """Weighted sum of losses: ``sum_i weights[i] * losses[i](y_true, y_pred)``.

    Usually built with operators (``a + 0.5 * b``). Each member contributes
    its per-image values (per-pixel values of non-nuclib losses are averaged
    per image); the members' own ``reduction`` is not used, this loss's
    ``reduction`` applies to the sum. With the default reductions the value
    is exactly ``sum_i weights[i] * losses[i](y_true, y_pred)``.

    Args:
        losses: ``keras.losses.Loss`` instances (or their serialized configs).
        weights: one number per loss; default all 1.
        reduction: Keras reduction of the per-image sums.
        name: loss name.
        dtype: computation dtype.

    Raises:
        ValueError: no losses, a member that is not a Keras loss, or a
            ``weights`` length that differs from ``losses``.

    Example:
        >>> from nuclib.losses import BCEDice, Focal
        >>> loss = CombinedLoss([BCEDice(), Focal()], weights=[1.0, 0.5])
    """

    def __init__(self, losses, weights=None, reduction="sum_over_batch_size",
                 name="combined_loss", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        losses = [keras.saving.deserialize_keras_object(m) if isinstance(m, dict) else m
                  for m in losses]
        if not losses:
            raise ValueError("CombinedLoss needs at least one loss; got none")
        for member in losses:
            if not isinstance(member, keras.losses.Loss):
                raise ValueError(f"CombinedLoss members must be keras.losses.Loss instances; "
                                 f"got {type(member).__name__}")
        weights = [1.0] * len(losses) if weights is None else [float(w) for w in weights]
        if len(weights) != len(losses):
            raise ValueError(f"CombinedLoss got {len(losses)} losses but {len(weights)} "
                             "weights; expected one weight per loss")
        self.losses = list(losses)
        self.weights = weights

    @classmethod
    def join(cls, weighted):
        """A flat ``CombinedLoss`` from ``(loss, weight)`` pairs.

        Members that are themselves ``CombinedLoss`` are expanded, their
        weights multiplied by the pair's weight, so ``(a + b) + c`` has three
        members. The new loss has the default reduction and name.

        Args:
            weighted: iterable of ``(loss, weight)`` pairs.

        Returns:
            A new ``CombinedLoss`` (an instance of ``cls``).

        Raises:
            ValueError: as the constructor (no losses, or a member that is not
                a Keras loss).

        Example:
            >>> from nuclib.losses import Dice, Jaccard
            >>> CombinedLoss.join([(Dice() + Jaccard(), 2.0)]).weights
            [2.0, 2.0]
        """
        losses, weights = [], []
        for loss, weight in weighted:
            if isinstance(loss, CombinedLoss):
                losses.extend(loss.losses)
                weights.extend(weight * w for w in loss.weights)
            else:
                losses.append(loss)
                weights.append(weight)
        return cls(losses, weights)

    def call(self, y_true, y_pred):
        total = None
        for loss, weight in zip(self.losses, self.weights):
            term = weight * _per_image(loss.call(y_true, y_pred))
            total = term if total is None else total + term
        return total

    def get_config(self):
        config = super().get_config()
        config.update(losses=[keras.saving.serialize_keras_object(m) for m in self.losses],
                      weights=list(self.weights))
        return config
