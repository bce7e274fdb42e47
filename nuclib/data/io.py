"""Reading and writing microscopy images and instance label images."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cv2
import numpy as np
import tifffile

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
_TIFF = (".tif", ".tiff")


def read_image(path) -> np.ndarray:
    """Read an image file as stored: HxW or HxWxC (RGB order, alpha dropped), any bit depth.

    Args:
        path: a PNG, JPEG, BMP or TIFF file.

    Returns:
        The pixel array with its stored dtype (uint8, uint16, float32, ...).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file cannot be decoded; the message names the file.

    Example:
        >>> img = read_image("examples/data/sample.png")   # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        if path.suffix.lower() in _TIFF:
            arr = tifffile.imread(path)
        else:
            arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if arr is None:
                raise ValueError("OpenCV could not decode it")
            if arr.ndim == 3:
                code = cv2.COLOR_BGRA2RGB if arr.shape[2] == 4 else cv2.COLOR_BGR2RGB
                arr = cv2.cvtColor(arr, code)
    except (ValueError, OSError, tifffile.TiffFileError) as err:
        raise ValueError(f"cannot read image {path}: {err}; expected a readable "
                         f"{'/'.join(s[1:] for s in IMAGE_SUFFIXES)} file") from err
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[..., :3]
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise ValueError(f"image {path} has shape {arr.shape}; expected HxW or HxWxC")
    return arr


def read_labels(path) -> np.ndarray:
    """Read an instance label image (0 = background) as int32 HxW.

    Raises:
        ValueError: unreadable file, not single-channel, or float values; the
            message names the file.

    Example:
        >>> labels = read_labels("labels/img1.png")   # doctest: +SKIP
    """
    arr = read_image(path)
    if arr.ndim == 3:
        if arr.shape[2] == 1 or np.all(arr == arr[..., :1]):
            arr = arr[..., 0]
        else:
            raise ValueError(f"label image {path} has {arr.shape[2]} differing channels; "
                             "expected a single-channel integer label image")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"label image {path} has dtype {arr.dtype}; expected integer "
                         "instance ids (0 = background)")
    if arr.min() < 0:
        raise ValueError(f"label image {path} has negative ids; expected ids >= 0")
    return arr.astype(np.int32)


def write_labels(path, labels) -> Path:
    """Write instance labels losslessly and atomically (temporary file, then rename).

    PNG stores up to 65535 ids (16 bit); TIFF stores uint32 ids.

    Raises:
        ValueError: non-integer labels, negative ids, or too many ids for PNG.

    Example:
        >>> write_labels("out/img1_labels.tif", labels)   # doctest: +SKIP
    """
    path = Path(path)
    arr = np.asarray(labels)
    if not np.issubdtype(arr.dtype, np.integer) or arr.ndim != 2:
        raise ValueError(f"labels for {path} must be a 2-D integer array, got "
                         f"{arr.dtype} {arr.shape}")
    if arr.size and arr.min() < 0:
        raise ValueError(f"labels for {path} have negative ids")
    suffix = path.suffix.lower()
    if suffix == ".png":
        if arr.size and arr.max() > 65535:
            raise ValueError(f"{path}: {arr.max()} ids do not fit a 16-bit PNG; write a .tif")
        data = arr.astype(np.uint16)
    elif suffix in _TIFF:
        data = arr.astype(np.uint32)
    else:
        raise ValueError(f"cannot write labels to {path}: expected a .png, .tif or .tiff name")
    return _atomic_write(path, data)


def write_image(path, image) -> Path:
    """Write an image atomically (PNG/JPEG/BMP via OpenCV, TIFF via tifffile), RGB order.

    Example:
        >>> write_image("overlay.png", rgb_uint8)   # doctest: +SKIP
    """
    return _atomic_write(Path(path), np.asarray(image))


def _atomic_write(path: Path, data: np.ndarray) -> Path:
    # Write to a temporary file in the same folder, then rename: a crash never
    # leaves a half-written output under the final name.
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    fd, tmp = tempfile.mkstemp(suffix=suffix, prefix=f".{path.stem}.", dir=path.parent)
    os.close(fd)
    try:
        if suffix in _TIFF:
            tifffile.imwrite(tmp, data, compression="zlib")
        else:
            out = data
            if data.ndim == 3 and data.shape[2] == 3:
                out = cv2.cvtColor(data, cv2.COLOR_RGB2BGR)
            if not cv2.imwrite(tmp, out):
                raise ValueError(f"OpenCV could not encode {path} ({data.dtype} {data.shape})")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def list_images(folder) -> list[Path]:
    """Image files of a folder (sorted, hidden files skipped).

    Raises:
        FileNotFoundError: the folder does not exist.
        ValueError: it holds no image files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"folder not found: {folder}")
    files = sorted(p for p in folder.iterdir()
                   if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise ValueError(f"folder {folder} holds no images; expected files ending in "
                         f"{', '.join(IMAGE_SUFFIXES)}")
    return files


def folder_pairs(root, images: str = "images", labels: str = "labels") -> list[tuple[Path, Path]]:
    """(image, label) file pairs from ``root/images`` and ``root/labels``, matched by stem.

    Raises:
        ValueError: an image without a label or a label without an image
            (names listed), or empty folders.

    Example:
        >>> pairs = folder_pairs("../shared/data/dsb2018/val")   # doctest: +SKIP
    """
    root = Path(root)
    image_files = {p.stem: p for p in list_images(root / images)}
    label_files = {p.stem: p for p in list_images(root / labels)}
    missing_labels = sorted(set(image_files) - set(label_files))
    missing_images = sorted(set(label_files) - set(image_files))
    if missing_labels:
        raise ValueError(f"images without labels in {root / labels}: "
                         f"{', '.join(missing_labels[:5])}" + (" ..." if len(missing_labels) > 5 else ""))
    if missing_images:
        raise ValueError(f"labels without images in {root / images}: "
                         f"{', '.join(missing_images[:5])}" + (" ..." if len(missing_images) > 5 else ""))
    return [(image_files[s], label_files[s]) for s in sorted(image_files)]
