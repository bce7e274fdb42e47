"""Training recipes: a TOML file (or dict) read, checked and turned into Keras objects.

A recipe names the model factory and its arguments, the loss, the data
folders, cropping, augmentation, optimizer and schedule (``DEFAULTS`` lists
every key). ``load_recipe`` reads and checks it (typos are errors);
``build_model``, ``build_loss`` and ``build_optimizer`` make what it names.
``nuclib.train.train`` runs it.

Example:
    >>> recipe = load_recipe({"data": {"train": "d/train"}, "loss": {"name": "Dice"}})
    >>> recipe["optimizer"]["schedule"], type(build_loss(recipe)).__name__
    ('cosine', 'Dice')
"""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULTS: dict[str, Any] = {
    "name": "model",
    "description": "",
    "seed": 0,
    "model": {"factory": "unet", "args": {}, "input_channels": 1},
    "data": {"train": None, "val": None, "crop_size": 256, "batch_size": 8,
             "target": "three_class", "augment": "default", "normalize": [1.0, 99.8],
             "diameter": 0.0, "sampling": "image", "max_images": 0, "description": ""},
    "loss": {"name": "WeightedCategoricalCrossentropy", "args": {}},
    "optimizer": {"name": "adam", "learning_rate": 1e-3, "schedule": "cosine",
                  "plateau_patience": 5, "plateau_factor": 0.5, "min_learning_rate": 1e-5,
                  "decay_rate": 0.96, "decay_steps": 0, "clipnorm": 0.0, "clipvalue": 0.0},
    "train": {"epochs": 40, "steps_per_epoch": 100, "early_stopping_patience": 0,
              "mixed_precision": False, "fine_tune_from": None, "widen": False,
              "backbone_from": None,
              "progress": True},
    "output": {"dir": "runs/model", "sample_image": None, "sample_diameter": 0.0,
               "finalize": True},
    "postprocess": {},
}


AUGMENTS = {"default": "default_augment", "strong": "strong_augment", "none": None}

# Learning-rate schedules of ``[optimizer] schedule``.
SCHEDULES = ("cosine", "exponential", "plateau", "constant")


def load_recipe(recipe) -> dict:
    """Read a recipe (TOML path or dict), fill defaults, resolve relative paths.

    Relative data and output paths in a TOML file are relative to the file
    (for a dict: to the current directory) and are made absolute. Tables are
    merged one level deep over ``DEFAULTS``; ``[model] args``, ``[loss] args``
    and the ``[postprocess]`` table take any keys.

    Args:
        recipe: path of a TOML recipe, or a dict with the same sections.

    Returns:
        The complete recipe as a new nested dict (``name``, ``seed``,
        ``model``, ``data``, ``loss``, ``optimizer``, ``train``, ``output``,
        ``postprocess``).

    Raises:
        FileNotFoundError: the recipe file does not exist.
        ValueError: unknown sections or keys (typos are errors, not ignored),
            a section that is not a table, or no ``[data] train`` folder.

    Example:
        >>> r = load_recipe({"name": "x", "data": {"train": "d/train"}})
        >>> r["data"]["crop_size"]
        256
    """
    base = Path.cwd()
    if isinstance(recipe, (str, Path)):
        path = Path(recipe)
        if not path.is_file():
            raise FileNotFoundError(f"recipe not found: {path}")
        with open(path, "rb") as fh:
            user = tomllib.load(fh)
        base = path.resolve().parent
    else:
        user = copy.deepcopy(dict(recipe))
    merged = copy.deepcopy(DEFAULTS)
    for key, value in user.items():
        if key not in merged:
            raise ValueError(f"unknown recipe section {key!r}; expected one of {sorted(merged)}")
        if isinstance(merged[key], dict):
            if not isinstance(value, dict):
                raise ValueError(f"recipe section {key!r} must be a table")
            unknown = set(value) - set(merged[key]) - ({"args"} if key in ("model", "loss") else set())
            if unknown and key != "postprocess":
                raise ValueError(f"unknown keys {sorted(unknown)} in recipe section [{key}]; "
                                 f"expected some of {sorted(merged[key])}")
            merged[key].update(value)
        else:
            merged[key] = value
    for section, key in (("data", "train"), ("data", "val"), ("output", "dir"),
                         ("output", "sample_image"), ("train", "fine_tune_from"),
                         ("train", "backbone_from")):
        value = merged[section][key]
        if value and not Path(value).is_absolute():
            resolved = (base / value).resolve()
            # A model to start from may also be a zoo name or ``hf://`` URL, not a path.
            if (key not in ("fine_tune_from", "backbone_from") or resolved.exists()
                    or looks_like_a_file(value)):
                merged[section][key] = str(resolved)
    from nuclib.data.pipeline import SAMPLING_MODES

    if merged["data"]["sampling"] not in SAMPLING_MODES:
        raise ValueError(f"unknown [data] sampling {merged['data']['sampling']!r}; expected "
                         f"one of {SAMPLING_MODES}")
    if merged["data"]["augment"] not in AUGMENTS:
        raise ValueError(f"unknown [data] augment {merged['data']['augment']!r}; expected one "
                         f"of {sorted(AUGMENTS)}")
    if not merged["data"]["train"]:
        raise ValueError("recipe has no [data] train folder")
    _check_postprocess(merged)
    _check_optimizer(merged["optimizer"])
    if not isinstance(merged["train"]["widen"], bool):
        raise ValueError(f"[train] widen must be true or false, got {merged['train']['widen']!r}")
    if merged["train"]["backbone_from"] and merged["train"]["fine_tune_from"]:
        raise ValueError("[train] sets both fine_tune_from (the whole model) and backbone_from "
                         "(all but the head); expected one of them")
    if merged["train"]["widen"] and not merged["train"]["fine_tune_from"]:
        raise ValueError("[train] widen = true needs [train] fine_tune_from: the narrower "
                         "trained model to widen into [model]")
    sample_diameter = merged["output"]["sample_diameter"]
    if not (isinstance(sample_diameter, (int, float)) and not isinstance(sample_diameter, bool)
            and sample_diameter >= 0):
        raise ValueError(f"[output] sample_diameter must be the sample image's median nucleus "
                         f"diameter in pixels (or 0 for unknown), got {sample_diameter!r}")
    return merged


