"""The registry of pretrained models: name → Hub repo, pinned revision, file hashes.

The table lives in ``registry.json`` beside this module (written by
``register_model`` after training) so hashes are data, not code.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from nuclib.model_dir import sha256


@dataclass(frozen=True)
class PretrainedEntry:
    """One pretrained model.

    Attributes:
        name: canonical name, e.g. ``"dsb-3class"``.
        description: one line for ``list_pretrained``.
        repo_id: Hugging Face Hub repository, e.g. ``"nuclib/dsb-3class"``.
        revision: pinned Hub revision (commit hash or tag).
        files: ``{filename: sha256}`` of every file that is loaded.
        aliases: other names that resolve to this entry.
        architecture: model factory name.
        scores: headline validation scores (for listings).

    Example:
        >>> entry = PretrainedEntry("my-model", "a test entry", "me/my-model", "main")
        >>> entry.aliases, entry.bundled_dir.name
        ((), 'my-model')
    """

    name: str
    description: str
    repo_id: str
    revision: str
    files: dict = field(default_factory=dict)
    aliases: tuple = ()
    architecture: str = ""
    scores: dict = field(default_factory=dict)

    @property
    def bundled_dir(self) -> Path:
        """Where the copy shipped inside the package lives (may not exist)."""
        return Path(str(resources.files("nuclib.zoo"))) / "bundled" / self.name


REGISTRY_FILE = "registry.json"


@lru_cache(maxsize=1)
def load_registry() -> dict[str, PretrainedEntry]:
    """``{name: PretrainedEntry}`` of all zoo models (read once).

    The result is cached; ``load_registry.cache_clear()`` re-reads the file
    (``register_model`` does so after rewriting it).

    Returns:
        ``{name: PretrainedEntry}`` in the order of ``registry.json``.

    Example:
        >>> "dsb-3class" in load_registry()   # doctest: +SKIP
        True
    """
    text = (resources.files("nuclib.zoo") / REGISTRY_FILE).read_text()
    entries = {}
    for item in json.loads(text)["models"]:
        item["aliases"] = tuple(item.get("aliases", ()))
        entries[item["name"]] = PretrainedEntry(**item)
    return entries


def resolve_name(name: str) -> PretrainedEntry:
    """Look a name or alias up in the registry.

    Args:
        name: a canonical name or an alias (exact, case-sensitive).

    Returns:
        The matching ``PretrainedEntry``.

    Raises:
        KeyError: unknown name; the message suggests the closest one and lists
            the known names, each with its aliases.

    Example:
        >>> resolve_name("dsb-3class").repo_id   # doctest: +SKIP
        'nuclib/dsb-3class'
    """
    table = load_registry()
    if name in table:
        return table[name]
    for entry in table.values():
        if name in entry.aliases:
            return entry
    raise KeyError(unknown_name_message(name, table))


def unknown_name_message(name: str, table: dict[str, PretrainedEntry]) -> str:
    """The error for a name that is not in the registry: the closest name, then all of them.

    Args:
        name: the name that was not found.
        table: ``{name: PretrainedEntry}``, as from ``load_registry``.

    Returns:
        ``"unknown pretrained model 'x'; did you mean 'y'? Known names: ..."``,
        the suggestion (``difflib.get_close_matches``, ignoring case) only when
        one is close; aliases are listed after their model as aliases.

    Example:
        >>> entry = PretrainedEntry("dsb-3class", "", "nuclib/dsb-3class", "main",
        ...                         aliases=("default",))
        >>> unknown_name_message("dsb3class", {"dsb-3class": entry}).split(" Known")[0]
        "unknown pretrained model 'dsb3class'; did you mean 'dsb-3class'?"
    """
    import difflib

    owner = {e.name: e.name for e in table.values()}
    owner.update({alias: e.name for e in table.values() for alias in e.aliases})
    lowered = {candidate.lower(): candidate for candidate in owner}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1)
    hint = "."
    if close:
        match = lowered[close[0]]
        alias = f" (an alias of {owner[match]!r})" if owner[match] != match else ""
        hint = f"; did you mean {match!r}{alias}?"
    known = ", ".join(_with_aliases(e) for e in sorted(table.values(), key=lambda e: e.name))
    return (f"unknown pretrained model {name!r}{hint} Known names: {known}. Pass a local "
            "model directory or 'hf://owner/repo' for other models.")


def _with_aliases(entry: PretrainedEntry) -> str:
    """``"dsb-3class (aliases: default, unet-3class)"``, or just the name."""
    if not entry.aliases:
        return entry.name
    word = "alias" if len(entry.aliases) == 1 else "aliases"
    return f"{entry.name} ({word}: {', '.join(sorted(entry.aliases))})"


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

    from nuclib.model_dir import MODEL_FILES, check_model_dir

    model_dir = Path(model_dir)
    info = check_model_dir(model_dir)
    package = Path(str(resources.files("nuclib.zoo")))
    registry_path = Path(registry_file) if registry_file else package / "registry.json"
    files = {f: sha256(model_dir / f) for f in MODEL_FILES if (model_dir / f).is_file()}
    scores = info.record.get("scores", {})
    headline = {}
    for group, row in scores.get("groups", {}).items():
        for key in ("ap50", "dsb_score"):
            if key in row:
                headline[f"{group}_{key}"] = row[key]
    entry = {"name": name, "description": description, "repo_id": repo_id,
             "revision": revision, "files": files, "aliases": list(aliases),
             "architecture": info.about.get("architecture", ""), "scores": headline}
    table = json.loads(registry_path.read_text()) if registry_path.is_file() else {"models": []}
    table["models"] = [m for m in table["models"] if m["name"] != name] + [entry]
    table["models"].sort(key=lambda m: m["name"])
    registry_path.write_text(json.dumps(table, indent=2) + "\n")
    if bundle:
        target = package / "bundled" / name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(model_dir, target)
    load_registry.cache_clear()
    return entry
