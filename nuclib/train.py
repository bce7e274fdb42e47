"""The training recipe: from a TOML file (or dict) to a trained, evaluated model.

A recipe names the model factory and its arguments, the loss, the data
folders, cropping, augmentation, optimizer and schedule. ``train`` fits the
model, keeps the checkpoint with the best validation loss, and (unless
``finalize = false``) optimizes post-processing thresholds on the
validation split and writes a complete model directory (Keras Hub layout
plus ``nuclib.json`` with the validation scores).

Example:
    >>> from nuclib.train import train
    >>> result = train("recipes/dsb-3class.toml")   # doctest: +SKIP

or from a shell: ``nuclib train recipes/dsb-3class.toml``.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import time
import warnings
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
             "diameter": 0.0, "sampling": "image", "max_images": 0},
    "loss": {"name": "WeightedCategoricalCrossentropy", "args": {}},
    "optimizer": {"name": "adam", "learning_rate": 1e-3, "schedule": "cosine",
                  "plateau_patience": 5, "plateau_factor": 0.5, "min_learning_rate": 1e-5},
    "train": {"epochs": 40, "steps_per_epoch": 100, "early_stopping_patience": 0,
              "mixed_precision": False, "fine_tune_from": None, "widen": False,
              "backbone_from": None,
              "progress": True},
    "output": {"dir": "runs/model", "sample_image": None, "sample_diameter": 0.0,
               "finalize": True},
    "postprocess": {},
}


AUGMENTS = {"default": "default_augment", "strong": "strong_augment", "none": None}


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
                    or _looks_like_a_path(value)):
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


def _sample_zoom(recipe: dict) -> float:
    """How much to zoom the sample image so the model sees it at its training scale."""
    from nuclib.data.scale import scale_for_diameter

    target, sample = recipe["data"]["diameter"], recipe["output"]["sample_diameter"]
    return scale_for_diameter(sample, target) if target and sample else 1.0


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


def load_training_data(pairs, recipe: dict, *, progress: bool = True):
    """Read and normalize every pair; zoom each to the recipe's nucleus diameter.

    With ``[data] diameter`` set, every image (and its labels) is zoomed so
    that its median nucleus is that many pixels across (see
    ``nuclib.data.scale``); images without nuclei keep their size.

    Args:
        pairs: (image_path, label_path) pairs.
        recipe: a recipe as returned by ``load_recipe``.
        progress: show a progress bar while reading.

    Returns:
        ``(images, labels)`` lists, ready for ``make_dataset(data=...)``.

    Example:
        >>> recipe = load_recipe({"data": {"train": "d/train", "diameter": 20}})
        >>> images, labels = load_training_data(folder_pairs("d/train"), recipe)  # doctest: +SKIP
    """
    from nuclib import data as nd
    from nuclib.data.scale import median_diameter, rescale_pair, scale_for_diameter

    d = recipe["data"]
    channels = recipe["model"]["input_channels"]
    low, high = d["normalize"]
    images, labels = nd.load_pairs(
        pairs, preprocess=lambda im: nd.prepare_image(im, channels=channels, low=low, high=high),
        progress=progress)
    if d["diameter"]:
        for i, lab in enumerate(labels):
            factor = scale_for_diameter(median_diameter(lab), d["diameter"])
            if factor != 1.0:
                images[i], labels[i] = rescale_pair(images[i], lab, factor)
    return images, labels


def _looks_like_a_path(value: str) -> bool:
    """A ``fine_tune_from`` that can only be a file: a ``.keras`` name or one with a folder."""
    return not value.startswith("hf://") and (value.endswith(".keras") or "/" in value
                                              or os.sep in value)


def load_initial_model(source: str, key: str = "fine_tune_from"):
    """The model to start from: a ``.keras`` file, a model directory or a zoo name.

    Args:
        source: the ``.keras`` path, model directory or zoo name.
        key: the recipe key it came from, for the error message.

    Returns:
        The loaded ``keras.Model``.

    Raises:
        FileNotFoundError: a path that does not exist.

    Example:
        >>> model = load_initial_model("dsb-3class")   # doctest: +SKIP
    """
    import keras

    if _looks_like_a_path(str(source)) and not Path(source).exists():
        raise FileNotFoundError(f"[train] {key} {str(source)!r} does not exist; "
                                "expected a .keras checkpoint, a model directory or a zoo name")
    if str(source).endswith(".keras"):
        return keras.saving.load_model(source, compile=False, safe_mode=True)
    from nuclib.zoo import load_pretrained

    return load_pretrained(source).model


def _rebuilt_under_current_policy(initial, recipe: dict):
    """The recipe's model, built under the global dtype policy, with ``initial``'s weights."""
    model = build_model(recipe)
    try:
        model.set_weights(initial.get_weights())
    except ValueError as err:
        raise ValueError(
            f"[train] fine_tune_from {recipe['train']['fine_tune_from']!r} does not match the "
            f"recipe's [model] ({recipe['model']['factory']} {recipe['model']['args']}); with "
            f"mixed_precision the model is rebuilt from [model], so give the same "
            f"architecture ({err})") from err
    return model


def _with_backbone(initial, recipe: dict):
    """The recipe's model with ``initial``'s encoder and decoder weights and a fresh head."""
    from nuclib.models import copy_backbone

    model = build_model(recipe)
    try:
        copy_backbone(initial, model)
    except ValueError as err:
        raise ValueError(
            f"[train] backbone_from {recipe['train']['backbone_from']!r} does not match the "
            f"recipe's [model] ({recipe['model']['factory']} {recipe['model']['args']}) "
            f"outside the head: {err}") from err
    return model


def _widened(initial, recipe: dict):
    """The recipe's (wider) model computing what ``initial`` computes (Net2WiderNet)."""
    from nuclib.models import widen

    model = build_model(recipe)
    try:
        return widen(initial, model, seed=recipe["seed"])
    except ValueError as err:
        raise ValueError(
            f"[train] widen: fine_tune_from {recipe['train']['fine_tune_from']!r} cannot be "
            f"widened into the recipe's [model] ({recipe['model']['factory']} "
            f"{recipe['model']['args']}): {err}") from err