def _check_optimizer(opt: dict) -> None:
    """Bad ``[optimizer]`` values fail at load time, not after the data has loaded."""
    if opt["schedule"] not in SCHEDULES:
        raise ValueError(f"unknown [optimizer] schedule {opt['schedule']!r}; expected one of "
                         f"{SCHEDULES}")
    for key in ("learning_rate", "min_learning_rate", "decay_rate", "decay_steps",
                "clipnorm", "clipvalue"):
        value = opt[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"[optimizer] {key} must be a number >= 0, got {value!r}")
    if opt["learning_rate"] <= 0:
        raise ValueError(f"[optimizer] learning_rate must be > 0, got {opt['learning_rate']!r}")
    if opt["clipnorm"] and opt["clipvalue"]:
        raise ValueError("[optimizer] sets both clipnorm and clipvalue; Keras clips one way: "
                         "expected one of them")
    if not 0 < opt["decay_rate"] <= 1:
        raise ValueError(f"[optimizer] decay_rate must be in (0, 1], got {opt['decay_rate']!r}")


def _check_postprocess(recipe: dict) -> None:
    """Bad ``[postprocess]`` keys or values fail at load time, not after hours of training."""
    from nuclib.postprocess.thresholds import KINDS, check_postprocess

    kind = recipe["data"]["target"]
    if kind not in KINDS or not recipe["postprocess"]:
        return
    try:
        check_postprocess(kind, recipe["postprocess"])
    except ValueError as err:
        raise ValueError(f"recipe section [postprocess]: {err}") from None


def build_model(recipe: dict):
    """Instantiate the recipe's model factory with its arguments.

    ``input_shape`` (``(None, None, input_channels)``), ``head`` (the
    ``[data] target``) and ``name`` (the recipe name with ``-`` replaced by
    ``_``) are passed unless ``[model] args`` sets them.

    Args:
        recipe: a recipe as returned by ``load_recipe``.

    Returns:
        The ``keras.Model`` built by ``nuclib.models.FACTORIES[factory]``.

    Raises:
        ValueError: the factory is not in ``nuclib.models.FACTORIES``.

    Example:
        >>> recipe = load_recipe({"name": "tiny", "data": {"train": "d/train"},
        ...                       "model": {"args": {"depth": 2, "filters": 4}}})
        >>> build_model(recipe).name
        'tiny'
    """
    from nuclib import models

    factory = recipe["model"]["factory"]
    if factory not in models.FACTORIES:
        raise ValueError(f"unknown model factory {factory!r}; expected one of "
                         f"{sorted(models.FACTORIES)}")
    args = dict(recipe["model"]["args"])
    args.setdefault("input_shape", (None, None, recipe["model"]["input_channels"]))
    args.setdefault("head", recipe["data"]["target"])
    args.setdefault("name", recipe["name"].replace("-", "_"))
    return models.FACTORIES[factory](**args)


