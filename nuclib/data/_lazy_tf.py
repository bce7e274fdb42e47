"""TensorFlow, imported on first use.

The augmentation layers' TensorFlow kernels and the ``tf.data`` pipelines
need TensorFlow; everything else in ``nuclib.data`` must import (and the
PyDataset loader run) on a machine without it, e.g. under
``KERAS_BACKEND=jax`` or ``torch``. Modules therefore write
``from nuclib.data._lazy_tf import tf`` and TensorFlow is imported the first
time an attribute of ``tf`` is read.
"""

from __future__ import annotations

import importlib


class _LazyTensorFlow:
    """A stand-in for the ``tensorflow`` module that imports it on first attribute access."""

    _module = None

    def __getattr__(self, name):
        module = type(self)._module
        if module is None:
            try:
                module = importlib.import_module("tensorflow")
            except ImportError as err:
                raise ImportError(
                    "this part of nuclib.data needs TensorFlow (tf.data pipelines and the "
                    "TensorFlow kernels of nuclib's own augmentation layers); install it, or "
                    "use make_dataset(..., loader='pydataset') with Keras' augmentation "
                    "layers (e.g. default_augment()) under KERAS_BACKEND=jax or torch") from err
            type(self)._module = module
        return getattr(module, name)


tf = _LazyTensorFlow()
