"""Fitting a recipe: from a recipe (``nuclib.recipe``) to a trained, evaluated model.

``train`` fits the recipe's model, keeps the checkpoint with the best
validation loss, and (unless ``finalize = false``) hands it to
``nuclib.train.finalize.finalize_model``, which tunes post-processing
thresholds on the validation split and writes a complete model directory
(Keras Hub layout plus ``nuclib.json`` with the validation scores).

Example:
    >>> from nuclib.train import train
    >>> result = train("recipes/dsb-3class.toml")   # doctest: +SKIP

or from a shell: ``nuclib train recipes/dsb-3class.toml``.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import warnings
from pathlib import Path

from nuclib.recipe import (AUGMENTS, Recipe, build_loss, build_metrics, build_model,
                           build_optimizer, load_recipe, looks_like_a_file)


def _sample_zoom(recipe: Recipe) -> float:
    """How much to zoom the sample image so the model sees it at its training scale."""
    from nuclib.data.scale import scale_for_diameter

    target, sample = recipe["data"]["diameter"], recipe["output"]["sample_diameter"]
    return scale_for_diameter(sample, target) if target and sample else 1.0


def load_training_data(pairs, recipe: Recipe, *, progress: bool = True):
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

    if looks_like_a_file(str(source)) and not Path(source).exists():
        raise FileNotFoundError(f"[train] {key} {str(source)!r} does not exist; "
                                "expected a .keras checkpoint, a model directory or a zoo name")
    if str(source).endswith(".keras"):
        from nuclib.lazy_weights import initializers_deferred
        from nuclib.model_dir import register_keras_objects

        register_keras_objects()  # a fresh process has not built the custom layers yet
        with initializers_deferred():  # the weights come from the file
            return keras.saving.load_model(source, compile=False, safe_mode=True)
    from nuclib.zoo import load_pretrained

    return load_pretrained(source).model


@contextlib.contextmanager
def _naming_a_mismatch(recipe: Recipe, key: str, explain: str):
    """Turn a ``ValueError`` about the start ``[train] key`` into ``explain``, formatted with
    ``start`` (the recipe's value), ``model`` (its ``[model]``) and ``err``, so that every
    way of starting names both sides of a mismatch alike."""
    try:
        yield
    except ValueError as err:
        where = f"the recipe's [model] ({recipe.model.factory} {recipe.model.args})"
        raise ValueError(explain.format(start=repr(recipe.train[key]), model=where,
                                        err=err)) from err


def _rebuilt_under_current_policy(initial, recipe: Recipe):
    """The recipe's model, built under the global dtype policy, with ``initial``'s weights."""
    model = build_model(recipe)
    with _naming_a_mismatch(recipe, "fine_tune_from",
                            "[train] fine_tune_from {start} does not match {model}; with "
                            "mixed_precision the model is rebuilt from [model], so give the "
                            "same architecture ({err})"):
        model.set_weights(initial.get_weights())
    return model


def _with_backbone(initial, recipe: Recipe):
    """The recipe's model with ``initial``'s encoder and decoder weights and a fresh head."""
    from nuclib.models import copy_backbone

    model = build_model(recipe)
    with _naming_a_mismatch(recipe, "backbone_from", "[train] backbone_from {start} does not "
                            "match {model} outside the head: {err}"):
        copy_backbone(initial, model)
    return model


def _widened(initial, recipe: Recipe):
    """The recipe's (wider) model computing what ``initial`` computes (Net2WiderNet)."""
    from nuclib.models import widen

    model = build_model(recipe)
    with _naming_a_mismatch(recipe, "fine_tune_from", "[train] widen: fine_tune_from {start} "
                            "cannot be widened into {model}: {err}"):
        return widen(initial, model, seed=recipe.seed)


def training_hardware() -> str:
    """What trained the model, for its card: ``"1 GPU (NVIDIA H200)"`` or ``"a 2-core CPU"``.

    Example:
        >>> training_hardware()   # doctest: +SKIP
        'a 2-core CPU'
    """
    import keras

    if accelerator() is None:
        return f"a {os.cpu_count()}-core CPU"
    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        count, name = torch.cuda.device_count(), torch.cuda.get_device_name(0)
    elif backend == "jax":
        import jax

        devices = jax.devices()
        count, name = len(devices), devices[0].device_kind
    else:
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        count = len(gpus)
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "")
    return f"{count} GPU" + ("s" if count > 1 else "") + (f" ({name})" if name else "")


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
    from nuclib.engines import cpu_computes_bfloat16

    return accelerator() is not None or cpu_computes_bfloat16(cpuinfo)