def build_loss(recipe: dict):
    """Instantiate the recipe's loss from ``nuclib.losses`` by class name.

    Args:
        recipe: a recipe as returned by ``load_recipe``; ``[loss] name`` is
            looked up in ``nuclib.losses`` and called with ``[loss] args``.

    Returns:
        The loss object.

    Raises:
        ValueError: not the name of a loss class in ``nuclib.losses``.

    Example:
        >>> recipe = load_recipe({"data": {"train": "d/train"}, "loss": {"name": "Dice"}})
        >>> type(build_loss(recipe)).__name__
        'Dice'
    """
    import keras

    from nuclib import losses

    # Only concrete loss classes: not the functional twins, not the abstract bases.
    known = sorted(n for n in losses.__all__
                   if isinstance(getattr(losses, n), type)
                   and issubclass(getattr(losses, n), keras.losses.Loss)
                   and n not in ("NuclibLoss", "CombinedLoss"))
    name = recipe["loss"]["name"]
    if name not in known:
        raise ValueError(f"unknown loss {name!r}; expected one of {known}")
    return getattr(losses, name)(**recipe["loss"].get("args", {}))


def looks_like_a_file(value: str) -> bool:
    """A ``fine_tune_from`` that can only be a file: a ``.keras`` name or one with a folder.

    Example:
        >>> looks_like_a_file("runs/a/best.keras"), looks_like_a_file("dsb-3class")
        (True, False)
    """
    return not value.startswith("hf://") and (value.endswith(".keras") or "/" in value
                                              or os.sep in value)


def build_optimizer(recipe: dict):
    """The recipe's optimizer, with its learning-rate schedule and gradient clipping.

    ``[optimizer] schedule``: ``"cosine"`` decays from ``learning_rate`` to
    ``min_learning_rate`` over all ``epochs * steps_per_epoch`` steps;
    ``"exponential"`` multiplies it by ``decay_rate`` every ``decay_steps``
    steps (0: one epoch's steps), smoothly; ``"plateau"`` and ``"constant"``
    start at ``learning_rate`` (``train`` adds ReduceLROnPlateau for
    ``"plateau"``). ``clipnorm`` or ``clipvalue`` > 0 (one of them) clips
    each gradient's norm or values.

    Args:
        recipe: a recipe as returned by ``load_recipe``; ``[optimizer] name``
            is any Keras optimizer identifier (``"adam"``, ``"sgd"``, ...).

    Returns:
        A ``keras.optimizers.Optimizer``.

    Raises:
        ValueError: an unknown optimizer name.

    Example:
        >>> recipe = load_recipe({"data": {"train": "d/train"},
        ...                       "optimizer": {"schedule": "exponential", "clipnorm": 1.0}})
        >>> optimizer = build_optimizer(recipe)
        >>> type(optimizer).__name__, optimizer.clipnorm
        ('Adam', 1.0)
    """
    import keras

    opt, t = recipe["optimizer"], recipe["train"]
    total_steps = t["epochs"] * t["steps_per_epoch"]
    rate = opt["learning_rate"]
    if opt["schedule"] == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(
            rate, decay_steps=total_steps, alpha=opt["min_learning_rate"] / rate)
    elif opt["schedule"] == "exponential":
        rate = keras.optimizers.schedules.ExponentialDecay(
            rate, decay_steps=opt["decay_steps"] or t["steps_per_epoch"],
            decay_rate=opt["decay_rate"])
    clipping = {key: float(opt[key]) for key in ("clipnorm", "clipvalue") if opt[key]}
    try:
        return keras.optimizers.get({"class_name": opt["name"],
                                     "config": {"learning_rate": rate, **clipping}})
    except ValueError as err:
        if "Could not interpret" not in str(err):
            raise
        raise ValueError(f"unknown [optimizer] name {opt['name']!r}; expected a Keras "
                         "optimizer such as 'adam', 'adamw', 'sgd' or 'rmsprop'") from None
