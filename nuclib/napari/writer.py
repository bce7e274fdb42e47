"""napari writer: a Labels layer as a 16-bit TIFF, or 32-bit when its ids need it.

16 bits hold 65535 nuclei, which Fiji, QuPath and CellProfiler read as label
images; larger ids (whole slides) get 32 bits rather than being wrapped. The
file is written to a temporary name in the same folder and renamed, so a
crash leaves no half-written file. napari's save dialog asks before
replacing a file, so the writer replaces what the user confirmed.

Example:
    >>> import numpy as np
    >>> labels = np.zeros((4, 4), np.uint32); labels[1:3, 1:3] = 7
    >>> write_labels("nuclei.tif", labels, {})                      # doctest: +SKIP
    ['nuclei.tif']
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from nuclib._files import set_default_permissions

__all__ = ["write_labels", "label_dtype"]

SUFFIXES = (".tif", ".tiff")


def label_dtype(labels) -> np.dtype:
    """``uint16`` when every id fits 16 bits, else ``uint32``.

    Args:
        labels: an integer (or bool) array of ids >= 0.

    Returns:
        The dtype to store them in.

    Raises:
        ValueError: non-integer labels, negative ids, or ids beyond 32 bits.

    Example:
        >>> label_dtype(np.array([0, 65535])), label_dtype(np.array([0, 65536]))
        (dtype('uint16'), dtype('uint32'))
    """
    arr = np.asarray(labels)
    if arr.dtype == bool:
        return np.dtype(np.uint16)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"labels must be integers, got {arr.dtype}")
    if arr.size == 0:
        return np.dtype(np.uint16)
    low, high = int(arr.min()), int(arr.max())
    if low < 0:
        raise ValueError(f"labels have a negative id ({low}); expected ids >= 0")
    if high > np.iinfo(np.uint32).max:
        raise ValueError(f"id {high} does not fit 32 bits; relabel sequentially first")
    return np.dtype(np.uint16 if high <= np.iinfo(np.uint16).max else np.uint32)


def write_labels(path: str, data, meta: dict) -> list[str]:
    """Write one Labels layer's data as a TIFF (napari's single-layer writer).

    Args:
        path: the file, ending in ``.tif`` or ``.tiff``.
        data: the layer's integer array (2-D, or a stack).
        meta: the layer's attributes (unused: a label image carries only ids).

    Returns:
        ``[path]``.

    Raises:
        ValueError: another suffix, or labels ``label_dtype`` refuses.

    Example:
        >>> write_labels("out/nuclei.tif", labels, {})            # doctest: +SKIP
        ['out/nuclei.tif']
    """
    import tifffile

    target = Path(path)
    if target.suffix.lower() not in SUFFIXES:
        raise ValueError(f"cannot write labels to {target}: expected a .tif or .tiff name")
    arr = np.asarray(data)
    if arr.ndim < 2:
        raise ValueError(f"labels have shape {arr.shape}; expected an image (2-D or a stack)")
    arr = arr.astype(label_dtype(arr), copy=False)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=target.suffix, prefix=f".{target.stem}.",
                               dir=target.parent)
    os.close(fd)
    try:
        tifffile.imwrite(tmp, arr, compression="zlib", photometric="minisblack")
        set_default_permissions(tmp)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return [str(target)]
