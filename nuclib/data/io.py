"""Reading and writing microscopy images and instance label images, and finding datasets.

Formats: PNG, JPEG, BMP (OpenCV) and TIFF (tifffile), 8 and 16 bit (TIFF also
32-bit and float). Images come back channels-last in RGB order with any alpha
channel dropped; labels come back as int32 HxW arrays (0 = background). What
the readers cannot interpret (complex or NaN pixels, animations, stacks,
channels that are not colours, binary or colour masks as labels unless
``read_labels``' ``encoding`` says so, ...) is refused with an error that
names the file and the problem, never read as something else.

Dataset layouts understood:

- ``folder_pairs(root)``: ``root/images/<name>.*`` + ``root/labels/<name>.*``
  matched by file stem (the layout of ``shared/data/dsb2018``);
- ``file_list_pairs(list_file, image_dir, label_dir)``: one image name per
  line, as unet4nuclei's ``training.txt``;
- ``dsb_object_pairs(root)``: the Data Science Bowl per-object layout
  ``<id>/images/<id>.png`` + ``<id>/masks/*.png``; ``read_labels`` merges a
  masks folder into one label image.

Example:
    >>> from nuclib.data.io import folder_pairs, read_pair
    >>> pairs = folder_pairs("../shared/data/dsb2018/val")     # doctest: +SKIP
    >>> image, labels = read_pair(*pairs[0])                   # doctest: +SKIP
"""

from __future__ import annotations

import struct
from pathlib import Path

from nuclib._files import write_atomically

import cv2
import numpy as np
import tifffile

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
_TIFF = (".tif", ".tiff")
# Which dtypes each writer stores losslessly (JPEG is lossy whatever the dtype).
_WRITABLE = {".png": ("uint8", "uint16"), ".jpg": ("uint8",), ".jpeg": ("uint8",),
             ".bmp": ("uint8",)}
_LUMA = np.array([0.299, 0.587, 0.114])
_INT32_MAX = np.iinfo(np.int32).max


# ----------------------------------------------------------------------------- reading

def read_image(path, *, as_gray: bool | str = False, memmap: bool = False,
               channel: int | str | None = None) -> np.ndarray:
    """Read an image file: HxW or HxWx3 (RGB order), alpha dropped, stored bit depth kept.

    Every file is either read as nuclib can interpret it or refused with a
    ``ValueError`` that names the problem (see the Data guide's table
    "What the readers accept"):

    * gray and RGB(A) files of any integer or float depth (8, 16, 32, 64
      bit); alpha is dropped only where the file marks it as alpha;
    * files with other channels (a 2-channel or 4-channel fluorescence TIFF,
      CMYK) are refused unless ``channel`` says what to read: nuclib will not
      guess which channel holds the nuclei;
    * 1-bit (bilevel) pixels come back as uint8 0 / 255;
    * TIFF values come back as stored, as tifffile and ImageJ measure them:
      palette (LUT) images as their indices, MinIsWhite images uninverted;
      palette PNG / GIF files as the colours they show;
    * refused: complex pixels, NaN or infinite floats, animations and
      multi-frame files (GIF, APNG, WebP), stacks (Z, T or more axes), TIFFs
      holding several images of the same size, CMYK, other colour spaces.

    Args:
        path: a PNG, JPEG, BMP or TIFF file (any other format OpenCV reads,
            e.g. GIF or WebP, is read the same way).
        as_gray: ``False`` returns channels as stored; ``"auto"`` returns an
            RGB image whose three channels are equal (grayscale saved as RGB)
            as HxW and leaves colour images alone; ``True`` always returns HxW
            (equal channels: the first one; colour: luminance
            0.299 R + 0.587 G + 0.114 B, rounded back to the stored integer dtype).
        memmap: for uncompressed TIFF files, return a read-only memory map
            instead of reading the pixels (for images larger than memory;
            used by block-wise inference). Compressed TIFFs and other formats
            are read into memory as usual, so the result is the same either way.
        channel: ``None`` reads gray and colour images only; an int returns
            that channel alone as HxW (e.g. the nuclear stain of a
            multi-channel TIFF, or ``0`` for red); ``"all"`` returns every
            channel channels-last as stored (HxWxC, any C, alpha dropped).

    Returns:
        The pixel array with its stored dtype (uint8, uint16, uint32, float32, ...),
        in native byte order.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file cannot be decoded, or holds something listed as
            refused above, or a shape that is not HxW or HxWxC; the message
            names the file and the problem.

    Example:
        >>> image = read_image("examples/data/histology.png")            # doctest: +SKIP
        >>> gray = read_image("gray_saved_as_rgb.png", as_gray="auto")    # doctest: +SKIP
        >>> dapi = read_image("dapi_and_actin.tif", channel=0)            # doctest: +SKIP
        >>> dapi.ndim                                                     # doctest: +SKIP
        2
    """
    if as_gray not in (False, True, "auto"):
        raise ValueError(f"as_gray must be False, True or 'auto', got {as_gray!r}")
    if not (channel is None or channel == "all"
            or (isinstance(channel, (int, np.integer)) and not isinstance(channel, bool))):
        raise ValueError(f"channel must be None, an int or 'all', got {channel!r}")
    path = Path(path)
    arr, kind = _decode(path, memmap=memmap, labels=False)
    if not np.issubdtype(arr.dtype, np.number) and arr.dtype != bool:
        raise ValueError(f"image {path} has pixels of type {arr.dtype}; expected integer or "
                         "float intensities")
    if np.issubdtype(arr.dtype, np.floating):
        _check_finite(arr, path)
    if arr.dtype == bool:  # bilevel: the 0 / 255 OpenCV gives for 1-bit PNGs
        arr = arr.astype(np.uint8) * np.uint8(255)
    n = 1 if arr.ndim == 2 else arr.shape[2]
    if channel is None and kind == "channels":
        raise ValueError(
            f"image {path} has {n} channels (shape {arr.shape}) that are not gray or RGB; "
            "expected a grayscale or RGB image. Pass channel=i to read one of them (the "
            "nuclear stain, e.g. DAPI), or channel='all' to get them all as HxWxC")
    if channel is not None and channel != "all":
        if not -n <= int(channel) < n:
            raise ValueError(f"channel {channel} does not exist in image {path}, which has "
                             f"{n} channel(s); expected 0 <= channel < {n}")
        arr = arr if arr.ndim == 2 else arr[..., int(channel)]
        kind = "gray"
    if as_gray and kind == "channels" and n > 1:
        raise ValueError(f"as_gray={as_gray!r} needs a gray or RGB image, but image {path} "
                         f"has {n} other channels; pick one with channel=i")
    if arr.ndim == 3 and arr.shape[2] == 1 and as_gray:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise ValueError(f"image {path} has shape {arr.shape}; expected HxW or HxWxC")
    if as_gray and arr.ndim == 3 and arr.shape[2] == 3:
        if channels_equal(arr):
            arr = arr[..., 0]
        elif as_gray is True:
            arr = _luminance(arr)
    return arr


