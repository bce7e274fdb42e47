"""Small file-system helpers shared by the writers (atomic outputs)."""

from __future__ import annotations

import os


def _umask() -> int:
    # os.umask can only be read by setting it; restore it at once.
    mask = os.umask(0)
    os.umask(mask)
    return mask


def set_default_permissions(path, *, directory: bool = False) -> None:
    """Give a file made by ``tempfile.mkstemp``/``mkdtemp`` (0600/0700) the permissions
    a plain ``open``/``mkdir`` would have given it (0666/0777 minus the umask).

    Example:
        >>> import tempfile
        >>> fd, tmp = tempfile.mkstemp(); os.close(fd)
        >>> set_default_permissions(tmp)
        >>> oct(os.stat(tmp).st_mode & 0o777) == oct(0o666 & ~_umask())
        True
    """
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def write_atomically(path, write):
    """Write a file through ``write(temporary_path)`` and rename it into place.

    The temporary file sits beside ``path`` as ``.<stem>.<8 characters><suffix>``
    (the names a crashed writer's leftovers are recognised by) with the
    permissions a plain ``open`` gives, so a crash never leaves a half-written
    file under the final name.

    Args:
        path: the file to write; its folder is created if needed.
        write: ``write(tmp)`` writes the whole file to the path ``tmp``.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        Whatever ``write`` raises; the temporary file is removed first.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> out = Path(tempfile.mkdtemp()) / "a.txt"
        >>> write_atomically(out, lambda tmp: Path(tmp).write_text("done")).read_text()
        'done'
    """
    import tempfile
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=path.suffix.lower(), prefix=f".{path.stem}.",
                               dir=path.parent)
    os.close(fd)
    set_default_permissions(tmp)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
