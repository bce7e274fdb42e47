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
