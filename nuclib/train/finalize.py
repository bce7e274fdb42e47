"""The last step of a training run: a trained checkpoint becomes a complete model directory.

``finalize_model`` rebuilds the trained network in float32, tunes the
post-processing thresholds on the validation split, evaluates there with
nuclib's own metrics, and writes everything (weights, settings, scores, the
training record and a model card) into one directory that
``load_pretrained`` and the Hub understand.

Example:
    >>> from nuclib.train import finalize_model
    >>> finalize_model(recipe, "runs/x/best.keras", "runs/x/model")   # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path

from nuclib.evaluation import evaluate_segmenter, tune_thresholds
from nuclib.model_dir import CONFIG_FILE, read_record, register_keras_objects
from nuclib.recipe import Recipe


def recorded_recipe_file(history: dict, recipe: Recipe | dict) -> str | None:
    """The recipe file a run was started from, as ``nuclib train`` was given it.

    ``None`` for a recipe given as a dict (it is kept in the model's record,
    ``record.json``, under ``training.recipe``). Runs recorded before the file was kept are
    the zoo's, whose recipes are ``recipes/<name>.toml``.

    Example:
        >>> recorded_recipe_file({"recipe_file": "my.toml"}, {"name": "x"})
        'my.toml'
        >>> recorded_recipe_file({}, {"name": "dsb-3class"})
        'recipes/dsb-3class.toml'
    """
    return history.get("recipe_file", f"recipes/{recipe['name']}.toml")


def previous_stage(start) -> dict:
    """What a fine-tuning run started from, for the model card.

    Args:
        start: the recipe's ``fine_tune_from``: a ``.keras`` checkpoint in a
            ``nuclib train`` run folder, a model directory or a zoo name.

    Returns:
        For a checkpoint whose run folder holds ``recipe.json`` and
        ``history.json``: ``recipe_file`` (``recipes/<name>.toml``),
        ``epochs``, ``steps_per_epoch`` and ``seconds`` of that run,
        ``widened`` if it widened its own start (``[train] widen``), and, if
        that run was itself fine-tuned and finalized (a model directory
        ``model/`` in its folder), its own ``fine_tuned_from``; otherwise
        ``{"model": str(start)}``.

    Example:
        >>> previous_stage("dsb-3class")
        {'model': 'dsb-3class'}
    """
    run = Path(str(start)).parent
    recipe_file, history_file = run / "recipe.json", run / "history.json"
    if not (str(start).endswith(".keras") and recipe_file.is_file() and history_file.is_file()):
        return {"model": str(start)}
    recipe = json.loads(recipe_file.read_text())
    history = json.loads(history_file.read_text())
    stage = {"recipe_file": recorded_recipe_file(history, recipe),
             "epochs": len(history.get("history", {}).get("loss", [])),
             "steps_per_epoch": recipe["train"]["steps_per_epoch"],
             "seconds": history.get("train_seconds", 0.0)}
    if history.get("hardware"):
        stage["hardware"] = history["hardware"]
    if recipe["train"].get("widen"):
        stage["widened"] = True
    if (run / "model" / CONFIG_FILE).is_file():
        earlier = read_record(run / "model").get("training", {}).get("fine_tuned_from")
        if earlier:
            stage["fine_tuned_from"] = earlier
    return stage


def data_name(source) -> str:
    """A short name of a ``[data] train`` / ``val`` source for the model card.

    Args:
        source: a folder, a pair-list file or a list of pairs (``Recipe.pairs``).

    Returns:
        ``"parent/folder/"`` for a folder, ``"parent/file.txt"`` for a list
        file, or a phrase for an inline list.

    Example:
        >>> data_name("/data/dsb2018/val"), data_name([("a.png", "a.tif")])
        ('dsb2018/val/', 'a list of image/label pairs')
    """
    if isinstance(source, (list, tuple)):
        return "a list of image/label pairs"
    path = Path(source)
    return f"{path.parent.name}/{path.name}" + ("/" if path.is_dir() or not path.suffix else "")


def summarize(report) -> dict:
    """JSON-friendly scores for ``record.json`` and the model card from a ``Report``.

    Args:
        report: a ``nuclib.metrics.Report``.

    Returns:
        ``report.summary`` itself (not a copy): ``thresholds``, the dataset
        scores and ``groups``.

    Example:
        >>> import numpy as np
        >>> from nuclib.metrics import evaluate
        >>> y = np.zeros((8, 8), np.uint8); y[1:4, 1:4] = 1
        >>> summarize(evaluate([y], [y]))["ap50"]
        1.0
    """
    return report.summary


def portable_recipe(recipe: Recipe | dict, start=None) -> dict:
    """A copy of a loaded recipe with absolute paths made relative to ``start`` (default: cwd),
    so model files do not record the trainer's machine layout.

    Only ``data.train``, ``data.val``, ``output.dir``, ``output.sample_image``
    and ``train.fine_tune_from`` are rewritten, and only when they are
    absolute path strings.

    Args:
        recipe: a loaded recipe (nested dict); left unchanged.
        start: folder the paths are made relative to; default: the current
            working directory.

    Returns:
        A deep copy of ``recipe`` with those paths relative.

    Example:
        >>> portable_recipe({"data": {"train": "/data/dsb/train"}}, start="/data")
        {'data': {'train': 'dsb/train'}}
    """
    import copy
    import os

    out = recipe.to_dict() if hasattr(recipe, "to_dict") else copy.deepcopy(recipe)
    start = str(start or Path.cwd())
    for section, key in (("data", "train"), ("data", "val"), ("output", "dir"),
                         ("output", "sample_image"), ("train", "fine_tune_from")):
        value = out.get(section, {}).get(key)
        if isinstance(value, str) and os.path.isabs(value):
            out[section][key] = os.path.relpath(value, start)
    return out


def finalize_model(recipe: Recipe, checkpoint, out_dir, *, progress: bool = True) -> dict:
    """Turn a training checkpoint into a finished model directory.

    Rebuilds the model in float32 (training may use mixed precision), loads
    the checkpoint's weights, optimizes post-processing thresholds on the
    validation split (all but the recipe's ``[postprocess]`` values, which
    are kept as given), evaluates there (pooled AP at IoU 0.5/0.75/0.9, DSB
    score, F1, per modality) and writes the directory with the scores.

    Side effects: sets Keras' global dtype policy to ``float32``, writes
    ``<recipe name>_val_report.csv`` beside ``out_dir`` and replaces
    ``out_dir`` if it exists. Training history (epochs, seconds) is read
    from ``history.json`` beside the checkpoint when present.

    Args:
        recipe: the loaded training recipe (``name``, ``data``, ``model``,
            ``train`` sections) the checkpoint was trained with.
        checkpoint: path of the ``.keras`` checkpoint.
        out_dir: model directory to write.
        progress: show progress bars for threshold search and evaluation.

    Returns:
        dict with ``model_dir`` (str) and ``scores`` (the summary plus
        ``data``, ``per_image`` and ``n_images``).

    Example:
        >>> from nuclib.train import load_recipe
        >>> finalize_model(load_recipe("recipes/dsb-3class.toml"), "runs/dsb-3class/best.keras",
        ...                "runs/dsb-3class/model")   # doctest: +SKIP
    """
    import keras

    from nuclib.lazy_weights import initializers_deferred
    from nuclib.segmenter import Segmenter
    from nuclib.recipe import build_model

    keras.mixed_precision.set_global_policy("float32")
    register_keras_objects()  # a fresh process has not built the custom layers yet
    with initializers_deferred():  # every weight comes from the checkpoint
        trained = keras.saving.load_model(checkpoint, compile=False, safe_mode=True)
        model = build_model(recipe)
        model.set_weights(trained.get_weights())
    settings = recipe.segmenter_config()
    settings.postprocess = {}  # searched below, with the recipe's own values fixed
    about = {"description": recipe.get("description", ""),
             "architecture": recipe["model"]["factory"],
             "architecture_args": recipe["model"]["args"]}
    segmenter = Segmenter(model, settings, about=about)
    val_pairs = recipe.pairs("val")
    # The recipe's [postprocess] values are fixed; the other parameters are tuned.
    tuned, preds = tune_thresholds(segmenter, val_pairs, fixed=recipe.postprocess,
                                   progress=progress)
    report, _ = evaluate_segmenter(segmenter, val_pairs, progress=progress, probs=preds)
    # End-to-end speed measured separately on a few images (tiling + post-processing).
    scores = summarize(report)
    scores["data"] = f"{data_name(recipe.data.val)} ({len(val_pairs)} images)"
    # Per-image rows let anyone (and the tests) re-check a few images cheaply.
    scores["per_image"] = [{k: row[k] for k in ("name", "group", "n_true", "n_pred", "ap50",
                                                 "dsb_score") if k in row}
                           for row in report.rows]
    scores["n_images"] = len(val_pairs)
    history_file = Path(checkpoint).parent / "history.json"
    history = json.loads(history_file.read_text()) if history_file.is_file() else {}
    training = {
        "data": recipe.data.description or (
            f"{len(recipe.pairs('train'))} images from {data_name(recipe.data.train)}"),
        "recipe_file": recorded_recipe_file(history, recipe),
        "recipe": portable_recipe(recipe),
        "epochs": len(history.get("history", {}).get("loss", [])) or recipe["train"]["epochs"],
        "steps_per_epoch": recipe["train"]["steps_per_epoch"],
        "seconds": history.get("train_seconds", 0.0),
        **({"hardware": history["hardware"]} if history.get("hardware") else {}),
        "threshold_search": tuned,
    }
    if recipe["train"].get("widen"):
        training["widened"] = True
    if recipe["train"].get("fine_tune_from"):
        training["fine_tuned_from"] = previous_stage(recipe["train"]["fine_tune_from"])
    if recipe["train"].get("backbone_from"):
        training["backbone_from"] = previous_stage(recipe["train"]["backbone_from"])
    segmenter.record.update(scores=scores, training=training)
    out = segmenter.save(out_dir, overwrite=True)
    report.to_csv(Path(out).parent / f"{recipe['name']}_val_report.csv")
    return {"model_dir": str(out), "scores": scores}