def _schedule(recipe: dict, total_steps: int):
    import keras

    opt = recipe["optimizer"]
    if opt["schedule"] == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            opt["learning_rate"], decay_steps=total_steps,
            alpha=opt["min_learning_rate"] / opt["learning_rate"])
    if opt["schedule"] in ("plateau", "constant"):
        return opt["learning_rate"]
    raise ValueError(f"unknown schedule {opt['schedule']!r}; expected 'cosine', 'plateau' "
                     "or 'constant'")


def bfloat16_is_native(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> bool:
    """Whether mixed bfloat16 training pays off here: a GPU, or a CPU with AVX512-BF16 or AMX.

    Elsewhere bfloat16 matrix products are emulated and run many times slower
    than float32, so ``train`` falls back to float32 there.

    Args:
        cpuinfo: the Linux CPU description to read the instruction-set flags from
            (a missing file, as on macOS or Windows, counts as no native bfloat16).

    Example:
        >>> bfloat16_is_native("/nonexistent") in (True, False)
        True
    """
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if tf.config.list_physical_devices("GPU"):
            return True
    try:
        flags = set(Path(cpuinfo).read_text().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def train(recipe, *, output_dir=None, finalize: bool | None = None) -> dict:
    """Train a model from a recipe; return paths and the training history.

    Args:
        recipe: path to a TOML recipe, or a dict with the same sections.
        output_dir: overrides ``[output] dir``.
        finalize: overrides ``[output] finalize`` (optimize thresholds,
            evaluate on validation, write the model directory).

    Returns:
        dict with ``run_dir``, ``checkpoint`` (``best.keras`` in the run
        folder), ``history`` (Keras history dict), ``train_seconds`` and,
        when finalized, ``model_dir`` and ``scores``. Finalizing needs a
        ``[data] val`` folder and is skipped without one.

    Raises:
        ValueError: an invalid recipe.

    Example:
        >>> result = train("recipes/dsb-3class.toml", output_dir="runs/try", finalize=False)  # doctest: +SKIP
        >>> sorted(result)                                                                # doctest: +SKIP
        ['checkpoint', 'history', 'run_dir', 'train_seconds']
    """
    import keras

    from nuclib import data as nd
    from nuclib.training_callbacks import SamplePrediction

    recipe = load_recipe(recipe)
    if output_dir is not None:
        recipe["output"]["dir"] = str(Path(output_dir).resolve())
    run_dir = Path(recipe["output"]["dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    if recipe["train"]["mixed_precision"] and not bfloat16_is_native():
        # Emulated bfloat16 is ~25x slower than float32 on an AVX2-only CPU.
        warnings.warn("mixed_precision = true, but this machine computes bfloat16 only by "
                      "emulation (no GPU, no AVX512-BF16 or AMX CPU): training in float32, "
                      "which is faster here", stacklevel=2)
        recipe["train"]["mixed_precision"] = False
    (run_dir / "recipe.json").write_text(json.dumps(recipe, indent=2))
    keras.utils.set_random_seed(recipe["seed"])
    if recipe["train"]["mixed_precision"]:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")

    d = recipe["data"]
    channels = recipe["model"]["input_channels"]
    low, high = d["normalize"]
    prep = (lambda im: nd.prepare_image(im, channels=channels, low=low, high=high))
    train_pairs = nd.folder_pairs(d["train"])
    if d["max_images"]:
        train_pairs = train_pairs[: d["max_images"]]
    progress = recipe["train"]["progress"]
    augment = AUGMENTS[d["augment"]]
    n_rays = recipe["model"]["args"].get("n_rays", 32)
    train_ds = nd.make_dataset(
        [], data=load_training_data(train_pairs, recipe, progress=progress),
        crop_size=d["crop_size"], batch_size=d["batch_size"], target=d["target"],
        seed=recipe["seed"], sampling=d["sampling"], n_rays=n_rays,
        augment=getattr(nd, augment)(seed=recipe["seed"]) if augment else None)
    val_ds = None
    if d["val"]:
        val_pairs = nd.folder_pairs(d["val"])
        if d["max_images"]:
            val_pairs = val_pairs[: d["max_images"]]
        val_ds = nd.make_dataset([], data=load_training_data(val_pairs, recipe,
                                                                   progress=progress),
                                 crop_size=d["crop_size"], batch_size=d["batch_size"],
                                 target=d["target"], shuffle=False, repeat=False, seed=1,
                                 n_rays=n_rays)

    t = recipe["train"]
    if t["fine_tune_from"] and t["widen"]:
        model = _widened(load_initial_model(t["fine_tune_from"]), recipe)
    elif t["fine_tune_from"]:
        model = load_initial_model(t["fine_tune_from"])
        if t["mixed_precision"]:
            # Saved layers carry their float32 dtype policy, which would
            # override the global mixed policy: rebuild, then copy weights.
            model = _rebuilt_under_current_policy(model, recipe)
    elif t["backbone_from"]:
        model = _with_backbone(load_initial_model(t["backbone_from"], "backbone_from"), recipe)
    else:
        model = build_model(recipe)
    total_steps = t["epochs"] * t["steps_per_epoch"]
    optimizer = keras.optimizers.get({"class_name": recipe["optimizer"]["name"],
                                      "config": {"learning_rate": 1e-3}})
    optimizer = optimizer.__class__(learning_rate=_schedule(recipe, total_steps))
    model.compile(optimizer=optimizer, loss=build_loss(recipe))

    monitor = "val_loss" if val_ds is not None else "loss"
    checkpoint = run_dir / "best.keras"
    callbacks = [
        keras.callbacks.ModelCheckpoint(checkpoint, monitor=monitor, save_best_only=True),
        keras.callbacks.CSVLogger(run_dir / "log.csv"),
    ]
    if recipe["optimizer"]["schedule"] == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor=monitor, factor=recipe["optimizer"]["plateau_factor"],
            patience=recipe["optimizer"]["plateau_patience"],
            min_lr=recipe["optimizer"]["min_learning_rate"]))
    if t["early_stopping_patience"]:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=monitor, patience=t["early_stopping_patience"], restore_best_weights=True))
    if recipe["output"]["sample_image"]:
        callbacks.append(SamplePrediction(recipe["output"]["sample_image"], run_dir / "epochs",
                                          preprocess=prep, zoom=_sample_zoom(recipe)))
    started = time.time()
    # shuffle=False: the dataset shuffles itself; Keras would only warn that it ignores it.
    history = model.fit(train_ds, epochs=t["epochs"], steps_per_epoch=t["steps_per_epoch"],
                        validation_data=val_ds, callbacks=callbacks, shuffle=False,
                        verbose=1 if progress else 2)
    result = {"run_dir": str(run_dir), "checkpoint": str(checkpoint),
              "history": history.history, "train_seconds": time.time() - started}
    (run_dir / "history.json").write_text(json.dumps(result, indent=2, default=float))
    do_finalize = recipe["output"]["finalize"] if finalize is None else finalize
    if do_finalize and d["val"]:
        from nuclib.zoo.export import finalize_model

        result.update(finalize_model(recipe, checkpoint, run_dir / "model"))
    return result
