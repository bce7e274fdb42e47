"""Model directories: the one module that reads, writes and verifies them.

A model directory is the Keras Hub layout (``config.json``,
``metadata.json``, ``model.weights.h5``) plus ``nuclib.json`` (what the
``Segmenter`` needs to use the network: head, normalization, post-processing,
tiling, nucleus size; the sha256 of the Keras files; for trained models their
scores and training record) and a model card (``README.md``).

Everything about that layout lives here: the file names, the format version,
the default settings and how they merge, reading, writing (atomically),
loading (``safe_mode=True``) and sha256 verification. ``nuclib.segmenter`` and
``nuclib.zoo`` import it; it imports neither.

Example:
    >>> from nuclib.model_dir import DEFAULT_CONFIG, merge_config
    >>> merge_config(DEFAULT_CONFIG, {"head": "binary"})["tiling"]["tile_size"]
    1024
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from nuclib._files import set_default_permissions
from nuclib._version import __version__

CONFIG_FILE = "nuclib.json"
FORMAT_VERSION = 1

DEFAULT_CONFIG: dict[str, Any] = {
    "format_version": FORMAT_VERSION,
    "name": "model",
    "head": "three_class",
    "input_channels": 1,
    "normalize": {"low": 1.0, "high": 99.8},
    "invert": "auto",
    "postprocess": {},
    "tiling": {"tile_size": 1024, "overlap": None, "batch_size": 1, "blend": "crop"},
    # Median nucleus diameter (pixels) the model was trained at; None: each
    # image at its own scale. ``estimate_side``: the size estimate looks at a
    # central window of at most this many pixels per side.
    "diameter": None,
    "estimate_side": 1024,
    # Test-time augmentation: average the 8 rotations / mirrors (8x the time).
    "tta": False,
    # What runs the network: "keras", "openvino", "onnxruntime" or "auto"
    # (openvino when installed, else keras); see nuclib.engines. A Segmenter
    # built in code runs Keras; one loaded from a directory (load_pretrained,
    # from_directory) nuclib.engines.default_engine(), "auto" unless set.
    "engine": "keras",
    # The OpenVINO engine's arithmetic: "auto" (bf16 where the CPU computes it
    # natively, else f32), "f32" or "bf16"; see nuclib.engines.
    "precision": "auto",
}

KERAS_FILES = ("config.json", "metadata.json", "model.weights.h5")
# Settings of the machine a model runs on, not of the model: not written to
# nuclib.json (a directory's engine comes from nuclib.engines.default_engine).
RUNTIME_KEYS = ("engine", "precision")


class ChecksumError(ValueError):
    """A file's sha256 differs from the pinned value: the file was corrupted or tampered with.

    A ``ValueError`` subclass, raised by ``verify_files`` (and so by
    ``load_model_dir`` and ``load_pretrained``) before anything is loaded.

    Example:
        >>> try:                                                          # doctest: +SKIP
        ...     verify_files("models/dsb-3class", {"model.weights.h5": "0" * 64})
        ... except ChecksumError as err:
        ...     print("corrupted:", err)
    """


def sha256(path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks.

    Args:
        path: file to hash.
        chunk: bytes read at a time.

    Returns:
        The 64-character lowercase hex digest.

    Example:
        >>> sha256("nuclib/zoo/registry.json")   # doctest: +SKIP
        '3f5a...'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_files(directory, expected: dict[str, str]) -> None:
    """Check every ``{filename: sha256}`` in ``expected`` inside ``directory``.

    Files of ``directory`` that ``expected`` does not list are not checked;
    an empty ``expected`` checks nothing.

    Args:
        directory: folder holding the files.
        expected: ``{filename: hex sha256}``.

    Raises:
        FileNotFoundError: a listed file is missing.
        ChecksumError: a file's sha256 differs (names the file and both hashes).

    Example:
        >>> verify_files("models/dsb-3class", {"model.weights.h5": "ab12..."})  # doctest: +SKIP
    """
    directory = Path(directory)
    for name, want in expected.items():
        path = directory / name
        if not path.is_file():
            raise FileNotFoundError(f"model file missing: {path}")
        got = sha256(path)
        if got != want:
            raise ChecksumError(f"sha256 mismatch for {path}: expected {want}, got {got}; the "
                                "file is corrupted or was modified. Delete it (or the cache "
                                "entry) and download again.")


def load_model_dir(directory, *, verify: bool = True, expected: dict[str, str] | None = None):
    """Load ``(keras_model, nuclib_config)`` from a model directory, safely.

    Checksums (``expected``, else the ``files`` table of ``nuclib.json``) are
    verified before Keras reads anything; loading uses ``safe_mode=True``.
    Hashes taken from ``nuclib.json`` catch corruption of the Keras files,
    but not a directory whose ``nuclib.json`` was rewritten with them.

    Args:
        directory: a model directory (``config.json``, ``metadata.json``,
            ``model.weights.h5``, ``nuclib.json``).
        verify: check sha256 values before loading.
        expected: pinned ``{filename: sha256}`` (e.g. from the registry);
            checked before ``nuclib.json`` is read.

    Returns:
        ``(model, config)``: the ``keras.Model`` and the ``nuclib.json`` dict.

    Raises:
        FileNotFoundError: missing directory or files.
        ChecksumError: a checksum mismatch (nothing is loaded).
        ValueError: an invalid ``nuclib.json`` (see ``read_config``).

    Example:
        >>> model, config = load_model_dir("nuclib/zoo/bundled/dsb-3class")  # doctest: +SKIP
    """
    config = check_model_dir(directory, verify=verify, expected=expected)
    return load_keras_model(directory), config


def check_model_dir(directory, *, verify: bool = True,
                    expected: dict[str, str] | None = None) -> dict:
    """Check a model directory without loading it: its files, their sha256, ``nuclib.json``.

    What ``load_model_dir`` checks before Keras reads anything; Keras is not
    imported.

    Args:
        directory: a model directory.
        verify: check sha256 values (``expected``, else ``nuclib.json``'s ``files``).
        expected: pinned ``{filename: sha256}``, checked before ``nuclib.json`` is read.

    Returns:
        The ``nuclib.json`` dict.

    Raises:
        FileNotFoundError, ChecksumError, ValueError: as ``load_model_dir``.

    Example:
        >>> check_model_dir("nuclib/zoo/bundled/dsb-3class")["head"]   # doctest: +SKIP
        'three_class'
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"model directory not found: {directory}")
    missing = [f for f in KERAS_FILES if not (directory / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{directory} lacks {', '.join(missing)}; expected the Keras "
                                f"Hub layout ({', '.join(KERAS_FILES)}) plus nuclib.json")
    if verify and expected is not None:
        verify_files(directory, expected)  # pinned hashes: check before reading anything
    config = read_config(directory)
    if verify and expected is None:
        verify_files(directory, config.get("files", {}))
    return config


def keras_files_digest(directory) -> str:
    """sha256 over the Keras files of a model directory: equal digests, equal networks.

    The key under which ``nuclib.engines`` finds the directory's converted
    network without loading Keras. Computed from the files themselves (not
    from ``nuclib.json``'s table, which ``verify=False`` does not check).

    Example:
        >>> len(keras_files_digest("nuclib/zoo/bundled/dsb-3class"))   # doctest: +SKIP
        64
    """
    digest = hashlib.sha256()
    for name in KERAS_FILES:
        digest.update(f"{name}:{sha256(Path(directory) / name)}\n".encode())
    return digest.hexdigest()


def load_keras_model(directory):
    """The Keras model of a model directory (``safe_mode=True``), unverified: call
    ``check_model_dir`` first.

    Built from ``config.json`` and filled from ``model.weights.h5`` ourselves,
    rather than ``keras.saving.load_model(dir)``: that treats extra files
    (``nuclib.json``, ``README.md``) as an assets folder, and we want exactly
    these two files read.

    Example:
        >>> load_keras_model("nuclib/zoo/bundled/dsb-3class").name   # doctest: +SKIP
        'unet'
    """
    import keras

    import nuclib.losses  # noqa: F401  (registers nuclib's serializable losses)
    import nuclib.metrics.training  # noqa: F401  (and its Keras training metrics)

    directory = Path(directory)
    config = json.loads((directory / "config.json").read_text())
    model = keras.saving.deserialize_keras_object(config, safe_mode=True)
    model.load_weights(directory / "model.weights.h5")
    return model


def merge_config(base: dict, update: dict) -> dict:
    """``update`` merged into a deep copy of ``base``, tables (dicts) key by key.

    Example:
        >>> merge_config({"tiling": {"tile_size": 1024, "blend": "crop"}},
        ...              {"tiling": {"tile_size": 256}})
        {'tiling': {'tile_size': 256, 'blend': 'crop'}}
    """
    out = copy.deepcopy(base)
    for key, value in (update or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_config(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_config(directory) -> dict:
    """Read and validate ``nuclib.json`` of a model directory.

    Only the file's presence, JSON syntax and ``format_version`` are checked;
    the settings are returned as stored (not merged over ``DEFAULT_CONFIG``).

    Args:
        directory: a model directory.

    Returns:
        The parsed ``nuclib.json`` as a dict.

    Raises:
        FileNotFoundError: the directory has no ``nuclib.json``.
        ValueError: invalid JSON, not a JSON object, or a ``format_version``
            other than ``FORMAT_VERSION``.

    Example:
        >>> read_config("nuclib/zoo/bundled/dsb-3class")["head"]   # doctest: +SKIP
        'three_class'
    """
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; expected a nuclib model directory "
                                "(config.json, metadata.json, model.weights.h5, nuclib.json)")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(config, dict) or config.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported format_version "
                         f"{config.get('format_version') if isinstance(config, dict) else None}; "
                         f"expected {FORMAT_VERSION}")
    return config


def write_model_dir(model, config: dict, directory, *, card: str | None = None,
                    overwrite: bool = False) -> Path:
    """Write ``config.json``, ``metadata.json``, ``model.weights.h5``, ``nuclib.json``
    (with the sha256 of the Keras files) and ``README.md`` into ``directory``.

    The directory is assembled beside the target and renamed into place, so
    a crash never leaves a half-written model.

    Args:
        model: the Keras model to save (config and weights).
        config: nuclib settings, merged over ``DEFAULT_CONFIG``;
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

    from nuclib.model_card import model_card

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
        full = merge_config(DEFAULT_CONFIG, config)
        for key in RUNTIME_KEYS:  # choices of the machine that runs it, not of the model
            full.pop(key, None)
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