_DECODER_ERRORS = (ValueError, OSError, IndexError, KeyError, struct.error,
                   tifffile.TiffFileError, cv2.error)  # what decoders raise on corrupt data


def _decode(path: Path, *, memmap: bool, labels: bool) -> tuple[np.ndarray, str]:
    """Pixels channels-last with alpha dropped, and what the channels are.

    The kind is ``"gray"`` (HxW), ``"rgb"`` (HxWx3 colour) or ``"channels"``
    (anything else: HxWxC with channels nuclib cannot interpret as colour).
    With ``labels``, palette PNG / GIF files give their indices, not colours.
    Byte order is made native (memory maps excepted: NumPy reads them right).
    """
    if not path.is_file():
        raise FileNotFoundError(f"{'label image' if labels else 'image'} file not found: {path}")
    try:
        if path.suffix.lower() in _TIFF:
            arr, kind = _read_tiff(path, memmap)
        else:
            arr, kind = _read_raster(path, labels)
    except _Refused as err:
        raise ValueError(f"{'label image' if labels else 'image'} {path} {err}") from None
    except _DECODER_ERRORS as err:
        raise ValueError(f"cannot read image {path}: {err}; expected a readable "
                         f"{'/'.join(s[1:] for s in IMAGE_SUFFIXES)} file") from err
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{'label image' if labels else 'image'} {path} has complex pixels "
                         f"({arr.dtype}); expected real intensities. Save the magnitude "
                         "(np.abs) or the real part (image.real) instead")
    if not arr.dtype.isnative and not isinstance(arr, np.memmap):
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr, kind


class _Refused(Exception):
    """A file that decodes but that nuclib cannot interpret (the message says why)."""


