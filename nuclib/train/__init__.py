"""Training: a recipe (``nuclib.recipe``) becomes a trained, evaluated model directory.

The package sits on top of nuclib; nothing else imports it.

- ``fit``: ``train`` reads a recipe, builds the data, fits the model and
  keeps the checkpoint with the best validation loss;
- ``callbacks``: ``SamplePrediction``, the per-epoch picture of what the
  model predicts;
- ``finalize``: ``finalize_model`` turns the checkpoint into a model
  directory (float32 network, thresholds tuned on the validation split,
  scores, the training record and a model card); the one place a recipe
  becomes Segmenter settings.

The recipe's own names (``load_recipe``, ``build_model``, ``build_loss``,
``build_optimizer``, ``DEFAULTS``, ``SCHEDULES``) are importable from here too.

Example:
    >>> from nuclib.train import train
    >>> result = train("recipes/dsb-3class.toml")   # doctest: +SKIP

or from a shell: ``nuclib train recipes/dsb-3class.toml``.
"""

from nuclib.recipe import (AUGMENTS, SCHEDULES, Recipe, build_loss, build_model, build_optimizer,
                           load_recipe, looks_like_a_file)
from nuclib.train.callbacks import SamplePrediction
from nuclib.train.finalize import finalize_model, portable_recipe, previous_stage
from nuclib.train.fit import (accelerator, bfloat16_is_native, load_initial_model,
                              load_training_data, train, training_hardware)

__all__ = ["train", "finalize_model", "SamplePrediction", "load_training_data",
           "load_initial_model", "training_hardware", "bfloat16_is_native", "accelerator",
           "previous_stage", "portable_recipe", "Recipe", "load_recipe", "build_model",
           "build_loss", "build_optimizer", "looks_like_a_file", "AUGMENTS", "DEFAULTS",
           "SCHEDULES"]


def __getattr__(name: str):
    # ``DEFAULTS`` is built on use (``nuclib.recipe.DEFAULTS``): checking a recipe's
    # tables imports the data pipeline, which importing this package should not.
    if name == "DEFAULTS":
        from nuclib.recipe import DEFAULTS

        return DEFAULTS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
