"""Model cards: the ``README.md`` of a model directory, with Hugging Face Hub metadata.

A card describes the model it is written for: its architecture and head, its
validation scores, its training data and stages as its ``nuclib.json`` and ``record.json``
records them, and the DSB2018 dataset and citation only for models whose
weights come from those images.

Example:
    >>> from nuclib.model_card import model_card
    >>> model_card({"name": "my-model", "head": "binary"}).splitlines()[0]
    '---'
"""

from __future__ import annotations

import json

from nuclib.heads import DESCRIPTIONS


def _fmt(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


# What a card says of models trained on the 2018 Data Science Bowl images, and
# only of them: a user's own model must not claim that data or its citation.
DSB_DATASET = "BBBC038 (Data Science Bowl 2018, stage 1 train, community-fixed masks)"
DSB_CITATION = ("Caicedo et al., Nucleus segmentation across imaging experiments: the 2018 "
                "Data Science Bowl. Nature Methods 16, 1247–1253 (2019).")


def trained_on_dsb(config: dict) -> bool:
    """Whether a model's weights come from the DSB2018 images (its own run or a stage before).

    Args:
        config: a model's ``nuclib.json`` and ``record.json`` in one flat dict
            (``Segmenter.as_dict``).

    Example:
        >>> trained_on_dsb({"training": {"data": "12 images from my_data/train"}})
        False
        >>> trained_on_dsb({"training": {"data": "x", "fine_tuned_from": {"model": "dsb-3class"}}})
        True
    """
    training = config.get("training") or {}
    if "DSB2018" in str(training.get("data", "")):
        return True
    starts = [training.get("backbone_from") or {}]
    start = training.get("fine_tuned_from")
    while start:  # every earlier stage, oldest last
        starts.append(start)
        start = start.get("fine_tuned_from")
    return any(str(s.get("model", "")).startswith("dsb-") or "dsb" in str(s.get("recipe_file", ""))
               for s in starts)


def model_card(config: dict) -> str:
    """A Hugging Face model card (``README.md`` with Hub metadata) for a nuclib model.

    The card describes the model it is written for: its training data as the
    ``training`` record names it; the DSB2018 dataset and limitations only for
    models trained on those images, and their citation also for models
    started from one (``trained_on_dsb``).

    Args:
        config: a model's ``nuclib.json`` and ``record.json`` in one flat dict
            (``Segmenter.as_dict``). Missing keys print as
            ``?`` or ``None``; ``scores`` and ``training`` add a validation
            table and a training section when present. The license is
            ``config["license"]`` when set, else ``cc0-1.0`` for models trained
            on DSB2018 (CC0 data) and ``other`` (unknown) for the rest.

    Returns:
        The card as Markdown text with a YAML front matter block.

    Example:
        >>> print(model_card({"name": "x", "head": "binary"})[:3])
        ---
    """
    scores = config.get("scores", {})
    data = (config.get("training") or {}).get("data")
    dsb = "DSB2018" in str(data)          # trained on the DSB2018 images in this run
    from_dsb = trained_on_dsb(config)     # or started from a model that was
    lines = [
        "---",
        "library_name: keras",
        f"license: {config.get('license') or ('cc0-1.0' if dsb else 'other')}",
        "tags:", "- nuclib", "- image-segmentation", "- microscopy", "- nuclei",
        *(["datasets:", f"- {DSB_DATASET}"] if dsb else []),
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
                  "chosen on the same split, so these numbers are slightly optimistic"
                  + ("; the held-out DSB test split was not available." if dsb else "."), "",
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
            recipe_file = training.get("recipe_file")
            lines += [f"- recipe: `{recipe_file}` — retrain with `nuclib train {recipe_file}`"
                      if recipe_file else "- recipe: given as a dict, kept in `record.json` "
                      "(`training.recipe`) — retrain with `nuclib.train.train(recipe)`",
                      f"- {run_length(training)}", ""]
    speed = config.get("speed")
    if speed:
        lines += ["## Speed", "", speed, ""]
    if dsb:
        use = ("Instance segmentation of cell nuclei in 2-D fluorescence, bright-field and "
               "H&E-like histology images at magnifications similar to DSB2018 (nuclei roughly "
               "5 to 80 pixels across).")
        limits = ["Trained on 498 DSB2018 images; images unlike them (other stains, very large "
                  "or tiny nuclei, 3-D stacks, time-lapse) may need fine-tuning "
                  "(`[train] fine_tune_from`).",
                  "Histology and bright-field are a small part of the training data; expect "
                  "lower scores there (see the table)."]
    else:
        use = (f"Instance segmentation of cell nuclei in 2-D images like its training data "
               f"({data or 'not recorded'}).")
        limits = [f"Trained on {data or 'data not recorded'}; check it on your images before "
                  "relying on it (`nuclib evaluate`)."]
    lines += [
        "## Intended use", "", use, "",
        "## Limitations", "",
        *[f"- {limit}" for limit in limits],
        "- Heavily clustered nuclei may be merged or split; check with `nuclib.viz.error_map`.",
        *[f"- {note}" for note in config.get("notes", [])],
        "",
    ]
    if from_dsb:
        lines += ["## Citation", "",
                  ("Trained on the 2018 Data Science Bowl images: " if dsb
                   else "Started from a model trained on the 2018 Data Science Bowl images: ")
                  + DSB_CITATION, ""]
    return "\n".join(lines)


def _started(stage: dict) -> str:
    """How a fine-tuning stage used the model it started from."""
    return "widened (Net2WiderNet) and fine-tuned" if stage.get("widened") else "fine-tuned"


def run_length(training: dict) -> str:
    """How long a training run was, for model cards and the zoo page.

    Args:
        training: a ``training`` (or ``fine_tuned_from``) record of ``record.json``
            with ``epochs``, ``steps_per_epoch`` and ``seconds``.

    Returns:
        One line of text; missing counts print as ``?``.

    Example:
        >>> run_length({"epochs": 40, "steps_per_epoch": 100, "seconds": 4260,
        ...             "hardware": "a 16-core CPU"})
        '40 epochs x 100 steps, 71 minutes on a 16-core CPU'
    """
    # Records written before the hardware was recorded are the zoo's, all trained
    # on the project's 2-core development machine.
    return (f"{training.get('epochs', '?')} epochs x {training.get('steps_per_epoch', '?')} "
            f"steps, {(training.get('seconds') or 0) / 60:.0f} minutes on "
            f"{training.get('hardware', 'a 2-core CPU')}")


def training_stages(training: dict) -> list[dict]:
    """The training runs behind a model, oldest first, from its ``training`` record.

    Each fine-tuning run records the run it started from in
    ``fine_tuned_from`` (see ``previous_stage``), which may record its own.

    Args:
        training: the ``training`` record of ``record.json``.

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
