"""Model directories: the one module that reads, writes and verifies them.

A model directory is the Keras Hub layout (``config.json``,
``metadata.json``, ``model.weights.h5``) plus:

- ``nuclib.json``: the settings the ``Segmenter`` runs with
  (``nuclib.config.SegmenterConfig``: head, normalization, post-processing,
  tiling, nucleus size), what the model is (description, architecture,
  parameters) and the sha256 of the other files;
- ``record.json``: what happened to it (scores on the validation images,
  training stages and history), which segmenting never reads;
- a model card (``README.md``).

Format 1 kept all of it in ``nuclib.json``; such directories still load,
their record taken from there.

Everything about that layout lives here: the file names, the format version,
the default settings and how they merge, reading, writing (atomically),
loading (``safe_mode=True``) and sha256 verification. ``nuclib.segmenter`` and
``nuclib.zoo`` import it; it imports neither.

Example:
    >>> info = check_model_dir("nuclib/zoo/bundled/dsb-3class")
    >>> info.settings["head"], sorted(info.record)
    ('three_class', ['notes', 'scores', 'speed', 'training'])
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

from nuclib._files import set_default_permissions
from nuclib._version import __version__
from nuclib.config import SegmenterConfig, split_config

CONFIG_FILE = "nuclib.json"
RECORD_FILE = "record.json"
FORMAT_VERSION = 2
# Format 1: the record inside nuclib.json.
READABLE_FORMATS = (1, 2)

# The default settings as a nuclib.json-style dict (``SegmenterConfig``'s defaults).
DEFAULT_CONFIG: dict[str, Any] = SegmenterConfig().to_dict()

KERAS_FILES = ("config.json", "metadata.json", "model.weights.h5")
# Every file of a (format 2) model directory but its card.
MODEL_FILES = (*KERAS_FILES, CONFIG_FILE, RECORD_FILE)
# Settings of the machine a model runs on, not of the model: not written to
# nuclib.json (a directory's engine comes from nuclib.engines.default_engine).
RUNTIME_KEYS = SegmenterConfig.RUNTIME


class ModelInfo(NamedTuple):
    """What a model directory says besides its network (``check_model_dir``).

    Attributes:
        settings: the stored settings (a dict for ``SegmenterConfig.from_dict``),
            without the machine's ``engine`` and ``precision``.
        about: what the model is (description, architecture, parameters, ...).
        record: scores and training history (``record.json``; format 1: from
            ``nuclib.json``).
        engine: the engine a format-1 ``nuclib.json`` named, else None.
    """

    settings: dict
    about: dict
    record: dict
    engine: str | None = None


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
    """Load ``(keras_model, ModelInfo)`` from a model directory, safely.

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
        ``(model, info)``: the ``keras.Model`` and its ``ModelInfo``.

    Raises:
        FileNotFoundError: missing directory or files.
        ChecksumError: a checksum mismatch (nothing is loaded).
        ValueError: an invalid ``nuclib.json`` (see ``read_config``).

    Example:
        >>> model, info = load_model_dir("nuclib/zoo/bundled/dsb-3class")  # doctest: +SKIP
    """
    config = check_model_dir(directory, verify=verify, expected=expected)
    return load_keras_model(directory), config


def check_model_dir(directory, *, verify: bool = True,
                    expected: dict[str, str] | None = None) -> ModelInfo:
    """Check a model directory without loading it: its files, their sha256, its settings.

    What ``load_model_dir`` checks before Keras reads anything; Keras is not
    imported. The settings are checked by building a ``SegmenterConfig``.

    Args:
        directory: a model directory.
        verify: check sha256 values (``expected``, else ``nuclib.json``'s ``files``).
        expected: pinned ``{filename: sha256}``, checked before ``nuclib.json`` is read.

    Returns:
        A ``ModelInfo``: settings, about, record.

    Raises:
        FileNotFoundError, ChecksumError, ValueError: as ``load_model_dir``.

    Example:
        >>> check_model_dir("nuclib/zoo/bundled/dsb-3class").settings["head"]
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
    stored = read_config(directory)
    if verify and expected is None:
        verify_files(directory, stored.get("files", {}))
    settings, about, record = split_config(stored)
    engine = settings.pop("engine", None)
    settings.pop("precision", None)
    try:
        SegmenterConfig.from_dict(settings)
    except ValueError as err:
        raise ValueError(f"{directory / CONFIG_FILE}: {err}") from None
    if stored["format_version"] >= 2:
        record = read_record(directory)
    return ModelInfo(settings, about, record, engine)


def read_record(directory) -> dict:
    """The record of a model directory: scores and training history (``record.json``).

    Format-1 directories keep it in ``nuclib.json``; it is read from there.
    A directory without one (a model saved before training) has ``{}``.

    Raises:
        ValueError: ``record.json`` is not a JSON object.

    Example:
        >>> round(read_record("nuclib/zoo/bundled/dsb-3class")["scores"]["ap50"], 3)
        0.742
    """
    path = Path(directory) / RECORD_FILE
    if not path.is_file():
        return split_config(read_config(directory))[2]
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(record, dict):
        raise ValueError(f"{path} must hold a JSON object (scores, training), got "
                         f"{type(record).__name__}")
    return record


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

    from nuclib.lazy_weights import initializers_deferred

    register_keras_objects()
    directory = Path(directory)
    config = json.loads((directory / "config.json").read_text())
    with initializers_deferred():  # the weights come from the file (JAX: 30x faster)
        model = keras.saving.deserialize_keras_object(config, safe_mode=True)
        model.load_weights(directory / "model.weights.h5")
    return model


def register_keras_objects() -> None:
    """Register every Keras object nuclib saves, so ``safe_mode`` loading finds them.

    Keras finds a custom class only once the module that defines it has
    been imported: in a fresh process, a Swin-UNet (its attention layers)
    or a checkpoint compiled with nuclib's losses would not load. Call this
    before ``keras.saving.load_model`` of anything nuclib wrote.

    Example:
        >>> register_keras_objects()
        >>> import keras
        >>> keras.saving.get_registered_object("nuclib>WindowAttention") is not None
        True
    """
    import nuclib.losses  # noqa: F401  (nuclib's serializable losses)
    import nuclib.metrics.training  # noqa: F401  (its Keras training metrics)
    import nuclib.models  # noqa: F401  (custom layers: Swin-UNet's windowed attention)


def read_config(directory) -> dict:
    """Read and validate ``nuclib.json`` of a model directory.

    Only the file's presence, JSON syntax and ``format_version`` are checked;
    the contents are returned as stored: settings, about and bookkeeping
    (``check_model_dir`` sorts and checks them; ``read_record`` reads the record).

    Args:
        directory: a model directory.

    Returns:
        The parsed ``nuclib.json`` as a dict.

    Raises:
        FileNotFoundError: the directory has no ``nuclib.json``.
        ValueError: invalid JSON, not a JSON object, or a ``format_version``
            not in ``READABLE_FORMATS``.

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
    if not isinstance(config, dict) or config.get("format_version") not in READABLE_FORMATS:
        raise ValueError(f"{path}: unsupported format_version "
                         f"{config.get('format_version') if isinstance(config, dict) else None}; "
                         f"expected one of {READABLE_FORMATS} (a newer nuclib wrote it?)")
    return config


def write_model_dir(model, config: SegmenterConfig | dict, directory, *,
                    about: dict | None = None, record: dict | None = None,
                    card: str | None = None, overwrite: bool = False) -> Path:
    """Write the Keras files, ``nuclib.json``, ``record.json`` and ``README.md``.

    The directory is assembled beside the target and renamed into place, so
    a crash never leaves a half-written model.

    Args:
        model: the Keras model to save (config and weights).
        config: the settings (a ``SegmenterConfig``, or a dict, which may be
            flat and mix in about and record keys: ``split_config``).
        directory: target folder; its parent is created if needed.
        about: what the model is; ``nuclib_version``, ``parameters`` (the
            model's parameter count) and ``files`` (sha256 of the Keras files
            and of ``record.json``) are added to ``nuclib.json``.
        record: scores and training history, written to ``record.json``.
        card: text of ``README.md``; default: ``model_card`` of all of it.
        overwrite: replace a non-empty ``directory``.

    Returns:
        ``directory`` as a ``Path``.

    Raises:
        FileExistsError: ``directory`` exists and is not empty, and not ``overwrite``.
        ValueError: a setting out of range (``SegmenterConfig``).

    Example:
        >>> write_model_dir(model, {"name": "my-model", "head": "binary"}, "models/my-model")  # doctest: +SKIP
    """
    import keras

    from nuclib.model_card import model_card

    if isinstance(config, SegmenterConfig):
        settings, flat_about, flat_record = config, {}, {}
    else:
        settings, flat_about, flat_record = split_config(config)
        settings = SegmenterConfig.from_dict(settings)
    about = {**flat_about, **(about or {})}
    record = {**flat_record, **(record or {})}
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
        _write_json(tmp / RECORD_FILE, record)
        stored = {"format_version": FORMAT_VERSION, **settings.to_dict(runtime=False), **about,
                  "nuclib_version": __version__,
                  "parameters": int(model.count_params()) if hasattr(model, "count_params")
                  else None,
                  "files": {name: sha256(tmp / name) for name in (*KERAS_FILES, RECORD_FILE)}}
        _write_json(tmp / CONFIG_FILE, stored)
        (tmp / "README.md").write_text(card if card is not None
                                       else model_card({**stored, **record}))
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


def _write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=2, default=_json_default) + "\n")


def _json_default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
