"""Writing model directories: Keras Hub layout, ``nuclib.json`` and the model card.

``finalize_model`` is the last step of the training recipe: it rebuilds the
trained network in float32, tunes post-processing thresholds on the
validation split, evaluates with nuclib's own metrics and writes everything
into one directory that ``load_pretrained`` and the Hub understand.
"""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
import time
from pathlib import Path

from nuclib._files import set_default_permissions
from nuclib._version import __version__
from nuclib.heads import DESCRIPTIONS
from nuclib.zoo.files import KERAS_FILES, sha256


def write_model_dir(model, config: dict, directory, *, card: str | None = None,
                    overwrite: bool = False) -> Path:
    """Write ``config.json``, ``metadata.json``, ``model.weights.h5``, ``nuclib.json``
    (with the sha256 of the Keras files) and ``README.md`` into ``directory``.

    The directory is assembled beside the target and renamed into place, so
    a crash never leaves a half-written model.

    Args:
        model: the Keras model to save (config and weights).
        config: nuclib settings, merged over ``nuclib.segmenter.DEFAULT_CONFIG``;
            ``nuclib_version``, ``parameters`` (the model's parameter count)
            and ``files`` (sha256 of the Keras files) are added.
        directory: target folder; its parent is created if needed.
        card: text of ``README.md``; default: ``model_card`` of the merged config.
        overwrite: replace a non-empty ``directory``.

    Returns:
        ``directory`` as a ``Path``.

    Raises:
        FileExistsError: ``directory`` exists and is not empty, and not ``overwrite``.

    Example:
        >>> write_model_dir(model, {"name": "my-model", "head": "binary"}, "models/my-model")  # doctest: +SKIP
    """
    import keras

    from nuclib.segmenter import CONFIG_FILE, DEFAULT_CONFIG, _merge

    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()) and not overwrite:
        raise FileExistsError(f"{directory} exists and is not empty; pass overwrite=True "
                              "to replace it")
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    set_default_permissions(tmp, directory=True)
    try:
        keras.saving.save_model(model, tmp, zipped=False)
        assets = tmp / "assets"
        if assets.is_dir() and not any(assets.iterdir()):
            assets.rmdir()
        full = _merge(DEFAULT_CONFIG, config)
        full["nuclib_version"] = __version__
        full["parameters"] = int(model.count_params()) if hasattr(model, "count_params") else None
        full["files"] = {name: sha256(tmp / name) for name in KERAS_FILES}
        (tmp / CONFIG_FILE).write_text(json.dumps(full, indent=2, default=_json_default) + "\n")
        (tmp / "README.md").write_text(card if card is not None else model_card(full))
        # Move the old model aside before the new one takes its name, and only
        # then delete it: at every moment one complete model sits at a known path.
        old = None
        if directory.exists():
            old = directory.with_name(f".{directory.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            directory.rename(old)
        tmp.rename(directory)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def _json_default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _fmt(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def model_card(config: dict) -> str:
    """A Hugging Face model card (``README.md`` with Hub metadata) for a nuclib model.

    Args:
        config: a model's ``nuclib.json`` settings. Missing keys print as
            ``?`` or ``None``; ``scores`` and ``training`` add a validation
            table and a training section when present. The license line is
            ``cc0-1.0`` when the name contains ``"dsb"``, else ``mit``.

    Returns:
        The card as Markdown text with a YAML front matter block.

    Example:
        >>> print(model_card({"name": "x", "head": "binary"})[:3])
        ---
    """
    scores = config.get("scores", {})
    lines = [
        "---",
        "library_name: keras",
        "license: cc0-1.0" if "dsb" in config.get("name", "") else "license: mit",
        "tags:", "- nuclib", "- image-segmentation", "- microscopy", "- nuclei",
        "datasets:", "- BBBC038 (Data Science Bowl 2018, stage 1 train, community-fixed masks)",
        "metrics:", "- average_precision", "- f1",
        "pipeline_tag: image-segmentation",
        "---", "",
        f"# {config.get('name', 'model')}", "",
        config.get("description", ""), "",
        "## Use", "",
        "```python", "import nuclib",
        f"seg = nuclib.load_pretrained({config.get('name', 'model')!r})",
        "labels = seg.segment(image)   # uint32 instance labels, nuclei numbered 1..N",
        "```", "",
        "## Model", "",
        f"- architecture: `{config.get('architecture', '?')}` "
        f"({config.get('parameters', '?')} parameters), head `{config.get('head')}`",
        f"- input: {config.get('input_channels')} channel(s); percentile normalization "
        f"{config.get('normalize', {}).get('low')} / {config.get('normalize', {}).get('high')}; "
        f"inversion `{config.get('invert')}` (colour images and grayscale images with a bright "
        "background are inverted so nuclei are bright)",
        f"- output: {DESCRIPTIONS.get(config.get('head'), '?')}",
        f"- post-processing: `{json.dumps(config.get('postprocess', {}))}`",
        f"- tiling: `{json.dumps(config.get('tiling', {}))}`",
    ]
    if config.get("diameter"):
        lines.append(f"- nucleus size: trained with nuclei zoomed to {config['diameter']:g} "
                     "pixels across; each image is zoomed the same way before prediction "
                     "(its nucleus size measured by a first pass, or given as `diameter=`)")
    lines.append("")
    if scores:
        lines += ["## Validation scores", "",
                  f"Measured by nuclib's own metrics on `{scores.get('data', 'val/')}` "
                  f"({scores.get('n_images', '?')} images). Post-processing thresholds were "
                  "chosen on the same split, so these numbers are slightly optimistic; the "
                  "held-out DSB test split was not available.", "",
                  "| group | images | AP@0.5 | AP@0.75 | AP@0.9 | F1@0.5 | DSB score |",
                  "|---|---|---|---|---|---|---|"]
        for group, row in scores.get("groups", {}).items():
            lines.append(f"| {group} | {row.get('n_images')} | {_fmt(row.get('ap50'))} | "
                         f"{_fmt(row.get('ap75'))} | {_fmt(row.get('ap90'))} | "
                         f"{_fmt(row.get('f1_50'))} | {_fmt(row.get('dsb_score'))} |")
        lines.append("")
        lines.append("AP@t is the pooled tp / (tp + fp + fn) at IoU threshold t (as in the "
                     "StarDist paper); the DSB score is the Kaggle DSB2018 metric.")
        lines.append("")
    training = config.get("training", {})
    if training:
        lines += ["## Training", "", f"- data: {training.get('data', '?')}"]
        stages = training_stages(training)
        if len(stages) > 1:
            root = stages[0].get("fine_tuned_from") or {}
            if root.get("model"):
                lines.append(f"- stage 1 {_started(stages[0])} from `{root['model']}`")
            for i, stage in enumerate(stages, start=1):
                start = f", {_started(stage)} from stage {i - 1}" if i > 1 else ""
                lines.append(f"- stage {i}{start}: `{stage.get('recipe_file', '?')}`, "
                             f"{run_length(stage)}")
            lines += [f"- retrain with {retrain_commands(stages)}", ""]
        else:
            previous = training.get("fine_tuned_from")
            if previous:
                lines.append(f"- {_started(training)} from `{previous.get('model', '?')}`")
            backbone = training.get("backbone_from")
            if backbone:
                lines.append(f"- encoder and decoder started from `{backbone.get('model', '?')}`"
                             f"; the `{config.get('head')}` head trained from scratch on top")
            lines += [f"- recipe: `{training.get('recipe_file', '?')}` — retrain with "
                      f"`nuclib train {training.get('recipe_file', 'recipe.toml')}`",
                      f"- {run_length(training)}", ""]
    speed = config.get("speed")
    if speed:
        lines += ["## Speed", "", speed, ""]
    lines += [
        "## Intended use", "",
        "Instance segmentation of cell nuclei in 2-D fluorescence, bright-field and H&E-like "
        "histology images at magnifications similar to DSB2018 (nuclei roughly 5 to 80 pixels "
        "across).", "",
        "## Limitations", "",
        "- Trained on 498 DSB2018 images; images unlike them (other stains, very large or tiny "
        "nuclei, 3-D stacks, time-lapse) may need fine-tuning (`[train] fine_tune_from`).",
        "- Histology and bright-field are a small part of the training data; expect lower "
        "scores there (see the table).",
        "- Heavily clustered nuclei may be merged or split; check with `nuclib.viz.error_map`.",
        *[f"- {note}" for note in config.get("notes", [])],
        "",
        "## Citation", "",
        "Caicedo et al., Nucleus segmentation across imaging experiments: the 2018 Data "
        "Science Bowl. Nature Methods 16, 1247–1253 (2019).", "",
    ]
    return "\n".join(lines)


def _started(stage: dict) -> str:
    """How a fine-tuning stage used the model it started from."""
    return "widened (Net2WiderNet) and fine-tuned" if stage.get("widened") else "fine-tuned"


def run_length(training: dict) -> str:
    """How long a training run was, for model cards and the zoo page.

    Args:
        training: a ``training`` (or ``fine_tuned_from``) record of ``nuclib.json``
            with ``epochs``, ``steps_per_epoch`` and ``seconds``.

    Returns:
        One line of text; missing counts print as ``?``.

    Example:
        >>> run_length({"epochs": 40, "steps_per_epoch": 100, "seconds": 4260})
        '40 epochs x 100 steps, 71 minutes on a 2-core CPU'
    """
    return (f"{training.get('epochs', '?')} epochs x {training.get('steps_per_epoch', '?')} "
            f"steps, {(training.get('seconds') or 0) / 60:.0f} minutes on a 2-core CPU")


def training_stages(training: dict) -> list[dict]:
    """The training runs behind a model, oldest first, from its ``training`` record.

    Each fine-tuning run records the run it started from in
    ``fine_tuned_from`` (see ``previous_stage``), which may record its own.

    Args:
        training: the ``training`` record of ``nuclib.json``.

    Returns:
        The chain of records that have a ``recipe_file``, the model's own run
        last; a start that is not a recorded run (a zoo name) ends the chain.

    Example:
        >>> stage1 = {"recipe_file": "recipes/a.toml", "epochs": 40}
        >>> stage2 = {"recipe_file": "recipes/b.toml", "fine_tuned_from": stage1}
        >>> [s["recipe_file"] for s in training_stages({"recipe_file": "recipes/c.toml",
        ...                                             "fine_tuned_from": stage2})]
        ['recipes/a.toml', 'recipes/b.toml', 'recipes/c.toml']
    """
    stages, record = [], training
    while record and record.get("recipe_file"):
        stages.insert(0, record)
        record = record.get("fine_tuned_from")
    return stages


def retrain_commands(stages: list[dict]) -> str:
    """The ``nuclib train`` commands that retrain a model, in order, as Markdown.

    Args:
        stages: from ``training_stages``.

    Returns:
        The commands joined by "then".

    Example:
        >>> retrain_commands([{"recipe_file": "recipes/a.toml"}, {"recipe_file": "recipes/b.toml"}])
        '`nuclib train recipes/a.toml` then `nuclib train recipes/b.toml`'
    """
    return " then ".join(f"`nuclib train {stage.get('recipe_file', 'recipe.toml')}`"
                         for stage in stages)


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
        that run was itself fine-tuned and finalized (``model/nuclib.json``
        in its folder), its own ``fine_tuned_from``; otherwise
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
    stage = {"recipe_file": f"recipes/{recipe['name']}.toml",
             "epochs": len(history.get("history", {}).get("loss", [])),
             "steps_per_epoch": recipe["train"]["steps_per_epoch"],
             "seconds": history.get("train_seconds", 0.0)}
    if recipe["train"].get("widen"):
        stage["widened"] = True
    finalized = run / "model" / "nuclib.json"
    if finalized.is_file():
        earlier = json.loads(finalized.read_text()).get("training", {}).get("fine_tuned_from")
        if earlier:
            stage["fine_tuned_from"] = earlier
    return stage


def read_modalities(split_dir) -> dict[str, str]:
    """``{image_id: modality}`` from the ``manifest.csv`` beside a DSB split, if any.

    Args:
        split_dir: a split folder such as ``.../dsb2018/val``; the manifest is
            looked for in its parent (``.../dsb2018/manifest.csv``).

    Returns:
        ``{id: modality}`` for every row of the manifest (all splits; a
        manifest without a ``modality`` column gives ``"all"``), or ``{}``
        when there is no manifest.

    Example:
        >>> read_modalities("/nonexistent/val")
        {}
    """
    manifest = Path(split_dir).parent / "manifest.csv"
    if not manifest.is_file():
        return {}
    with open(manifest, newline="") as fh:
        return {row["id"]: row.get("modality", "all") for row in csv.DictReader(fh)}


def evaluate_segmenter(segmenter, pairs, *, progress: bool = True, probs=None):
    """Segment every (image, labels) pair and score it with ``nuclib.metrics.evaluate``.

    Groups rows by modality when the split has a ``manifest.csv``.

    Args:
        segmenter: a ``Segmenter``.
        pairs: ``[(image_path, label_path), ...]`` as from
            ``nuclib.data.folder_pairs``; the split folder (and so the
            manifest) is found from the first image path.
        progress: show a progress bar (``nuclib.progress``).
        probs: optional precomputed predictions, one per pair in the same
            order: probability arrays (then only ``segmenter.postprocess``
            runs on them) or ``ScaledPrediction``s from
            ``segmenter.predict_scaled`` (then ``segmenter.labels_from``).
            Images are still read, for the pixel count.

    Returns:
        ``(report, seconds_per_megapixel)``: the ``nuclib.metrics.Report``
        (names are the image stems) and the wall time per megapixel of the
        loop (reading, segmenting or post-processing, reading labels).

    Example:
        >>> from nuclib.data.io import folder_pairs
        >>> report, speed = evaluate_segmenter(seg, folder_pairs("data/val"))  # doctest: +SKIP
    """
    from nuclib.data.io import read_image, read_labels
    from nuclib.metrics import evaluate
    from nuclib.progress import progress_bar

    modality = read_modalities(Path(pairs[0][0]).parent.parent) if pairs else {}
    ys_true, ys_pred, names, groups = [], [], [], []
    pixels, started = 0, time.perf_counter()
    for i, (image_path, label_path) in enumerate(progress_bar(pairs, desc="evaluating",
                                                              unit="image", enabled=progress)):
        image = read_image(image_path)
        if probs is not None and hasattr(probs[i], "factor"):
            pred = segmenter.labels_from(probs[i])
        elif probs is not None:
            pred = segmenter.postprocess(probs[i])
        else:
            pred = segmenter.segment(image)
        pixels += image.shape[0] * image.shape[1]
        ys_true.append(read_labels(label_path))
        ys_pred.append(pred)
        names.append(Path(image_path).stem)
        groups.append(modality.get(Path(image_path).stem, "all"))
    seconds = time.perf_counter() - started
    report = evaluate(ys_true, ys_pred, names=names, groups=groups)
    return report, seconds / max(pixels / 1e6, 1e-9)


def summarize(report) -> dict:
    """JSON-friendly scores for ``nuclib.json`` and the model card from a ``Report``.

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


def portable_recipe(recipe: dict, start=None) -> dict:
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

    out = copy.deepcopy(recipe)
    start = str(start or Path.cwd())
    for section, key in (("data", "train"), ("data", "val"), ("output", "dir"),
                         ("output", "sample_image"), ("train", "fine_tune_from")):
        value = out.get(section, {}).get(key)
        if isinstance(value, str) and os.path.isabs(value):
            out[section][key] = os.path.relpath(value, start)
    return out


def finalize_model(recipe: dict, checkpoint, out_dir, *, progress: bool = True) -> dict:
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

    from nuclib.data.io import folder_pairs, read_image, read_labels
    from nuclib.data.scale import rescale_labels
    from nuclib.postprocess import optimize_thresholds
    from nuclib.postprocess.thresholds import DEFAULT_GRIDS
    from nuclib.progress import progress_bar
    from nuclib.segmenter import Segmenter
    from nuclib.train import build_model

    keras.mixed_precision.set_global_policy("float32")
    trained = keras.saving.load_model(checkpoint, compile=False, safe_mode=True)
    model = build_model(recipe)
    model.set_weights(trained.get_weights())
    head = recipe["data"]["target"]
    low, high = recipe["data"]["normalize"]
    config = {
        "name": recipe["name"],
        "description": recipe.get("description", ""),
        "architecture": recipe["model"]["factory"],
        "architecture_args": recipe["model"]["args"],
        "head": head,
        "input_channels": recipe["model"]["input_channels"],
        "normalize": {"low": low, "high": high},
        "invert": "auto",
        "tiling": {"tile_size": 1024, "batch_size": 1, "blend": "crop"},
        "diameter": recipe["data"].get("diameter") or None,
    }
    segmenter = Segmenter(model, config)
    val_pairs = folder_pairs(recipe["data"]["val"])
    if recipe["data"].get("max_images"):
        val_pairs = val_pairs[: recipe["data"]["max_images"]]
    images = [read_image(p) for p, _ in val_pairs]
    preds = [segmenter.predict_scaled(im)
             for im in progress_bar(images, desc="predicting", unit="image", enabled=progress)]
    # The recipe's [postprocess] values are fixed; the other parameters are tuned.
    fixed = dict(recipe.get("postprocess") or {})
    grid = {k: v for k, v in DEFAULT_GRIDS[head].items() if k not in fixed}
    if grid:
        # Thresholds are tuned in the model's space, where post-processing runs.
        truths = [rescale_labels(read_labels(lab), shape=pred.probs.shape[:2])
                  for (_, lab), pred in zip(val_pairs, preds)]
        tuned = optimize_thresholds([pred.probs for pred in preds], truths, kind=head,
                                    grid=grid, base=fixed, progress=progress)
    else:  # every parameter fixed by the recipe: nothing to search
        tuned = {"params": fixed, "score": None, "default_score": None, "n_evaluations": 0,
                 "kind": head, "fixed": sorted(fixed)}
    segmenter.config["postprocess"] = tuned["params"]
    if config["diameter"]:
        # The size estimate itself post-processes: measure again with the tuned
        # thresholds. (A second search on these predictions was tried: each round
        # moves the estimates again, and on dsb-3class it lowered the end-to-end
        # fluorescence AP@0.5 from 0.805 to 0.790, so there is one round.)
        preds = [segmenter.predict_scaled(im) for im in
                 progress_bar(images, desc="predicting again", unit="image", enabled=progress)]
    report, _ = evaluate_segmenter(segmenter, val_pairs, progress=progress, probs=preds)
    # End-to-end speed measured separately on a few images (tiling + post-processing).
    scores = summarize(report)
    scores["data"] = f"DSB2018 val/ ({len(val_pairs)} images)"
    # Per-image rows let anyone (and the tests) re-check a few images cheaply.
    scores["per_image"] = [{k: row[k] for k in ("name", "group", "n_true", "n_pred", "ap50",
                                                 "dsb_score") if k in row}
                           for row in report.rows]
    scores["n_images"] = len(val_pairs)
    history_file = Path(checkpoint).parent / "history.json"
    history = json.loads(history_file.read_text()) if history_file.is_file() else {}
    segmenter.config["scores"] = scores
    segmenter.config["training"] = {
        "data": "DSB2018 stage-1 train, community-fixed masks (498 images, CC0)",
        "recipe_file": f"recipes/{recipe['name']}.toml",
        "recipe": portable_recipe(recipe),
        "epochs": len(history.get("history", {}).get("loss", [])) or recipe["train"]["epochs"],
        "steps_per_epoch": recipe["train"]["steps_per_epoch"],
        "seconds": history.get("train_seconds", 0.0),
        "threshold_search": tuned,
    }
    if recipe["train"].get("widen"):
        segmenter.config["training"]["widened"] = True
    if recipe["train"].get("fine_tune_from"):
        segmenter.config["training"]["fine_tuned_from"] = previous_stage(
            recipe["train"]["fine_tune_from"])
    if recipe["train"].get("backbone_from"):
        segmenter.config["training"]["backbone_from"] = previous_stage(
            recipe["train"]["backbone_from"])
    out = write_model_dir(model, segmenter.config, out_dir, overwrite=True)
    report.to_csv(Path(out).parent / f"{recipe['name']}_val_report.csv")
    return {"model_dir": str(out), "scores": scores}


def register_model(model_dir, *, name: str, repo_id: str, revision: str, description: str,
                   aliases=(), bundle: bool = True, registry_file=None) -> dict:
    """Add (or replace) a registry entry for a finished model directory.

    Computes the sha256 of every loaded file, optionally copies the directory
    into the package (``nuclib/zoo/bundled/<name>``) as the offline copy, and
    rewrites ``registry.json``. A maintainer step after training and
    ``nuclib zoo push``.

    Args:
        model_dir: a finished model directory (with ``nuclib.json``).
        name: registry name; an entry of the same name is replaced.
        repo_id: Hugging Face Hub repository holding the files.
        revision: Hub revision (branch, tag or commit) to pin.
        description: one-line description for ``list_pretrained``.
        aliases: other names that resolve to this model.
        bundle: also copy the directory to ``nuclib/zoo/bundled/<name>``
            (replacing an older copy).
        registry_file: registry to rewrite; default: the package's
            ``registry.json``.

    Returns:
        The new entry as a dict.

    Example:
        >>> register_model("runs/dsb-3class/model", name="dsb-3class",
        ...                repo_id="nuclib/dsb-3class", revision="main",
        ...                description="...")   # doctest: +SKIP
    """
    from importlib import resources

    from nuclib.segmenter import CONFIG_FILE, read_config

    model_dir = Path(model_dir)
    config = read_config(model_dir)
    package = Path(str(resources.files("nuclib.zoo")))
    registry_path = Path(registry_file) if registry_file else package / "registry.json"
    files = {f: sha256(model_dir / f) for f in (*KERAS_FILES, CONFIG_FILE)}
    scores = config.get("scores", {})
    headline = {}
    for group, row in scores.get("groups", {}).items():
        for key in ("ap50", "dsb_score"):
            if key in row:
                headline[f"{group}_{key}"] = row[key]
    entry = {"name": name, "description": description, "repo_id": repo_id,
             "revision": revision, "files": files, "aliases": list(aliases),
             "architecture": config.get("architecture", ""), "scores": headline}
    table = json.loads(registry_path.read_text()) if registry_path.is_file() else {"models": []}
    table["models"] = [m for m in table["models"] if m["name"] != name] + [entry]
    table["models"].sort(key=lambda m: m["name"])
    registry_path.write_text(json.dumps(table, indent=2) + "\n")
    if bundle:
        target = package / "bundled" / name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(model_dir, target)
    from nuclib.zoo.registry import load_registry

    load_registry.cache_clear()
    return entry