def accelerator() -> str | None:
    """The GPU the Keras backend trains on (``"gpu"`` / ``"cuda"``), or None on the CPU.

    Asks the backend itself: TensorFlow's physical devices, ``torch.cuda``,
    or JAX's default devices.

    Example:
        >>> accelerator() in (None, "gpu", "cuda")
        True
    """
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return "gpu" if tf.config.list_physical_devices("GPU") else None
    if backend == "torch":
        import torch

        return "cuda" if torch.cuda.is_available() else None
    if backend == "jax":
        import jax

        return "gpu" if jax.devices()[0].platform == "gpu" else None
    return None


def train(recipe, *, output_dir=None, finalize: bool | None = None) -> dict:
    """Train a model from a recipe; return paths and the training history.

    Args:
        recipe: path to a TOML recipe, or a dict with the same sections.
        output_dir: overrides ``[output] dir``.
        finalize: overrides ``[output] finalize`` (optimize thresholds,
            evaluate on validation, write the model directory).

    Returns:
        dict with ``run_dir``, ``checkpoint`` (``best.keras`` in the run
        folder), ``history`` (Keras history dict), ``train_seconds``, ``hardware`` and,
        when finalized, ``model_dir`` and ``scores``. Finalizing needs a
        ``[data] val`` folder and is skipped without one.

    Raises:
        ValueError: an invalid recipe.

    Example:
        >>> result = train("recipes/dsb-3class.toml", output_dir="runs/try", finalize=False)  # doctest: +SKIP
        >>> sorted(result)                                                                # doctest: +SKIP
        ['checkpoint', 'hardware', 'history', 'recipe_file', 'run_dir', 'train_seconds']
    """
    import keras

    # Kept for the model card's "retrain with": the file as it was given.
    recipe_file = os.fspath(recipe) if isinstance(recipe, (str, os.PathLike)) else None
    recipe = load_recipe(recipe)
    if output_dir is not None:
        recipe["output"]["dir"] = str(Path(output_dir).resolve())
    run_dir = Path(recipe["output"]["dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    if recipe["train"]["mixed_precision"] and not bfloat16_is_native():
        # Emulated bfloat16 is several times slower: 32-38 s against 8-13 s per step
        # of the distance recipe on a 2-core AVX2 CPU (its Keras log, other jobs running).
        warnings.warn("mixed_precision = true, but this machine computes bfloat16 only by "
                      "emulation (no GPU, no AVX512-BF16 or AMX CPU): training in float32, "
                      "which is faster here", stacklevel=2)
        recipe["train"]["mixed_precision"] = False
    (run_dir / "recipe.json").write_text(json.dumps(recipe.to_dict(), indent=2, default=str))
    keras.utils.set_random_seed(recipe["seed"])
    previous_policy = keras.mixed_precision.global_policy()
    if recipe["train"]["mixed_precision"]:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        # The model first: a start that does not exist fails in seconds, not
        # after every training image has been read and zoomed.
        model = _initial_model(recipe)
        train_ds, val_ds = _datasets(recipe)
        model.compile(optimizer=build_optimizer(recipe), loss=build_loss(recipe),
                      metrics=build_metrics(recipe))
        result = {**_fit(model, train_ds, val_ds, recipe, run_dir), "recipe_file": recipe_file}
    finally:
        # Code that runs after training in the same process is not left mixed.
        keras.mixed_precision.set_global_policy(previous_policy)
    (run_dir / "history.json").write_text(json.dumps(result, indent=2, default=float))
    do_finalize = recipe["output"]["finalize"] if finalize is None else finalize
    if do_finalize and recipe["data"]["val"]:
        from nuclib.train.finalize import finalize_model

        result.update(finalize_model(recipe, Path(result["checkpoint"]), run_dir / "model"))
    return result


def _initial_model(recipe: Recipe):
    """The network training starts from: built, fine-tuned, widened or on a backbone."""
    t = recipe["train"]
    if t["fine_tune_from"] and t["widen"]:
        return _widened(load_initial_model(t["fine_tune_from"]), recipe)
    if t["fine_tune_from"]:
        model = load_initial_model(t["fine_tune_from"])
        if t["mixed_precision"]:
            # Saved layers carry their float32 dtype policy, which would
            # override the global mixed policy: rebuild, then copy weights.
            model = _rebuilt_under_current_policy(model, recipe)
        return model
    if t["backbone_from"]:
        return _with_backbone(load_initial_model(t["backbone_from"], "backbone_from"), recipe)
    return build_model(recipe)


def _datasets(recipe: Recipe):
    """``(train, val)`` datasets of the recipe; ``val`` is None without a ``[data] val``."""
    from nuclib import data as nd

    d = recipe["data"]
    progress = recipe["train"]["progress"]
    train_pairs = recipe.pairs("train")
    augment = AUGMENTS[d["augment"]]
    n_rays = recipe["model"]["args"].get("n_rays", 32)
    # The target's shape ([data] boundary, boundary_width, expand, min_size), for both sets.
    shape = {"boundary": d.boundary, "boundary_width": d.boundary_width, "expand": d.expand,
             "min_size": d.min_size}
    train_ds = nd.make_dataset(
        data=load_training_data(train_pairs, recipe, progress=progress),
        crop_size=d["crop_size"], batch_size=d["batch_size"], target=d["target"],
        seed=recipe["seed"], sampling=d["sampling"], n_rays=n_rays, **shape,
        augment=getattr(nd, augment)(seed=recipe["seed"]) if augment else None)
    if not d["val"]:
        return train_ds, None
    val_pairs = recipe.pairs("val")
    # Every pixel of every validation image, so the best checkpoint is
    # chosen on all of them rather than on one random crop of each.
    val_ds = nd.make_validation_dataset(
        data=load_training_data(val_pairs, recipe, progress=progress),
        tile_size=d["crop_size"], batch_size=d["batch_size"], target=d["target"],
        progress=progress, n_rays=n_rays, **shape)
    return train_ds, val_ds


def _fit(model, train_ds, val_ds, recipe: Recipe, run_dir: Path) -> dict:
    """Fit with the recipe's callbacks; the result dict of ``train`` (without finalizing)."""
    import keras

    from nuclib import data as nd
    from nuclib.train.callbacks import SamplePrediction

    t = recipe["train"]
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
        channels = recipe["model"]["input_channels"]
        low, high = recipe["data"]["normalize"]
        callbacks.append(SamplePrediction(
            recipe["output"]["sample_image"], run_dir / "epochs",
            preprocess=lambda im: nd.prepare_image(im, channels=channels, low=low, high=high),
            zoom=_sample_zoom(recipe), tile_size=recipe.output.sample_tile_size))
    started = time.time()
    # shuffle=False: the dataset shuffles itself; Keras would only warn that it ignores it.
    history = model.fit(train_ds, epochs=t["epochs"], steps_per_epoch=t["steps_per_epoch"],
                        validation_data=val_ds, callbacks=callbacks, shuffle=False,
                        verbose=1 if t["progress"] else 2)
    return {"run_dir": str(run_dir), "checkpoint": str(checkpoint),
            "history": history.history, "train_seconds": time.time() - started,
            "hardware": training_hardware()}