def _check_finite(arr: np.ndarray, path: Path) -> None:
    """Refuse NaN and infinite pixels (in row chunks, so a memory map is not loaded whole)."""
    step = max(1, (64 << 20) // max(1, arr[:1].nbytes))
    nan = inf = 0
    for start in range(0, arr.shape[0], step):
        chunk = np.asarray(arr[start:start + step])
        bad = ~np.isfinite(chunk)
        if bad.any():
            nan += int(np.isnan(chunk).sum())
            inf += int(bad.sum()) - int(np.isnan(chunk).sum())
    if nan or inf:
        raise ValueError(f"image {path} has {nan} NaN and {inf} infinite pixels ({arr.dtype}); "
                         "expected finite intensities. Replace them first, e.g. "
                         "np.nan_to_num(image, nan=0.0, posinf=..., neginf=...)")


def _pillow_header(path: Path):
    """Pillow's mode and frame count for a file (header only), or (None, 1) if it cannot tell."""
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                return im.mode, int(getattr(im, "n_frames", 1))
    except (Image.DecompressionBombError, OSError, ValueError, SyntaxError):
        # Pillow refuses very large files (and formats it does not know); OpenCV reads them.
        return None, 1


def _read_raster(path: Path, labels: bool) -> tuple[np.ndarray, str]:
    mode, frames = _pillow_header(path)
    if frames > 1:
        raise _Refused(f"has {frames} frames (an animation or multi-page file); expected one "
                       "2-D image. Save each frame as its own file, or the frames as a TIFF "
                       "stack and pick one")
    if mode == "CMYK":
        # OpenCV decodes Adobe's inverted CMYK JPEGs to wrong colours.
        raise _Refused("is a CMYK JPEG; expected grayscale or RGB. Convert it to RGB first")
    if mode == "1" and labels:
        raise _Refused("is a 1-bit (binary) mask, which cannot hold instance ids; expected one "
                       "id per nucleus. Pass encoding='binary' to read its connected "
                       "components as objects, or save one mask per nucleus in a masks/ folder")
    if mode in ("P", "PA") and labels:
        from PIL import Image

        with Image.open(path) as im:  # the indices are the ids, whatever colours they show
            arr = np.array(im)
        return (arr if arr.ndim == 2 else arr[..., 0]), "gray"
    # IMREAD_UNCHANGED keeps 16 bit and alpha; OpenCV returns None (no
    # exception) for files it cannot decode.
    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ValueError("OpenCV could not decode it (corrupt or unsupported file)")
    if arr.ndim == 3 and arr.shape[2] in (3, 4):  # BGR(A): alpha is the 4th channel here
        arr = np.ascontiguousarray(arr[..., 2::-1])  # → RGB
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3 and arr.shape[2] != 3:
        return arr, "channels"
    return arr, "rgb" if arr.ndim == 3 else "gray"


# TIFF photometric interpretations nuclib reads: gray (either way round), RGB,
# palette (as indices) and YCbCr when JPEG-compressed (decoded to RGB).
_PHOTOMETRIC_OK = {"MINISWHITE", "MINISBLACK", "RGB", "PALETTE", "YCBCR"}
_ALPHA = (1, 2)  # ExtraSamples: associated, unassociated alpha


def _yx(series) -> tuple | None:
    try:
        return tuple(series.shape[series.axes.index(a)] for a in "YX")
    except ValueError:
        return None


def _read_tiff(path: Path, memmap: bool) -> tuple[np.ndarray, str]:
    with tifffile.TiffFile(path) as tif:
        if not tif.series:
            raise ValueError("the file holds no image (corrupt or empty TIFF)")
        series = tif.series[0]
        # Other series of the image's size are more images (positions, wells);
        # smaller ones are thumbnails, labels and macros (SVS) and are ignored.
        same = [s for s in tif.series[1:] if _yx(s) == _yx(series)]
        if same:
            h, w = _yx(series)
            raise _Refused(f"holds {1 + len(same)} images of {h}x{w} pixels (TIFF series); "
                           "expected one image per file. Save each in its own file, or all "
                           "as one stack and pick one")
        page = series.keyframe
        photometric = page.photometric.name
        extrasamples = tuple(int(e) for e in page.extrasamples)
        compression = page.compression.name
        axes = series.axes
        arr = None
        if memmap:
            try:
                arr = tifffile.memmap(path, mode="r")
            except ValueError:  # compressed or not contiguous: read into memory
                arr = None
        if arr is None:
            arr = series.asarray()
    if photometric not in _PHOTOMETRIC_OK or (photometric == "YCBCR"
                                              and "JPEG" not in compression):
        what = "CMYK" if photometric == "SEPARATED" else photometric
        raise _Refused(f"has photometric interpretation {what}; expected grayscale, RGB or "
                       "palette. Convert it to RGB or grayscale first")
    # Drop singleton axes other than Y and X (ImageJ files often carry them).
    keep = [i for i, a in enumerate(axes) if a in "YX" or arr.shape[i] > 1]
    if len(keep) != arr.ndim:
        arr = arr.reshape([arr.shape[i] for i in keep])
        axes = "".join(axes[i] for i in keep)
    stack_axes = [a for a in axes if a not in "YXSC"]
    if stack_axes or ("S" in axes and "C" in axes):
        raise _Refused(f"is a stack with axes {axes!r} and shape {arr.shape}; expected a "
                       "single 2-D image (axes YX, YXS or CYX)")
    for a in "CS":  # channels (planar or interleaved) → channels-last
        if a in axes and axes.index(a) != len(axes) - 1:
            arr = np.moveaxis(arr, axes.index(a), -1)
            axes = axes.replace(a, "") + a
    if arr.ndim == 2:
        return arr, "gray"
    n = arr.shape[2]
    alpha = [n - len(extrasamples) + i for i, e in enumerate(extrasamples) if e in _ALPHA]
    if alpha and "S" in axes:
        if alpha == list(range(n - len(alpha), n)):
            arr = arr[..., :n - len(alpha)]  # a view: memory maps stay maps
        else:
            arr = arr[..., [i for i in range(n) if i not in alpha]]
    if arr.shape[2] == 1:
        return arr[..., 0], "gray"
    colour = photometric in ("RGB", "YCBCR") and arr.shape[2] == 3
    return arr, "rgb" if colour else "channels"


def channels_equal(rgb: np.ndarray) -> bool:
    """Whether an ``HxWx3`` (or more) image's first three channels are identical: gray stored as RGB.

    Args:
        rgb: an HxWxC array, C >= 3.

    Returns:
        True if R, G and B are equal everywhere.

    Example:
        >>> channels_equal(np.zeros((2, 2, 3), np.uint8))
        True
    """
    return bool(np.array_equal(rgb[..., 0], rgb[..., 1])
                and np.array_equal(rgb[..., 0], rgb[..., 2]))


def _luminance(rgb: np.ndarray) -> np.ndarray:
    gray = rgb[..., :3].astype(np.float64) @ _LUMA
    if np.issubdtype(rgb.dtype, np.integer):
        info = np.iinfo(rgb.dtype)
        return np.clip(np.rint(gray), info.min, info.max).astype(rgb.dtype)
    return gray.astype(rgb.dtype)


LABEL_ENCODINGS = ("ids", "colors", "binary")
_JPEG = (".jpg", ".jpeg")
# Components smaller than this (pixels) are JPEG speckle, not objects (see read_labels).
JPEG_MIN_SIZE = 9


def read_labels(path, *, encoding: str = "ids", threshold: float | None = None,
                min_size: int | None = None) -> np.ndarray:
    """Read an instance label image (0 = background) as int32 HxW.

    How the file encodes the objects is ``encoding``; nuclib does not guess:

    * ``"ids"`` (default): the numbers stored are the ids. A palette PNG, GIF
      or TIFF gives its indices (not the colours they show), and float label
      images (ImageJ's 32-bit) are accepted when every value is a whole
      number. Colour files whose channels differ, and 1-bit or boolean masks,
      are refused (the error names the encoding to use).
    * ``"colors"``: one colour per object, black ``(0, 0, 0)`` the
      background, as CVAT and other annotation tools export instance masks.
      Each distinct colour (each distinct value of a gray file) becomes an id,
      numbered 1..N in the order the colours first appear, row by row.
      Alpha is dropped; palette files are read as the colours they show.
      JPEG files are refused: compression changes colours, so one object
      would come back as many.
    * ``"binary"``: a black-and-white (or 0/1) mask, PNG, TIFF or JPEG.
      Steps: (1) pixels brighter than ``threshold`` in any channel are
      foreground; (2) background regions and foreground regions smaller
      than ``min_size`` pixels are flipped (pinholes filled, speckles
      removed); (3) 4-connected foreground components become the objects,
      numbered 1..N in raster order. Touching nuclei merge into one object:
      a binary mask cannot tell them apart.

    A directory is read as a DSB-style masks folder (one binary mask per
    object, merged by ``read_mask_folder``).

    Args:
        path: a label image (PNG, TIFF, ...) or a folder of per-object masks.
        encoding: ``"ids"``, ``"colors"`` or ``"binary"`` (see above).
        threshold: ``"binary"`` only: the foreground level (pixels ``>
            threshold``). None means half the dtype's maximum (127.5 for 8 bit,
            32767.5 for 16 bit), 0.5 for float files and for files holding
            only 0 and 1.
        min_size: ``"binary"`` only: regions smaller than this many pixels
            are flipped (step 2). None means ``JPEG_MIN_SIZE`` (9) for JPEG
            files, where compression noise near the threshold leaves specks,
            and 0 (keep everything) for lossless files.

    Returns:
        int32 HxW label image: the stored ids (``"ids"``) or sequential ids
        1..N (``"colors"``, ``"binary"``).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: an unknown encoding, ``threshold`` or ``min_size`` without
            ``encoding="binary"``; unreadable file; with ``"ids"``: several
            differing channels, a 1-bit or boolean mask (no room for ids),
            complex or fractional, NaN or infinite values, negative ids or ids
            above 2**31 - 1; with ``"colors"``: a JPEG file; or anything
            ``read_image`` refuses (animations, stacks, ...). The message
            names the file.

    Example:
        >>> import tempfile
        >>> rgb = np.zeros((2, 3, 3), np.uint8)
        >>> rgb[0, 1:] = (255, 0, 0)
        >>> rgb[1, 0] = (0, 9, 200)
        >>> path = write_image(Path(tempfile.mkdtemp()) / "cvat.png", rgb)
        >>> read_labels(path, encoding="colors").tolist()
        [[0, 1, 1], [2, 0, 0]]
        >>> read_labels(path, encoding="binary").tolist()
        [[0, 1, 1], [2, 0, 0]]
    """
    if encoding not in LABEL_ENCODINGS:
        raise ValueError(f"unknown label encoding {encoding!r}; expected one of "
                         f"{LABEL_ENCODINGS}")
    if encoding != "binary" and (threshold is not None or min_size is not None):
        raise ValueError(f"threshold and min_size apply to encoding='binary' only, not "
                         f"encoding={encoding!r}")
    path = Path(path)
    if path.is_dir():
        if encoding != "ids":
            raise ValueError(f"{path} is a folder, read as one binary mask per object; "
                             f"encoding={encoding!r} applies to a single label image")
        return read_mask_folder(path)
    if encoding == "colors":
        return _read_color_labels(path)
    if encoding == "binary":
        return _read_binary_labels(path, threshold, min_size)
    arr, _ = _decode(path, memmap=False, labels=True)
    if arr.ndim == 3:
        if arr.shape[2] == 1 or channels_equal(arr):
            arr = arr[..., 0]
        else:
            raise ValueError(f"label image {path} has {arr.shape[2]} differing channels; "
                             "expected a single-channel integer label image. If each colour "
                             "is one object (an RGB instance mask, as CVAT exports), pass "
                             "encoding='colors'; for a colour-on-black binary mask, "
                             "encoding='binary'")
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"label image {path} has shape {arr.shape}; expected HxW")
    if arr.dtype == bool:
        raise ValueError(f"label image {path} is a boolean (binary) mask, which cannot hold "
                         "instance ids; expected one id per nucleus. Pass encoding='binary' "
                         "to read its connected components as objects")
    if np.issubdtype(arr.dtype, np.floating):
        whole = np.isfinite(arr) & (arr == np.round(arr))
        if not whole.all():
            raise ValueError(
                f"label image {path} has {int((~whole).sum())} pixels that are not whole "
                f"numbers (fractional, NaN or infinite {arr.dtype} values); expected integer "
                "instance ids (0 = background). Save labels as 16-bit PNG or integer TIFF")
    elif not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"label image {path} has dtype {arr.dtype}; expected integer "
                         "instance ids (0 = background). Save labels as 16-bit PNG or "
                         "integer TIFF")
    if arr.min() < 0:
        raise ValueError(f"label image {path} has negative ids; expected ids >= 0")
    if arr.max() > _INT32_MAX:
        raise ValueError(f"label image {path} has ids up to {arr.max()}; expected ids "
                         f"<= {_INT32_MAX} (relabel sequentially first, e.g. "
                         "skimage.segmentation.relabel_sequential)")
    return arr.astype(np.int32)


