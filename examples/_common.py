"""Shared plumbing of the example scripts: fast mode, where figures go, where data is.

Every example runs in two modes:

* full (default): real data sizes, a few minutes on a 2-core CPU, figures
  written to ``docs/img/examples/`` for the documentation;
* fast (``--fast`` or ``NUCLIB_EXAMPLES_FAST=1``): tiny data, seconds, figures
  written to a temporary folder (CI runs this so the examples cannot rot).

Environment variables:

* ``NUCLIB_EXAMPLES_OUT``: folder for the figures (overrides both defaults);
* ``NUCLIB_EXAMPLES_WORK``: folder for things examples hand to each other
  (the model trained by ``train_unet.py``); default: a folder in the
  system's temporary directory;
* ``NUCLIB_EXAMPLES_MODEL``: the pretrained model to use instead of
  ``dsb-3class`` (a zoo name, ``hf://owner/repo`` or a model directory);
* ``NUCLIB_DSB2018``: the DSB2018 data (default ``../shared/data/dsb2018``
  beside the repository).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # keep the output readable
os.environ.setdefault("MPLBACKEND", "Agg")

EXAMPLES = Path(__file__).resolve().parent
REPO = EXAMPLES.parent
SAMPLES = EXAMPLES / "data"
DOCS_FIGURES = REPO / "docs" / "img" / "examples"


def env_flag(name: str) -> bool:
    """True if the environment variable is set to 1/true/yes/on."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


class Example:
    """Command-line options and output folders of one example script.

    Args:
        description: the script's one-line description (``--help``).
        argv: arguments to parse (default: ``sys.argv[1:]``).
    """

    def __init__(self, description: str, argv=None):
        parser = argparse.ArgumentParser(description=description)
        parser.add_argument("--fast", action="store_true",
                            help="tiny data, seconds; figures to a temporary folder "
                                 "(same as NUCLIB_EXAMPLES_FAST=1)")
        parser.add_argument("--out", help="folder for the figures (default: docs/img/examples, "
                                          "or a temporary folder with --fast)")
        args = parser.parse_args(argv)
        self.fast: bool = args.fast or env_flag("NUCLIB_EXAMPLES_FAST")
        out = args.out or os.environ.get("NUCLIB_EXAMPLES_OUT")
        if out:
            self.out = Path(out)
        elif self.fast:
            self.out = Path(tempfile.mkdtemp(prefix="nuclib-examples-"))
        else:
            self.out = DOCS_FIGURES
        self.out.mkdir(parents=True, exist_ok=True)
        work = os.environ.get("NUCLIB_EXAMPLES_WORK")
        self.work = (Path(work) if work else
                     Path(tempfile.gettempdir()) / "nuclib-examples" / ("fast" if self.fast else "full"))
        self.work.mkdir(parents=True, exist_ok=True)
        self.started = time.perf_counter()
        print(f"{'fast' if self.fast else 'full'} mode; figures -> {self.out}")

    def save(self, fig, name: str, dpi: int = 90) -> Path:
        """Save a matplotlib figure as ``<out>/<name>.png``.

        Full-mode figures are reduced to a 256-colour palette (no visible
        change for these plots, a third of the bytes) since they are committed.
        """
        from PIL import Image

        path = self.out / f"{name}.png"
        fig.savefig(path, dpi=50 if self.fast else dpi, bbox_inches="tight", facecolor="white")
        if not self.fast:
            with Image.open(path) as image:
                palette = image.convert("RGB").quantize(colors=256, dither=Image.Dither.NONE)
            palette.save(path, optimize=True)
        print(f"wrote {path}")
        return path

    def done(self) -> None:
        """Print the elapsed time."""
        print(f"done in {time.perf_counter() - self.started:.1f} s")


def dsb_root() -> Path:
    """The DSB2018 data folder (``NUCLIB_DSB2018`` or ``../shared/data/dsb2018``).

    Raises:
        FileNotFoundError: the folder does not exist (says how to point to it).
    """
    root = Path(os.environ.get("NUCLIB_DSB2018")
                or Path(__file__).resolve().parents[2] / "shared" / "data" / "dsb2018")
    if not (root / "train").is_dir():
        raise FileNotFoundError(f"DSB2018 data not found at {root}; expected train/ and val/ "
                                "folders with images/ and labels/. Set NUCLIB_DSB2018.")
    return root


def pretrained_name(default: str = "dsb-3class") -> str:
    """The model to load: ``NUCLIB_EXAMPLES_MODEL`` or ``default``."""
    return os.environ.get("NUCLIB_EXAMPLES_MODEL") or default


def figure(figsize, **kwargs):
    """A new pyplot-free matplotlib figure (like ``nuclib.viz`` makes)."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained", **kwargs)


def crop(array, size: int):
    """The top-left ``size`` x ``size`` corner (for fast mode)."""
    return array[:size, :size]
