"""Pretrained models: the registry, verified loading, Hub download and upload.

Example:
    >>> import nuclib
    >>> [m["name"] for m in nuclib.list_pretrained()]   # doctest: +SKIP
    ['dsb-3class', 'dsb-binary-mobilenet']
    >>> seg = nuclib.load_pretrained("dsb-3class")      # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

from nuclib.zoo.files import ChecksumError, sha256, verify_files
from nuclib.zoo import registry as _registry
from nuclib.zoo.registry import PretrainedEntry, resolve_name

__all__ = ["load_pretrained", "list_pretrained", "resolve_name",
           "PretrainedEntry", "ChecksumError", "sha256", "verify_files", "SOURCES"]

SOURCES = ("auto", "bundled", "hub")


def list_pretrained() -> list[dict]:
    """Names, one-line descriptions and headline scores of the zoo models.

    Returns:
        One dict per registry entry, in registry order, with ``name``,
        ``description``, ``aliases``, ``architecture``, ``repo_id``,
        ``revision``, ``bundled`` (whether a copy ships in the package) and
        ``scores`` (``{"<group>_ap50": ..., "<group>_dsb_score": ...}``).

    Example:
        >>> list_pretrained()[0]["name"]   # doctest: +SKIP
        'dsb-3class'
    """
    return [{"name": e.name, "description": e.description, "aliases": list(e.aliases),
             "architecture": e.architecture, "repo_id": e.repo_id, "revision": e.revision,
             "bundled": e.bundled_dir.is_dir(), "scores": dict(e.scores)}
            for e in _registry.load_registry().values()]


def load_pretrained(name_or_path, *, source: str = "auto", revision: str | None = None,
                    cache_dir=None):
    """Load a pretrained ``Segmenter``.

    Args:
        name_or_path: a zoo name or alias (``"dsb-3class"``), ``"hf://owner/repo"`` for any
            Hub repo in nuclib's layout, or a local model directory.
        source: for zoo names: ``"bundled"`` (the copy shipped in the package,
            offline), ``"hub"`` (download through the Hugging Face cache), or
            ``"auto"`` (bundled if present, else hub).
        revision: Hub revision; defaults to the registry's pinned revision.
        cache_dir: Hugging Face cache folder (default: ``HF_HOME``).

    Returns:
        A ``nuclib.Segmenter``.

    Raises:
        KeyError: unknown zoo name (the message lists the known ones).
        ValueError: bad ``source``.
        nuclib.zoo.ChecksumError: a file differs from its pinned sha256;
            nothing is loaded.
        FileNotFoundError / RuntimeError: missing files, or the Hub unreachable
            and nothing cached.

    Example:
        >>> seg = load_pretrained("dsb-3class")                 # doctest: +SKIP
        >>> seg = load_pretrained("hf://someone/nuclei-model")  # doctest: +SKIP
        >>> seg = load_pretrained("models/my-model")            # doctest: +SKIP
    """
    from nuclib.segmenter import Segmenter
    from nuclib.zoo.files import load_model_dir
    from nuclib.zoo.hub import download_model

    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; expected one of {SOURCES}")
    text = os.fspath(name_or_path)
    if text.startswith("hf://"):
        folder = download_model(text[len("hf://"):], revision=revision, cache_dir=cache_dir)
        model, config = load_model_dir(folder, verify=True)
        return Segmenter(model, config)
    path = Path(text)
    if path.is_dir():
        model, config = load_model_dir(path, verify=True)
        return Segmenter(model, config)
    entry = resolve_name(text)
    bundled = entry.bundled_dir
    if source == "bundled" or (source == "auto" and bundled.is_dir() and revision is None):
        if not bundled.is_dir():
            raise FileNotFoundError(f"no bundled copy of {entry.name} in this installation; "
                                    "use source='hub'")
        folder = bundled
    else:
        from nuclib.zoo.hub import download_files

        folder = download_files(entry.repo_id, list(entry.files),
                                revision=revision or entry.revision, cache_dir=cache_dir)
    expected = entry.files if (revision is None or revision == entry.revision) else None
    model, config = load_model_dir(folder, verify=True, expected=expected)
    return Segmenter(model, config)