def _read_color_labels(path: Path) -> np.ndarray:
    """One id per distinct colour (black = 0), numbered in order of first appearance."""
    if not path.is_file():
        raise FileNotFoundError(f"label image file not found: {path}")
    if path.suffix.lower() in _JPEG:
        raise ValueError(f"label image {path} is a JPEG, whose lossy compression changes "
                         "colours, so one object would come back as many; expected a PNG or "
                         "TIFF colour mask (use encoding='binary' for a black-and-white JPEG "
                         "mask)")
    # Read as an image: a palette file gives the colours annotators see.
    arr, _ = _decode(path, memmap=False, labels=False)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        _check_finite(arr, path)
    if arr.size == 0:
        raise ValueError(f"label image {path} has shape {arr.shape}; expected HxW or HxWxC")
    pixels = np.ascontiguousarray(arr.reshape(arr.shape[0] * arr.shape[1], -1))
    keys = _colour_keys(pixels)
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    objects = ~np.all(pixels[first] == 0, axis=1)  # black is the background
    ids = np.zeros(len(first), np.int64)
    by_appearance = np.flatnonzero(objects)[np.argsort(first[objects], kind="stable")]
    ids[by_appearance] = np.arange(1, len(by_appearance) + 1)
    return ids[inverse.ravel()].reshape(arr.shape[:2]).astype(np.int32)


