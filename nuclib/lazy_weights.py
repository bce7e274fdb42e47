"""Building a Keras model whose weights are loaded next, without running its initializers.

Under the JAX backend every weight initializer of a new shape compiles an
XLA kernel, so Keras alone took 10 s to build and load ``dsb-3class`` and
9 s for ``dsb-binary-mobilenet`` on a 2-core CPU, nearly all of it spent on
random values that ``load_weights`` then overwrites (TensorFlow and PyTorch
take about a second). Inside ``initializers_deferred()``,
each new weight starts as zeros copied from NumPy, and the initializer is
remembered; on leaving, every weight that nothing assigned in between gets
its initializer after all, in the order the weights were made, so the
model is what Keras alone would have built (same values under the same
seed), only faster when its weights were loaded.

Other backends, and Keras versions whose JAX variable lacks the private
method this replaces, build as usual: the context then does nothing. It is
per thread: a model built on another thread meanwhile is initialized as
usual.

``python benchmarks/load_time.py`` measures it.

Example:
    >>> import keras
    >>> from nuclib.models import unet
    >>> with initializers_deferred():
    ...     model = unet(depth=2, filters=4)
    >>> float(keras.ops.max(keras.ops.abs(model.weights[0]))) > 0  # never loaded: initialized
    True
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import numpy as np

__all__ = ["initializers_deferred"]

_pending = threading.local()  # .weights: [(variable, initializer, placeholder)] while deferring
_original = None  # JaxVariable._initialize_with_initializer, once replaced


def _replace_jax_initialization() -> bool:
    """Route JAX variables' initialization through ``_initialize``; False where Keras
    has no such method to replace (another backend or Keras version)."""
    global _original
    if _original is not None:
        return True
    try:
        from keras.src.backend.jax.core import JaxVariable
    except ImportError:
        return False
    original = getattr(JaxVariable, "_initialize_with_initializer", None)
    if original is None or not hasattr(JaxVariable, "_initialize"):
        return False

    def initialize(variable, initializer):
        weights = getattr(_pending, "weights", None)
        try:
            zeros = None if weights is None else np.zeros(variable._shape, variable._dtype)
        except TypeError:  # a dtype NumPy does not know: initialize it now
            zeros = None
        if zeros is None:
            return original(variable, initializer)
        variable._initialize(variable._convert_to_tensor(zeros))
        weights.append((variable, initializer, variable._value))

    JaxVariable._initialize_with_initializer = initialize
    _original = original
    return True


@contextmanager
def initializers_deferred():
    """Defer the initializers of the weights made inside, under JAX, to the end of the block.

    Weights assigned inside the block (``load_weights``) never run their
    initializer; the others run it on leaving, in creation order. Nested
    blocks defer to the outermost one. Elsewhere than under JAX it does nothing.

    Example:
        >>> from nuclib.models import unet
        >>> with initializers_deferred():
        ...     model = unet(depth=2, filters=4)
        ...     model.set_weights([w * 0 + 1 for w in model.get_weights()])
        >>> float(model.weights[0].numpy().min())
        1.0
    """
    import keras

    outer = getattr(_pending, "weights", None)
    if keras.backend.backend() != "jax" or outer is not None \
            or not _replace_jax_initialization():
        yield
        return
    _pending.weights = weights = []
    try:
        yield
    finally:  # also after an error: a model built inside never keeps placeholder zeros
        _pending.weights = None
        for variable, initializer, placeholder in weights:
            if variable._value is placeholder:  # nothing assigned it: as Keras would have
                _original(variable, initializer)
