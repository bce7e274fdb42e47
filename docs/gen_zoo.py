"""Generate ``docs/zoo.md`` from the model registry and the bundled models.

The page lists every model of ``nuclib/zoo/registry.json`` with the facts
recorded in its bundled ``nuclib.json`` and ``record.json`` (architecture, parameters, input,
post-processing, validation scores per modality, training) and the
"Intended use" and "Limitations" sections of its model card, so the docs
never disagree with what ``nuclib.load_pretrained`` loads.

Runs two ways:

* as a MkDocs hook (``hooks: [docs/gen_zoo.py]`` in ``mkdocs.yml``): the page
  is refreshed before every build;
* as a script: ``python docs/gen_zoo.py`` (``--check`` exits 1 if the
  committed page is stale).

It reads JSON and Markdown only (and nuclib's card helpers, which import no
TensorFlow): no model loading.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from nuclib.model_card import retrain_commands, run_length, training_stages

REPO = Path(__file__).resolve().parents[1]
ZOO_DIR = REPO / "nuclib" / "zoo"
PAGE = REPO / "docs" / "zoo.md"

# (key in a scores row, column title); the keys nuclib.train.finalize writes.
SCORE_COLUMNS = (("n_images", "images"), ("ap50", "AP@0.5"), ("ap75", "AP@0.75"),
                 ("ap90", "AP@0.9"), ("f1_50", "F1@0.5"), ("dsb_score", "DSB score"))


def _fmt(value) -> str:
    if isinstance(value, bool) or value is None:
        return "–" if value is None else str(value)
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _card_section(card: str, title: str) -> str:
    """The body of ``## title`` in a model card (up to the next ``## ``), or ''."""
    match = re.search(rf"^## {re.escape(title)}\s*\n(.*?)(?=^## |\Z)", card, re.M | re.S)
    return match.group(1).strip() if match else ""


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _model_section(entry: dict) -> list[str]:
    name = entry["name"]
    folder = ZOO_DIR / "bundled" / name
    # Settings and about (nuclib.json) with the record (record.json): one flat view.
    config = {**_read_json(folder / "nuclib.json"), **_read_json(folder / "record.json")}
    card = (folder / "README.md").read_text() if (folder / "README.md").is_file() else ""
    lines = [f"## {name}", ""]
    description = entry.get("description") or config.get("description", "")
    if description:
        lines += [description, ""]
    lines += ["```python", "import nuclib", "", f'seg = nuclib.load_pretrained("{name}")',
              'image = nuclib.data.read_image("cells.tif")   # any size; 8/16-bit or float',
              "labels = seg.segment(image)                   # uint32, nuclei 1..N", "```", ""]

    architecture = config.get("architecture") or entry.get("architecture") or "?"
    args = config.get("architecture_args") or {}
    arg_text = ", ".join(f"{k}={v!r}" for k, v in args.items() if k != "head")
    facts = [
        ("Architecture", f"`nuclib.models.{architecture}({arg_text})`" if architecture != "?"
         else "?"),
        ("Head", f"`{config.get('head', '?')}`"),
        ("Parameters", _fmt(config.get("parameters"))),
        ("Input", f"{config.get('input_channels', '?')} channel(s), percentile normalization "
                  f"{config.get('normalize', {}).get('low', '?')}–"
                  f"{config.get('normalize', {}).get('high', '?')}, inversion "
                  f"`{config.get('invert', '?')}`"),
        ("Post-processing", f"`{json.dumps(config.get('postprocess', {}))}`"),
        ("Tiling", f"`{json.dumps(config.get('tiling', {}))}`"),
        ("Hub", f"`{entry.get('repo_id', '?')}` at revision `{entry.get('revision', '?')}`"),
        ("Aliases", ", ".join(f"`{a}`" for a in entry.get("aliases", [])) or "–"),
        ("Bundled", "yes (offline default)" if folder.is_dir() else "no (downloaded)"),
    ]
    if not config:  # not bundled: only the registry's facts are known here
        facts = [f for f in facts if f[0] in ("Architecture", "Hub", "Aliases", "Bundled")]
        facts.append(("Details", f"the model card on the Hub: `{entry.get('repo_id', '?')}`"))
    if config.get("diameter"):
        facts.append(("Nucleus size", f"trained at {config['diameter']:g}-pixel nuclei; images "
                                      "are zoomed to it (size measured, or `diameter=`)"))
    training = config.get("training", {})
    if training:
        stages = training_stages(training)
        if len(stages) > 1:
            facts.append(("Training", f"{training.get('data', '?')}; " + "; ".join(
                f"stage {i} `{stage.get('recipe_file', '?')}`"
                f"{' (widened from stage %d)' % (i - 1) if stage.get('widened') else ''}: "
                f"{run_length(stage)}"
                for i, stage in enumerate(stages, start=1))))
            facts.append(("Recipe", f"retrain with {retrain_commands(stages)}"))
        else:
            facts.append(("Training", f"{training.get('data', '?')}; {run_length(training)}"))
            if training.get("recipe_file"):
                facts.append(("Recipe", f"`{training['recipe_file']}` — retrain with "
                                        f"`nuclib train {training['recipe_file']}`"))
    lines += ["| property | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in facts] + [""]

    scores = config.get("scores", {})
    groups = scores.get("groups", {})
    if groups:
        lines += ["### Validation scores", ""]
        source = scores.get("data")
        if source:
            lines += [f"Measured with `nuclib.metrics` on {source}; post-processing "
                      "thresholds were tuned on the same split, so the numbers are "
                      "slightly optimistic.", ""]
        lines += ["| modality | " + " | ".join(t for _, t in SCORE_COLUMNS) + " |",
                  "|---|" + "---:|" * len(SCORE_COLUMNS)]
        for group, row in groups.items():
            lines.append(f"| {group} | " + " | ".join(_fmt(row.get(k)) for k, _ in SCORE_COLUMNS)
                         + " |")
        lines += ["", "AP@t is the pooled tp / (tp + fp + fn) at IoU threshold t; see "
                  "[Metrics](guide/metrics.md).", ""]
    elif entry.get("scores"):
        lines += ["### Validation scores", "", "| score | value |", "|---|---:|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in entry["scores"].items()] + [""]

    for title in ("Intended use", "Limitations"):
        body = _card_section(card, title)
        if body:
            lines += [f"### {title}", "", body, ""]
    return lines


def render() -> str:
    """The Markdown of the model zoo page."""
    registry = _read_json(ZOO_DIR / "registry.json").get("models", [])
    lines = [
        "# Model zoo",
        "",
        "<!-- Generated by docs/gen_zoo.py from nuclib/zoo/registry.json and the bundled "
        "models' nuclib.json; do not edit by hand. -->",
        "",
        "Pretrained models load by name with `nuclib.load_pretrained(name)`, on the command "
        "line with `nuclib segment ... --model NAME`, and are listed by `nuclib zoo list`. "
        "Every file is checked against the sha256 pinned in the registry before Keras reads "
        "it; see [Zoo and the Hub](guide/zoo.md).",
        "",
    ]
    if not registry:
        lines += ["!!! note \"No models registered yet\"",
                  "    The registry (`nuclib/zoo/registry.json`) is empty in this checkout. "
                  "Models appear here after `nuclib.zoo.registry.register_model` adds them.", ""]
        return "\n".join(lines)
    lines += ["| name | architecture | parameters | description |", "|---|---|---:|---|"]
    for entry in registry:
        folder = ZOO_DIR / "bundled" / entry["name"]
        config = {**_read_json(folder / "nuclib.json"), **_read_json(folder / "record.json")}
        anchor = entry["name"].lower()
        lines.append(f"| [{entry['name']}](#{anchor}) | "
                     f"`{config.get('architecture') or entry.get('architecture') or '?'}` | "
                     f"{_fmt(config.get('parameters'))} | {entry.get('description', '')} |")
    lines.append("")
    for entry in registry:
        lines += _model_section(entry)
    return "\n".join(lines).rstrip() + "\n"


def write_page(path: Path = PAGE) -> bool:
    """Write the page if its content changed (so ``mkdocs serve`` does not loop)."""
    text = render()
    if path.is_file() and path.read_text() == text:
        return False
    path.write_text(text)
    return True


# -- MkDocs hook -------------------------------------------------------------
def on_pre_build(config, **kwargs) -> None:  # noqa: ARG001  (MkDocs hook signature)
    """Refresh ``docs/zoo.md`` before the build reads the docs folder."""
    write_page()


if __name__ == "__main__":
    if "--check" in sys.argv[1:]:
        stale = not PAGE.is_file() or PAGE.read_text() != render()
        print("docs/zoo.md is stale; run python docs/gen_zoo.py" if stale else "docs/zoo.md is up to date")
        sys.exit(1 if stale else 0)
    print("wrote docs/zoo.md" if write_page() else "docs/zoo.md unchanged")