def _colour_keys(pixels: np.ndarray) -> np.ndarray:
    """One sortable key per row of ``pixels`` (N x C), equal exactly where the colours are."""
    size = pixels.dtype.itemsize
    bits = pixels.view(f"u{size}")
    if size * pixels.shape[1] <= 8:  # pack into one integer: far faster than rows
        key = np.zeros(len(pixels), np.uint64)
        for c in range(pixels.shape[1]):
            key |= bits[:, c].astype(np.uint64) << np.uint64(8 * size * c)
        return key
    return bits.view(np.dtype((np.void, size * pixels.shape[1])))[:, 0]


def _read_binary_labels(path: Path, threshold, min_size) -> np.ndarray:
    """Threshold, flip small regions, then 4-connected components (``read_labels`` steps)."""
    from scipy import ndimage as ndi

    if min_size is None:
        min_size = JPEG_MIN_SIZE if path.suffix.lower() in _JPEG else 0
    if isinstance(min_size, bool) or not isinstance(min_size, (int, np.integer)) or min_size < 0:
        raise ValueError(f"min_size must be an int >= 0 (pixels), got {min_size!r}")
    if threshold is not None and (isinstance(threshold, bool)
                                  or not isinstance(threshold, (int, float, np.number))
                                  or not np.isfinite(threshold)):
        raise ValueError(f"threshold must be a finite number (the foreground level), got "
                         f"{threshold!r}")
    arr = read_image(path, channel="all")  # 1-bit files come back as 0 / 255
    if arr.ndim == 3:
        arr = arr.max(axis=2)  # any channel: coloured masks on black count too
    if threshold is None:
        if np.issubdtype(arr.dtype, np.floating) or np.isin(arr, (0, 1)).all():
            threshold = 0.5
        else:
            threshold = np.iinfo(arr.dtype).max / 2
    # 1. threshold.
    foreground = arr > threshold
    # 2. flip regions below min_size: background first (pinholes), then speckles.
    if min_size > 1:
        holes, _ = ndi.label(~foreground)
        small = np.bincount(holes.ravel()) < min_size
        small[0] = False
        foreground |= small[holes]
    # 3. connected components, renumbered 1..N after dropping the small ones.
    labels, _ = ndi.label(foreground)
    if min_size > 1:
        keep = np.bincount(labels.ravel()) >= min_size
        keep[0] = False
        labels = (np.cumsum(keep) * keep)[labels]
    return labels.astype(np.int32)


