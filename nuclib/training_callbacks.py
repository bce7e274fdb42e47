"""Deprecated: ``nuclib.training_callbacks`` is now ``nuclib.train.callbacks`` (the training package).

Kept so that code written against the old module keeps running; it warns
once on import. Nothing inside nuclib imports it.
"""

import warnings

from nuclib.train.callbacks import SamplePrediction  # noqa: F401

warnings.warn("nuclib.training_callbacks is deprecated; import from nuclib.train.callbacks (or nuclib.train) instead",
              DeprecationWarning, stacklevel=2)
