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

from nuclib.model_dir import MODEL_FILES, ChecksumError, sha256, verify_files
from nuclib.zoo import registry as _registry
from nuclib.zoo.registry import PretrainedEntry, resolve_name

__all__ = ["load_pretrained", "list_pretrained", "resolve_name", "looks_like_a_path",
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


# Files of a model directory: a path that ends in one of them means a folder.


def looks_like_a_path(text: str) -> bool:
    """Whether a model argument can only be meant as a path, never as a zoo name.

    True when it holds a path separator (``/`` or ``\\``), starts with ``.``
    or ``~``, or ends in a model file name (``MODEL_FILES``) or ``.keras``.

    Args:
        text: the argument as given.

    Returns:
        True for path-like text.

    Example:
        >>> looks_like_a_path("runs/my-model/model"), looks_like_a_path("dsb-3class")
        (True, False)
    """
    return (any(sep in text for sep in ("/", "\\", os.sep)) or text.startswith((".", "~"))
            or text.endswith(MODEL_FILES + (".keras",)))


def _not_a_model_directory(text: str, path: Path) -> FileNotFoundError:
    """The error for a path that is no model directory, naming what is wrong with it."""
    expected = (f"expected a model directory ({', '.join(MODEL_FILES)}), a zoo name or "
                "'hf://owner/repo'")
    if path.exists():
        hint = f"; pass its folder {str(path.parent)!r}" if path.name in MODEL_FILES else ""
        return FileNotFoundError(f"model {text!r} is a file, not a directory{hint}; {expected}")
    return FileNotFoundError(f"model directory {text!r} does not exist{_missing_part(path)}; "
                             f"{expected}")


def _missing_part(path: Path) -> str:
    """``" (no 'runs/my-modle'; did you mean 'runs/my-model/model'?)"``, or ``""``."""
    import difflib

    parts = path.parts
    for i, part in enumerate(parts):
        head = Path(*parts[: i + 1])
        if head.exists():
            continue
        parent = head.parent  # "." for the first part of a relative path
        try:
            siblings = sorted(p.name for p in parent.iterdir() if p.is_dir())
        except OSError:
            siblings = []
        for close in difflib.get_close_matches(part, siblings, n=3):
            candidate = parent.joinpath(close, *parts[i + 1:])
            if candidate.is_dir():
                return f" (no {str(head)!r}; did you mean {str(candidate)!r}?)"
        # The first missing part, unless it is the whole path the message names anyway.
        return f" (no {str(head)!r})" if head != path else ""
    return ""


def load_pretrained(name_or_path, *, source: str = "auto", revision: str | None = None,
                    cache_dir=None, engine: str | None = None):
    """Load a pretrained ``Segmenter``.

    Args:
        name_or_path: a zoo name or alias (``"dsb-3class"``), ``"hf://owner/repo"`` for any
            Hub repo in nuclib's layout, or a local model directory (``~`` is
            expanded).
        source: for zoo names: ``"bundled"`` (the copy shipped in the package,
            offline), ``"hub"`` (download through the Hugging Face cache), or
            ``"auto"`` (bundled if present, else hub).
        revision: Hub revision; defaults to the registry's pinned revision.
        cache_dir: Hugging Face cache folder (default: ``HF_HOME``).
        engine: what runs the network: ``"keras"``, ``"openvino"``,
            ``"onnxruntime"`` or ``"auto"`` (see ``nuclib.engines``); default:
            ``$NUCLIB_ENGINE``, else ``"auto"``: OpenVINO (installed with
            nuclib), in bfloat16 where the CPU computes it. Its converted
            network is cached on disk, and a later process runs it without
            importing Keras (``Segmenter.from_directory``).

    Returns:
        A ``nuclib.Segmenter``.

    Raises:
        KeyError: unknown zoo name (the message suggests the closest and lists
            the known ones).
        FileNotFoundError: a path that is not a model directory: one that
            does not exist, when the argument looks like a path (see
            ``looks_like_a_path``), or a file.
        ValueError: bad ``source``, or an unknown engine or one whose package is
            not installed (checked before anything is loaded).
        nuclib.zoo.ChecksumError: a file differs from its pinned sha256;
            nothing is loaded.
        FileNotFoundError / RuntimeError: missing files, or the Hub unreachable
            and nothing cached.

    Example:
        >>> seg = load_pretrained("dsb-3class")                 # doctest: +SKIP
        >>> seg = load_pretrained("hf://someone/nuclei-model")  # doctest: +SKIP
        >>> seg = load_pretrained("models/my-model")            # doctest: +SKIP
        >>> seg = load_pretrained("dsb-3class", engine="openvino")  # doctest: +SKIP
    """
    from nuclib.segmenter import Segmenter
    from nuclib.zoo.hub import download_model

    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; expected one of {SOURCES}")
    if engine is not None:
        from nuclib.engines import check_engine

        check_engine(engine)
    text = os.fspath(name_or_path)
    if text.startswith("hf://"):
        folder = download_model(text[len("hf://"):], revision=revision, cache_dir=cache_dir)
        return Segmenter.from_directory(folder, engine=engine)
    path = Path(text).expanduser()
    if path.is_dir():
        return Segmenter.from_directory(path, engine=engine)
    if looks_like_a_path(text):  # not a zoo name: say what is wrong with the path
        raise _not_a_model_directory(text, path)
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
    return Segmenter.from_directory(folder, engine=engine, expected=expected)