def read_mask_folder(folder) -> np.ndarray:
    """Merge a folder of per-object binary masks into one int32 label image.

    Masks are taken in sorted file-name order; mask ``i`` gets id ``i + 1``
    and, where masks overlap, later masks win (the DSB 2018 convention). Ids
    are then renumbered 1..N so that objects hidden completely leave no gaps.

    Args:
        folder: a folder of same-sized mask images (any non-zero pixel is the object).

    Returns:
        int32 HxW label image, sequential ids 1..N.

    Raises:
        FileNotFoundError, ValueError: missing or empty folder, an unreadable
            mask, or masks of different sizes (the mask file is named).

    Example:
        >>> labels = read_mask_folder("stage1_train/<id>/masks")   # doctest: +SKIP
    """
    files = list_images(folder)
    labels = None
    for i, mask_path in enumerate(files, start=1):
        mask = read_image(mask_path, channel="all")  # any non-zero pixel, in any channel
        if mask.ndim == 3:
            mask = mask.any(axis=2)
        if labels is None:
            labels = np.zeros(mask.shape, np.int32)
        elif mask.shape != labels.shape:
            raise ValueError(f"mask {mask_path} is {mask.shape} but {files[0].name} in the same "
                             f"folder is {labels.shape}; expected all masks of a sample to "
                             "have the image's size")
        labels[mask > 0] = i
    ids, inverse = np.unique(labels, return_inverse=True)
    if ids[0] != 0:
        ids = np.concatenate([[0], ids])
        inverse = inverse + 1
    return inverse.reshape(labels.shape).astype(np.int32)


def read_pair(image_path, label_path, *, as_gray: bool | str = False):
    """Read an image and its labels and check that they have the same height and width.

    Args:
        image_path: the image file.
        label_path: its label image (or DSB masks folder).
        as_gray: passed to ``read_image``.

    Returns:
        ``(image, labels)``: the image as stored and int32 HxW labels.

    Raises:
        ValueError: unreadable files, or sizes that differ (both files named).

    Example:
        >>> image, labels = read_pair("images/a.png", "labels/a.png")   # doctest: +SKIP
    """
    image = read_image(image_path, as_gray=as_gray)
    labels = read_labels(label_path)
    if image.shape[:2] != labels.shape:
        raise ValueError(f"image {image_path} is {image.shape[0]}x{image.shape[1]} but its "
                         f"labels {label_path} are {labels.shape[0]}x{labels.shape[1]}; "
                         "expected the same height and width")
    return image, labels


def read_dsb_objects(sample_dir):
    """Read one sample of the DSB per-object layout: ``<id>/images/<id>.png`` + ``<id>/masks/``.

    Args:
        sample_dir: the ``<id>`` folder.

    Returns:
        ``(image, labels)``: the image as stored (alpha dropped) and int32 HxW
        labels merged from the masks (later masks win on overlap).

    Raises:
        FileNotFoundError, ValueError: a missing image or masks folder, or masks
            whose size differs from the image (the files are named).

    Example:
        >>> image, labels = read_dsb_objects("stage1_train/00ae65c1c6631ae6")   # doctest: +SKIP
    """
    image_path, masks = _dsb_sample(Path(sample_dir))
    return read_pair(image_path, masks)


# ----------------------------------------------------------------------------- writing

