"""Downloading from and uploading to the Hugging Face Hub (``huggingface_hub``).

Downloads go through the Hub cache (``HF_HOME`` / ``cache_dir``), honour
``HF_HUB_OFFLINE=1`` and ``HF_ENDPOINT``, and are verified against pinned
sha256 values by the caller before anything is loaded.
"""

from __future__ import annotations

import os
from pathlib import Path

from nuclib.model_dir import CONFIG_FILE, KERAS_FILES, RECORD_FILE, read_config


def download_files(repo_id: str, filenames, *, revision: str | None = None,
                   cache_dir=None) -> Path:
    """Download ``filenames`` of a Hub model repo into the cache; return the snapshot folder.

    ``HF_ENDPOINT``, ``HF_HUB_OFFLINE``, ``HF_HUB_CACHE`` and ``HF_HOME`` are
    read at call time.

    Args:
        repo_id: Hub repository, ``"owner/name"``.
        filenames: files to fetch (already cached files are not downloaded again).
        revision: branch, tag or commit; default the repo's default branch.
        cache_dir: Hugging Face cache folder; default from ``HF_HUB_CACHE``
            or ``HF_HOME``, else huggingface_hub's default.

    Returns:
        The snapshot folder holding the files (``None`` if ``filenames`` is
        empty).

    Raises:
        RuntimeError: the Hub cannot be reached and the files are not cached
            (the message says how to work offline), or it refused a request
            (e.g. unknown repo, file or revision, no access).

    Example:
        >>> folder = download_files("nuclib/dsb-3class", ["nuclib.json"])   # doctest: +SKIP
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    from nuclib._version import __version__

    # Read the environment at call time (huggingface_hub reads it once, at import).
    endpoint = os.environ.get("HF_ENDPOINT") or None
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    cache_dir = cache_dir or _cache_dir_from_env()
    folder = None
    for name in filenames:
        try:
            path = hf_hub_download(repo_id, name, revision=revision, cache_dir=cache_dir,
                                   endpoint=endpoint, local_files_only=offline,
                                   library_name="nuclib", library_version=__version__)
        except LocalEntryNotFoundError as err:
            raise RuntimeError(f"cannot download {name} of {repo_id} (revision {revision}) and "
                               "it is not in the cache: the Hub is unreachable or "
                               "HF_HUB_OFFLINE=1 is set. Connect once, or use "
                               "source='bundled' or a local directory.") from err
        except HfHubHTTPError as err:
            raise RuntimeError(f"the Hub refused {name} of {repo_id} (revision {revision}): "
                               f"{err}") from err
        folder = Path(path).parent
    return folder


def _cache_dir_from_env():
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None  # huggingface_hub's default (~/.cache/huggingface/hub)


def download_model(repo_id: str, *, revision: str | None = None, cache_dir=None) -> Path:
    """Download a model repo in nuclib's layout (Keras files, ``nuclib.json``, ``record.json``).

    Args:
        repo_id: Hub repository, ``"owner/name"``.
        revision: branch, tag or commit; default the repo's default branch.
        cache_dir: Hugging Face cache folder (see ``download_files``).

    Returns:
        The snapshot folder with ``config.json``, ``metadata.json``,
        ``model.weights.h5``, ``nuclib.json`` and, for format 2, ``record.json``
        (format 1 kept the record inside ``nuclib.json``).

    Raises:
        RuntimeError: see ``download_files``.

    Example:
        >>> folder = download_model("someone/my-nuclei-model")   # doctest: +SKIP
    """
    folder = download_files(repo_id, (*KERAS_FILES, CONFIG_FILE), revision=revision,
                            cache_dir=cache_dir)
    if read_config(folder)["format_version"] >= 2:
        download_files(repo_id, (RECORD_FILE,), revision=revision, cache_dir=cache_dir)
    return folder


def push_model(directory, repo_id: str, *, private: bool = False, token: str | None = None,
               commit_message: str = "Upload nuclib model") -> str:
    """Upload a model directory to the Hub; return the new commit's revision.

    Needs network access and a write token (``huggingface-cli login`` or ``HF_TOKEN``).
    Put the returned revision and the file hashes into the registry to pin it.
    The repository is created if needed; every file of ``directory`` is
    uploaded as is (nothing is checked).

    Args:
        directory: a model directory.
        repo_id: Hub repository, ``"owner/name"``.
        private: create the repository as private (no effect on an existing one).
        token: Hub token; default the logged-in one or ``HF_TOKEN``.
        commit_message: message of the upload commit.

    Returns:
        The commit hash of the upload (the string form of the commit info
        if it has none).

    Example:
        >>> push_model("runs/dsb-3class/model", "nuclib/dsb-3class")   # doctest: +SKIP
    """
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    info = api.upload_folder(folder_path=str(directory), repo_id=repo_id,
                             commit_message=commit_message)
    return getattr(info, "oid", None) or str(info)
