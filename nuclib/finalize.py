"""Deprecated: ``nuclib.finalize`` is now ``nuclib.train.finalize`` (the training package).

Kept so that code written against the old module keeps running; it warns
once on import. Nothing inside nuclib imports it.
"""

import warnings

from nuclib.evaluation import evaluate_segmenter, read_modalities  # noqa: F401
from nuclib.train.finalize import (finalize_model, portable_recipe, previous_stage,  # noqa: F401
                                   recorded_recipe_file, summarize)

warnings.warn("nuclib.finalize is deprecated; import from nuclib.train.finalize (or nuclib.train) instead",
              DeprecationWarning, stacklevel=2)