def write_labels(path, labels) -> Path:
    """Write instance labels losslessly and atomically (temporary file, then rename).

    PNG stores up to 65535 ids (16 bit); TIFF stores uint32 ids (zlib-compressed).

    Args:
        path: destination ending in ``.png``, ``.tif`` or ``.tiff``.
        labels: 2-D integer (or bool) array, ids >= 0.

    Returns:
        The path written.

    Raises:
        ValueError: non-integer labels, negative ids, too many ids for the
            format, or an unsupported file type.

    Example:
        >>> write_labels("out/img1_labels.tif", labels)   # doctest: +SKIP
    """
    path = Path(path)
    arr = np.asarray(labels)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.integer) or arr.ndim != 2:
        raise ValueError(f"labels for {path} must be a 2-D integer array, got "
                         f"{arr.dtype} {arr.shape}")
    if arr.size and arr.min() < 0:
        raise ValueError(f"labels for {path} have negative ids; expected ids >= 0")
    suffix = path.suffix.lower()
    top = int(arr.max()) if arr.size else 0
    if suffix == ".png":
        if top > 65535:
            raise ValueError(f"{path}: id {top} does not fit a 16-bit PNG; write a .tif")
        data = arr.astype(np.uint16)
    elif suffix in _TIFF:
        if top > np.iinfo(np.uint32).max:
            raise ValueError(f"{path}: id {top} does not fit 32 bits; relabel sequentially")
        data = arr.astype(np.uint32)
    else:
        raise ValueError(f"cannot write labels to {path}: expected a .png, .tif or .tiff name "
                         "(lossless formats)")
    return _atomic_write(path, data)


def write_image(path, image, *, compression: str | None = "zlib", quality: int = 95) -> Path:
    """Write an image atomically (PNG/JPEG/BMP via OpenCV, TIFF via tifffile), RGB order.

    Args:
        path: destination; the suffix picks the format.
        image: HxW or HxWxC (C in 1, 3, 4) array. PNG takes uint8 or uint16,
            JPEG and BMP uint8, TIFF any dtype.
        compression: TIFF compression (``"zlib"``, or ``None`` for files that
            ``read_image(..., memmap=True)`` can map without reading).
        quality: JPEG quality 0-100.

    Returns:
        The path written.

    Raises:
        ValueError: a dtype the format cannot store, a bad shape, or an
            unknown suffix.

    Example:
        >>> write_image("overlay.png", rgb_uint8)   # doctest: +SKIP
    """
    path = Path(path)
    data = np.asarray(image)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ValueError(f"cannot write {path}: expected a name ending in "
                         f"{', '.join(IMAGE_SUFFIXES)}")
    if data.ndim not in (2, 3) or (data.ndim == 3 and data.shape[2] not in (1, 3, 4)):
        raise ValueError(f"image for {path} has shape {data.shape}; expected HxW or HxWxC "
                         "with C in (1, 3, 4)")
    allowed = _WRITABLE.get(suffix)
    if allowed is not None and data.dtype.name not in allowed:
        raise ValueError(f"cannot write {data.dtype} pixels to {path}; {suffix} stores "
                         f"{' or '.join(allowed)} (use .tif for other dtypes)")
    return _atomic_write(path, data, compression=compression, quality=quality)


def _atomic_write(path: Path, data: np.ndarray, *, compression: str | None = "zlib",
                  quality: int = 95) -> Path:
    # Write to a temporary file in the same folder, then rename: a crash never
    # leaves a half-written output under the final name.
    suffix = path.suffix.lower()

    def write(tmp):
        nonlocal data
        if suffix in _TIFF:
            if data.ndim == 3 and data.shape[2] == 1:
                data = data[..., 0]  # an HxWx1 page would be read back as a stack
            photometric = "rgb" if data.ndim == 3 and data.shape[2] in (3, 4) else "minisblack"
            tifffile.imwrite(tmp, data, compression=compression, photometric=photometric)
        else:
            out = data
            if data.ndim == 3 and data.shape[2] in (3, 4):
                code = cv2.COLOR_RGB2BGR if data.shape[2] == 3 else cv2.COLOR_RGBA2BGRA
                out = cv2.cvtColor(data, code)
            params = [cv2.IMWRITE_JPEG_QUALITY, quality] if suffix in (".jpg", ".jpeg") else []
            if not cv2.imwrite(tmp, out, params):
                raise ValueError(f"OpenCV could not encode {path} ({data.dtype} {data.shape})")

    return write_atomically(path, write)


# ----------------------------------------------------------------------------- discovery

