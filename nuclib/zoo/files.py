"""Model directories on disk: checksums and loading (Keras Hub layout + nuclib.json)."""

from __future__ import annotations

import hashlib
from pathlib import Path

KERAS_FILES = ("config.json", "metadata.json", "model.weights.h5")


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
    import keras

    import nuclib.losses  # noqa: F401  (registers nuclib's serializable losses)
    import nuclib.metrics.training  # noqa: F401  (and its Keras training metrics)
    from nuclib.segmenter import read_config

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
    model = _load_keras_dir(directory, keras)
    return model, config


def _load_keras_dir(directory: Path, keras):
    # Built from config.json and filled from model.weights.h5 ourselves, rather
    # than keras.saving.load_model(dir): that treats extra files (nuclib.json,
    # README.md) as an assets folder, and we want exactly these two files read.
    import json

    config = json.loads((directory / "config.json").read_text())
    model = keras.saving.deserialize_keras_object(config, safe_mode=True)
    model.load_weights(directory / "model.weights.h5")
    return model
