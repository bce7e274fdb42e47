"""Sample images shipped inside the package: one per modality, from DSB2018 (CC0).

They are copies of the repository's ``examples/data`` images (a test checks
that they stay byte-identical), installed with nuclib so that a pip-installed
copy has them too: the napari plugin offers them as sample data and the
bioimage.io packages make their test tensors from one.

=================== ============================================================
name                what it is
=================== ============================================================
``fluorescence``    347 x 260 fluorescence field, nuclei about 13 pixels across
``fluorescence_large`` 696 x 520 fluorescence field, enough for several tiles
``histology``       320 x 256 H&E-like colour crop (dark nuclei, inverted by nuclib)
``brightfield``     1024 x 1024 bright-field image (dark nuclei on a light background)
=================== ============================================================

Example:
    >>> from nuclib.samples import sample_image, SAMPLES
    >>> sample_image("fluorescence").shape
    (260, 347)
    >>> sorted(SAMPLES)[0]
    'brightfield'
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SAMPLES", "sample_path", "sample_image"]

_FOLDER = Path(__file__).resolve().parent

# name -> (file, one line for menus and docs)
SAMPLES = {
    "fluorescence": ("fluorescence.png", "DSB2018 fluorescence field (347 x 260)"),
    "fluorescence_large": ("fluorescence_large.png", "DSB2018 fluorescence field (696 x 520)"),
    "histology": ("histology.png", "DSB2018 H&E-like histology crop (320 x 256, RGB)"),
    "brightfield": ("brightfield.png", "DSB2018 bright-field image (1024 x 1024)"),
}

# Their nucleus size (median diameter in pixels, measured on the hand-drawn labels of
# examples/data), so a caller can zoom without a measuring pass.
DIAMETERS = {"fluorescence": 13.4}


def sample_path(name: str) -> Path:
    """The file of one sample image.

    Args:
        name: one of ``SAMPLES``.

    Returns:
        The path of the PNG inside the installed package.

    Raises:
        KeyError: an unknown name (the message lists the known ones).

    Example:
        >>> sample_path("histology").name
        'histology.png'
    """
    if name not in SAMPLES:
        raise KeyError(f"unknown sample image {name!r}; expected one of {sorted(SAMPLES)}")
    return _FOLDER / SAMPLES[name][0]


def sample_image(name: str):
    """One sample image as an array, read by ``nuclib.data.read_image``.

    Args:
        name: one of ``SAMPLES``.

    Returns:
        ``uint8`` array: ``(H, W)`` for the grayscale samples, ``(H, W, 3)`` for
        ``histology``.

    Example:
        >>> sample_image("histology").shape
        (256, 320, 3)
    """
    from nuclib.data.io import read_image

    return read_image(sample_path(name))