def list_images(folder) -> list[Path]:
    """Image files of a folder (sorted by name, hidden files skipped).

    Args:
        folder: a directory.

    Returns:
        Sorted paths of the files ending in one of ``IMAGE_SUFFIXES``.

    Raises:
        FileNotFoundError: the folder does not exist.
        ValueError: it holds no image files.

    Example:
        >>> files = list_images("../shared/data/dsb2018/val/images")   # doctest: +SKIP
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"folder not found: {folder}")
    files = sorted(p for p in folder.iterdir()
                   if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
                   and p.is_file())
    if not files:
        raise ValueError(f"folder {folder} holds no images; expected files ending in "
                         f"{', '.join(IMAGE_SUFFIXES)}")
    return files


def _by_stem(files: list[Path]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for f in files:
        if f.stem in out:
            raise ValueError(f"{out[f.stem]} and {f} have the same name; expected one file "
                             "per image name")
        out[f.stem] = f
    return out


def _listing(paths: list[Path]) -> str:
    shown = ", ".join(str(p) for p in paths[:5])
    return shown + (f" ... ({len(paths)} in all)" if len(paths) > 5 else "")


def folder_pairs(root, images: str = "images", labels: str = "labels") -> list[tuple[Path, Path]]:
    """(image, label) file pairs from ``root/images`` and ``root/labels``, matched by stem.

    Args:
        root: dataset folder.
        images, labels: names of its two sub-folders.

    Returns:
        ``[(image_path, label_path), ...]`` sorted by name.

    Raises:
        FileNotFoundError: a missing folder.
        ValueError: an image without a label or a label without an image
            (the files are named), two files with the same stem, or empty folders.

    Example:
        >>> pairs = folder_pairs("../shared/data/dsb2018/val")   # doctest: +SKIP
    """
    root = Path(root)
    image_files = _by_stem(list_images(root / images))
    label_files = _by_stem(list_images(root / labels))
    missing_labels = [image_files[s] for s in sorted(set(image_files) - set(label_files))]
    missing_images = [label_files[s] for s in sorted(set(label_files) - set(image_files))]
    if missing_labels:
        raise ValueError(f"images without a label file in {root / labels}: "
                         f"{_listing(missing_labels)}; expected a label with the same name")
    if missing_images:
        raise ValueError(f"label files without an image in {root / images}: "
                         f"{_listing(missing_images)}; expected an image with the same name")
    return [(image_files[s], label_files[s]) for s in sorted(image_files)]


def file_list_pairs(list_file, image_dir, label_dir) -> list[tuple[Path, Path]]:
    """(image, label) pairs for the names listed in a text file, one per line.

    This is unet4nuclei's ``training.txt`` / ``validation.txt`` format. A line
    holds a file name (``img_01.png``) or a stem (``img_01``); blank lines and
    lines starting with ``#`` are skipped. The label is the file in
    ``label_dir`` with the same stem (its suffix may differ, e.g. ``.tif``).

    Args:
        list_file: the text file.
        image_dir: folder holding the images.
        label_dir: folder holding the label images.

    Returns:
        ``[(image_path, label_path), ...]`` in the order of the file.

    Raises:
        FileNotFoundError: a missing list file or folder.
        ValueError: an empty list, or a listed name with no image or no label
            (the list file, line and name are given).

    Example:
        >>> pairs = file_list_pairs("training.txt", "images", "labels")   # doctest: +SKIP
    """
    list_file = Path(list_file)
    if not list_file.is_file():
        raise FileNotFoundError(f"file list not found: {list_file}")
    image_files = list_images(image_dir)
    by_name = {p.name: p for p in image_files}
    by_stem = _by_stem(image_files)
    label_files = _by_stem(list_images(label_dir))
    pairs = []
    for number, line in enumerate(list_file.read_text().splitlines(), start=1):
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        image = by_name.get(name) or by_stem.get(name)
        if image is None:
            raise ValueError(f"{list_file} line {number}: no image {name!r} in {image_dir}")
        label = label_files.get(image.stem)
        if label is None:
            raise ValueError(f"{list_file} line {number}: image {image} has no label file "
                             f"{image.stem}.* in {label_dir}")
        pairs.append((image, label))
    if not pairs:
        raise ValueError(f"file list {list_file} names no images; expected one name per line")
    return pairs


def _dsb_sample(sample: Path) -> tuple[Path, Path]:
    images = sample / "images"
    masks = sample / "masks"
    if not images.is_dir():
        raise FileNotFoundError(f"DSB sample {sample} has no images/ folder; expected "
                                f"{sample.name}/images/{sample.name}.png")
    candidates = [p for p in list_images(images) if p.stem == sample.name] or list_images(images)
    if len(candidates) != 1:
        raise ValueError(f"DSB sample {sample} holds {len(candidates)} images and none is named "
                         f"{sample.name}; expected {sample.name}/images/{sample.name}.png")
    if not masks.is_dir():
        raise ValueError(f"image {candidates[0]} has no masks/ folder at {masks}; expected one "
                         "mask file per nucleus")
    return candidates[0], masks


def dsb_object_pairs(root) -> list[tuple[Path, Path]]:
    """(image, masks folder) pairs for the DSB per-object layout under ``root``.

    ``root/<id>/images/<id>.png`` with ``root/<id>/masks/*.png`` (one binary
    mask per nucleus). ``read_labels`` (and so ``make_dataset``) reads a
    masks folder as one merged label image.

    Args:
        root: folder holding one sub-folder per sample.

    Returns:
        ``[(image_path, masks_dir), ...]`` sorted by sample id.

    Raises:
        FileNotFoundError: ``root`` is missing, or a sample has no images/ folder.
        ValueError: ``root`` holds no samples, or a sample has no masks folder
            (the sample is named).

    Example:
        >>> pairs = dsb_object_pairs("stage1_train")          # doctest: +SKIP
        >>> image, labels = read_pair(*pairs[0])              # doctest: +SKIP
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"folder not found: {root}")
    samples = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not samples:
        raise ValueError(f"folder {root} holds no samples; expected <id>/images/<id>.png and "
                         "<id>/masks/*.png")
    return [_dsb_sample(s) for s in samples]
