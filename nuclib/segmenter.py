"""``Segmenter``: a model together with its pre- and post-processing.

What ``nuclib.load_pretrained`` returns. It turns any 2-D microscopy image
(8/16-bit or float, 1 or 3 channels, any size) into probabilities
(``predict``) or instance labels (``segment``); images larger than a tile are
tiled through ``nuclib.postprocess.TiledInferencer``.

Example:
    >>> import nuclib
    >>> seg = nuclib.load_pretrained("dsb-3class")              # doctest: +SKIP
    >>> labels = seg.segment(nuclib.data.read_image("cells.png"))  # doctest: +SKIP
    >>> int(labels.max())                                        # doctest: +SKIP
    125
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Iterable

import numpy as np

CONFIG_FILE = "nuclib.json"
FORMAT_VERSION = 1
HEADS = ("three_class", "binary")

DEFAULT_CONFIG: dict[str, Any] = {
    "format_version": FORMAT_VERSION,
    "name": "model",
    "head": "three_class",
    "input_channels": 1,
    "normalize": {"low": 1.0, "high": 99.8},
    "invert": "auto",
    "postprocess": {},
    "tiling": {"tile_size": 1024, "overlap": None, "batch_size": 1, "blend": "crop"},
}


def _merge(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in (update or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class Segmenter:
    """A Keras model plus the settings that make it usable on raw images.

    Args:
        model: a Keras model (or any callable mapping ``(N, H, W, C)`` float32
            batches to ``(N, H, W, K)`` probabilities).
        config: settings, merged over ``DEFAULT_CONFIG``: ``head``
            (``"three_class"`` or ``"binary"``), ``input_channels``,
            ``normalize`` percentiles, ``invert`` (``"auto"``/true/false),
            ``postprocess`` keyword arguments, ``tiling`` (tile size,
            overlap, batch size, blend).

    Raises:
        ValueError: an unknown head or channel count.

    Example:
        >>> from nuclib.models import unet
        >>> seg = Segmenter(unet(depth=2, filters=4), {"head": "three_class"})
        >>> seg.segment(np.zeros((40, 50), np.uint8)).shape
        (40, 50)
    """

    def __init__(self, model, config: dict | None = None):
        self.model = model
        self.config = _merge(DEFAULT_CONFIG, config or {})
        if self.config["head"] not in HEADS:
            raise ValueError(f"unknown head {self.config['head']!r}; expected one of {HEADS}")
        if self.config["input_channels"] not in (1, 3):
            raise ValueError(f"input_channels must be 1 or 3, got {self.config['input_channels']}")
        self._inferencer = None

    # -- properties ---------------------------------------------------------
    @property
    def name(self) -> str:
        """The model's name (e.g. ``"dsb-3class"``)."""
        return self.config["name"]

    @property
    def head(self) -> str:
        """``"three_class"`` or ``"binary"``."""
        return self.config["head"]

    def __repr__(self) -> str:
        return (f"Segmenter(name={self.name!r}, head={self.head!r}, "
                f"input_channels={self.config['input_channels']})")

    # -- pipeline -----------------------------------------------------------
    def preprocess(self, image) -> np.ndarray:
        """Raw image → normalized float32 ``(H, W, input_channels)`` model input.

        Uses ``nuclib.data.prepare_image`` with this model's ``input_channels``,
        ``normalize`` percentiles and ``invert`` setting.

        Args:
            image: HxW or HxWxC image, any numeric dtype.

        Returns:
            float32 array ``(H, W, input_channels)``, values in [0, 1].

        Raises:
            ValueError: unusable shape, dtype, empty or non-finite image.

        Example:
            >>> Segmenter(None, {"input_channels": 3}).preprocess(np.zeros((4, 5), np.uint8)).shape
            (4, 5, 3)
        """
        from nuclib.data.normalize import prepare_image

        arr = np.asarray(image)
        if arr.ndim not in (2, 3):
            raise ValueError(f"image has {arr.ndim} dimensions {arr.shape}; expected HxW or "
                             "HxWxC (a single 2-D image; loop over stacks yourself)")
        if min(arr.shape[:2]) < 1:
            raise ValueError(f"image is empty (shape {arr.shape})")
        norm = self.config["normalize"]
        return prepare_image(arr, channels=self.config["input_channels"], low=norm["low"],
                             high=norm["high"], invert=self.config["invert"])

    def inferencer(self, **overrides):
        """The ``TiledInferencer`` this segmenter predicts with (cached for the defaults).

        Settings come from the config's ``tiling`` table (``None`` values left
        to ``TiledInferencer``'s defaults). Without overrides the same
        inferencer is returned on every call; with any override (even one
        whose value is ``None``) a new one is built.

        Args:
            **overrides: ``TiledInferencer`` keyword arguments (``tile_size``,
                ``overlap``, ``batch_size``, ``blend``, ``progress``, ...);
                ``None`` values are ignored.

        Returns:
            A ``nuclib.postprocess.TiledInferencer`` around ``self.model``.

        Example:
            >>> from nuclib.models import unet
            >>> seg = Segmenter(unet(depth=2, filters=4))
            >>> seg.inferencer() is seg.inferencer(), seg.inferencer(tile_size=64).tile_size
            (True, (64, 64))
        """
        from nuclib.postprocess.tiling import TiledInferencer

        settings = {k: v for k, v in self.config["tiling"].items() if v is not None}
        settings.update({k: v for k, v in overrides.items() if v is not None})
        key = tuple(sorted(settings.items()))
        if self._inferencer is None or self._inferencer[0] != key:
            self._inferencer = (key, TiledInferencer(self.model, **settings))
        return self._inferencer[1]

    def predict(self, image, *, progress: bool = False, **tiling) -> np.ndarray:
        """Probabilities for one image: ``(H, W, 3)`` (background, interior, boundary)
        for three-class models, ``(H, W, 1)`` foreground for binary ones.

        Args:
            image: HxW or HxWxC image, any numeric dtype, any size.
            progress: show a progress bar over tiles.
            **tiling: override tiling settings (``tile_size``, ``batch_size``, ...).

        Returns:
            float32 array ``(H, W, 3)`` or ``(H, W, 1)`` of the image's height
            and width.

        Raises:
            ValueError: unusable image.

        Example:
            >>> from nuclib.models import unet
            >>> seg = Segmenter(unet(depth=2, filters=4), {"head": "three_class"})
            >>> seg.predict(np.zeros((40, 50), np.uint8)).shape
            (40, 50, 3)
        """
        x = self.preprocess(image)
        return self.inferencer(progress=progress, **tiling).predict(x)

    def postprocess(self, probs, **overrides) -> np.ndarray:
        """Probabilities → uint32 instance labels with this model's thresholds.

        Calls ``three_class_to_labels`` or ``binary_to_labels`` (by ``head``)
        with the config's ``postprocess`` parameters.

        Args:
            probs: ``(H, W, 3)`` or ``(H, W, 1)`` probabilities, as from ``predict``.
            **overrides: post-processing parameters that replace the config's
                for this call.

        Returns:
            uint32 HxW instance labels, nuclei numbered 1..N.

        Example:
            >>> probs = np.zeros((6, 6, 3), np.float32); probs[..., 0] = 1
            >>> probs[1:5, 1:5] = (0, 1, 0)
            >>> int(Segmenter(None).postprocess(probs, min_size=1).max())
            1
        """
        from nuclib.postprocess import binary_to_labels, three_class_to_labels

        params = dict(self.config["postprocess"])
        params.update(overrides)
        if self.head == "three_class":
            return three_class_to_labels(probs, **params)
        return binary_to_labels(probs, **params)

    def segment(self, image, *, progress: bool = False, **postprocess) -> np.ndarray:
        """Instance labels (uint32 HxW, nuclei numbered 1..N) for one image.

        Args:
            image: HxW or HxWxC image, any numeric dtype, any size.
            progress: show a progress bar over tiles.
            **postprocess: override post-processing parameters.

        Returns:
            uint32 array of the image's height and width, 0 for background.

        Raises:
            ValueError: unusable image.

        Example:
            >>> from nuclib.models import unet
            >>> seg = Segmenter(unet(depth=2, filters=4), {"head": "three_class"})
            >>> labels = seg.segment(np.zeros((40, 50), np.uint8))
            >>> labels.shape, labels.dtype
            ((40, 50), dtype('uint32'))
        """
        return self.postprocess(self.predict(image, progress=progress), **postprocess)

    def segment_many(self, images: Iterable | str | Path, *, progress: bool = True,
                     **postprocess) -> list[np.ndarray]:
        """Segment a list of arrays, a list of file paths, or every image in a folder.

        Args:
            images: a folder (every image in it, via ``nuclib.data.list_images``)
                or an iterable of arrays and/or file paths.
            progress: show a progress bar over images.
            **postprocess: override post-processing parameters.

        Returns:
            One uint32 label array per image, in input order.

        Raises:
            ValueError: an unreadable file (named) or unusable image.

        Example:
            >>> results = seg.segment_many("images/")   # doctest: +SKIP
        """
        from tqdm.auto import tqdm

        from nuclib.data.io import list_images, read_image

        if isinstance(images, (str, Path)):
            images = list_images(images)
        items = list(images)
        out = []
        for item in tqdm(items, desc="segmenting", disable=not progress):
            image = read_image(item) if isinstance(item, (str, Path)) else item
            out.append(self.segment(image, **postprocess))
        return out

    # -- persistence --------------------------------------------------------
    def save(self, directory, *, card: str | None = None, overwrite: bool = False) -> Path:
        """Write the model directory: Keras Hub layout + ``nuclib.json`` + model card.

        See ``nuclib.zoo.export.write_model_dir``.

        Args:
            directory: target folder.
            card: text of ``README.md``; default: generated from the config.
            overwrite: replace a non-empty ``directory``.

        Returns:
            ``directory`` as a ``Path``.

        Raises:
            FileExistsError: the directory is not empty and ``overwrite`` is False.

        Example:
            >>> seg.save("models/my-model")                     # doctest: +SKIP
            PosixPath('models/my-model')
        """
        from nuclib.zoo.export import write_model_dir

        return write_model_dir(self.model, self.config, directory, card=card,
                               overwrite=overwrite)

    @classmethod
    def from_directory(cls, directory, *, verify: bool = True) -> "Segmenter":
        """Load a model directory written by ``save`` (``safe_mode=True``).

        With ``verify``, files listed with a sha256 in ``nuclib.json`` are
        checked before Keras reads them.

        Args:
            directory: a model directory (``config.json``, ``metadata.json``,
                ``model.weights.h5``, ``nuclib.json``).
            verify: check the sha256 table of ``nuclib.json``.

        Returns:
            A ``Segmenter`` with the loaded model and config.

        Raises:
            FileNotFoundError: missing files.
            ValueError: a checksum mismatch or a malformed ``nuclib.json``.

        Example:
            >>> seg = Segmenter.from_directory("nuclib/zoo/bundled/dsb-3class")  # doctest: +SKIP
            >>> seg                                                             # doctest: +SKIP
            Segmenter(name='dsb-3class', head='three_class', input_channels=1)
        """
        from nuclib.zoo.files import load_model_dir

        model, config = load_model_dir(directory, verify=verify)
        return cls(model, config)


def read_config(directory) -> dict:
    """Read and validate ``nuclib.json`` of a model directory.

    Only the file's presence, JSON syntax and ``format_version`` are checked;
    the settings are returned as stored (not merged over ``DEFAULT_CONFIG``).

    Args:
        directory: a model directory.

    Returns:
        The parsed ``nuclib.json`` as a dict.

    Raises:
        FileNotFoundError: the directory has no ``nuclib.json``.
        ValueError: invalid JSON, not a JSON object, or a ``format_version``
            other than ``FORMAT_VERSION``.

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
    if not isinstance(config, dict) or config.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported format_version "
                         f"{config.get('format_version') if isinstance(config, dict) else None}; "
                         f"expected {FORMAT_VERSION}")
    return config
