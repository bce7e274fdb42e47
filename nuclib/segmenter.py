"""``Segmenter``: a model together with its pre- and post-processing.

What ``nuclib.load_pretrained`` returns. It turns any 2-D microscopy image
(8/16-bit or float, 1 or 3 channels, any size) into probabilities
(``predict``) or instance labels (``segment``); images larger than a tile are
tiled through ``nuclib.postprocess.TiledInferencer``. Models trained at one
nucleus size (config ``diameter``) zoom each image to it first, measuring
the nuclei with a quick first pass unless told their ``diameter``.

Example:
    >>> import nuclib
    >>> seg = nuclib.load_pretrained("dsb-3class")              # doctest: +SKIP
    >>> labels = seg.segment(nuclib.data.read_image("cells.png"))  # doctest: +SKIP
    >>> int(labels.max())                                        # doctest: +SKIP
    125
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from nuclib.heads import HEADS, check_head  # noqa: F401  (HEADS re-exported)
from nuclib.model_dir import (  # noqa: F401  (CONFIG_FILE, FORMAT_VERSION, read_config re-exported)
    CONFIG_FILE, DEFAULT_CONFIG, FORMAT_VERSION, merge_config, read_config)

# The size estimate stops refining once two passes agree within this factor.
_ESTIMATE_AGREEMENT = 1.1


@dataclass
class ScaledPrediction:
    """Probabilities in the model's space: the image zoomed by ``factor``.

    Attributes:
        probs: ``(h, w, K)`` probabilities of the zoomed image.
        factor: zoom applied to the image (1.0: none).
        shape: ``(H, W)`` of the original image.
        diameter: the nucleus diameter (original pixels) the zoom is based
            on; ``None`` when the model has no training diameter, ``nan``
            when no nucleus was found to measure.
    """

    probs: np.ndarray
    factor: float
    shape: tuple
    diameter: float | None


class Segmenter:
    """A Keras model plus the settings that make it usable on raw images.

    Args:
        model: a Keras model (or, with the ``keras`` or ``auto`` engine, any
            callable mapping ``(N, H, W, C)`` float32 batches to
            ``(N, H, W, K)`` probabilities).
        config: settings, merged over ``DEFAULT_CONFIG``: ``head``
            (``"three_class"`` or ``"binary"``), ``input_channels``,
            ``normalize`` percentiles, ``invert`` (``"auto"``/true/false),
            ``postprocess`` keyword arguments, ``tiling`` (tile size,
            overlap, batch size, blend), ``diameter`` (the median nucleus
            diameter in pixels the model was trained at, or None) and
            ``estimate_side``, ``engine``, ``precision`` (the OpenVINO
            engine's: ``"auto"``, ``"f32"`` or ``"bf16"``; see ``nuclib.engines``).
        engine: what runs the network (``nuclib.engines``): ``"keras"``,
            ``"openvino"``, ``"onnxruntime"`` or ``"auto"`` (OpenVINO when
            installed, else Keras); stored in the config (so it is saved with
            the model). Default: the config's ``engine``, else ``"keras"``.

    Raises:
        ValueError: an unknown head, channel count or engine, or an engine
            whose package is not installed (the message names the
            ``pip install``).

    Example:
        >>> from nuclib.models import unet
        >>> seg = Segmenter(unet(depth=2, filters=4), {"head": "three_class"})
        >>> seg.segment(np.zeros((40, 50), np.uint8)).shape
        (40, 50)
    """

    def __init__(self, model, config: dict | None = None, *, engine: str | None = None):
        from nuclib.engines import check_engine, is_keras_model, resolve_precision

        self.model = model
        self.config = merge_config(DEFAULT_CONFIG, config or {})
        if engine is not None:
            self.config["engine"] = engine
        check_engine(self.config["engine"])
        resolve_precision(self.config["precision"])
        if (self.config["engine"] in ("openvino", "onnxruntime") and model is not None
                and not is_keras_model(model)):
            raise ValueError(f"engine {self.config['engine']!r} converts Keras models; got a "
                             f"{type(model).__name__} (use engine='keras' or 'auto')")
        check_head(self.config["head"])
        if self.config["input_channels"] not in (1, 3):
            raise ValueError(f"input_channels must be 1 or 3, got {self.config['input_channels']}")
        trained = self.config["diameter"]
        if trained is not None and not (isinstance(trained, (int, float)) and trained > 0):
            raise ValueError(f"config diameter must be a positive number of pixels or None, "
                             f"got {trained!r}")
        self._inferencer = None
        self._engine = None
        # The model directory it was loaded from (set by from_directory and
        # load_pretrained): where Dask workers load the same model.
        self.directory = None

    # -- properties ---------------------------------------------------------
    @property
    def name(self) -> str:
        """The model's name (e.g. ``"dsb-3class"``)."""
        return self.config["name"]

    @property
    def head(self) -> str:
        """One of ``nuclib.heads.HEADS``."""
        return self.config["head"]

    @property
    def engine(self) -> str:
        """The engine that runs the network: ``"keras"``, ``"openvino"`` or ``"onnxruntime"``
        (the config's ``engine``, with ``"auto"`` resolved)."""
        from nuclib.engines import resolve_engine

        return resolve_engine(self.config["engine"])

    def __repr__(self) -> str:
        engine = self.config["engine"]
        return (f"Segmenter(name={self.name!r}, head={self.head!r}, "
                f"input_channels={self.config['input_channels']}"
                + (f", engine={engine!r})" if engine != "keras" else ")"))

    def _network(self):
        """``(predictor, tiling defaults)``: the model, or its compiled engine with the
        Keras model's stride and receptive field (so tiles are laid out identically)."""
        from nuclib.engines import is_keras_model, make_engine

        name = self.engine
        if name == "keras" or self.model is None or (
                self.config["engine"] == "auto" and not is_keras_model(self.model)):
            return self.model, {}
        key = (name, self.config["precision"], id(self.model))
        if self._engine is None or self._engine[0] != key:
            self._engine = (key, make_engine(self.model, name, self.config["precision"]))
        engine = self._engine[1]
        return engine, {"multiple": engine.multiple, "overlap": engine.overlap}

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
            A ``nuclib.postprocess.TiledInferencer`` around ``self.model``, or
            around its compiled engine (``nuclib.engines``) with the Keras
            model's stride and receptive field, so tiles are the same.

        Example:
            >>> from nuclib.models import unet
            >>> seg = Segmenter(unet(depth=2, filters=4))
            >>> seg.inferencer() is seg.inferencer(), seg.inferencer(tile_size=64).tile_size
            (True, (64, 64))
        """
        from nuclib.postprocess.tiling import TiledInferencer

        network, defaults = self._network()
        settings = dict(defaults)
        settings.update({k: v for k, v in self.config["tiling"].items() if v is not None})
        settings.update({k: v for k, v in overrides.items() if v is not None})
        key = (id(network), tuple(sorted(settings.items())))
        if self._inferencer is None or self._inferencer[0] != key:
            self._inferencer = (key, TiledInferencer(network, **settings))
        return self._inferencer[1]

    def _run(self, x, factor: float, progress: bool, tiling: dict,
             tta: bool = False) -> np.ndarray:
        """Model probabilities for a prepared image zoomed by ``factor``.

        With ``tta``, the mean over the 8 symmetries of the square (4
        rotations, each with and without a mirror), each mapped back.
        """
        from nuclib.data.scale import rescale_image
        from nuclib.postprocess.star import rays_from_view

        if factor != 1.0:
            x = rescale_image(x, factor)
        inferencer = self.inferencer(progress=progress, **tiling)
        if not tta:
            return inferencer.predict(x)
        total = None
        for turns in range(4):
            for mirror in (False, True):
                view = np.rot90(x, turns)
                view = view[:, ::-1] if mirror else view
                probs = inferencer.predict(np.ascontiguousarray(view))
                if self.head == "star":  # the rays turn with the image
                    probs = rays_from_view(probs, turns, mirror)
                probs = np.rot90(probs[:, ::-1] if mirror else probs, -turns)
                total = probs.astype(np.float32) if total is None else total + probs
        return total / 8

    def _measure(self, probs, factor: float) -> float:
        """Median nucleus diameter, in original pixels, of a model-space prediction."""
        from nuclib.data.scale import median_diameter

        return median_diameter(self.postprocess(probs).astype(np.int64)) / factor

    def _check_diameter(self, diameter):
        if diameter is None:
            return
        if self.config["diameter"] is None:
            raise ValueError(f"model {self.name!r} was trained at each image's own scale and "
                             "cannot zoom to a nucleus size; call it without diameter")
        if not (isinstance(diameter, (int, float, np.number)) and math.isfinite(diameter)
                and diameter > 0):
            raise ValueError(f"diameter must be a positive number of pixels, got {diameter!r}")

    def estimate_diameter(self, image, *, progress: bool = True) -> float:
        """Median nucleus diameter (pixels) in an image, measured with this model.

        A first pass at the image's own scale finds nuclei; if their size is
        far from the model's training ``diameter``, a second pass at the
        zoom that size asks for measures them again. A central window of at
        most ``estimate_side`` pixels per side is used.

        Args:
            image: HxW or HxWxC image, any numeric dtype.
            progress: show a progress bar over tiles (``nuclib.progress``).

        Returns:
            The diameter in the image's pixels, or ``nan`` when no nucleus is
            found.

        Raises:
            ValueError: the model has no training ``diameter``, or an unusable image.

        Example:
            >>> seg = nuclib.load_pretrained("dsb-3class")        # doctest: +SKIP
            >>> round(seg.estimate_diameter(image))               # doctest: +SKIP
            14
        """
        if self.config["diameter"] is None:
            raise ValueError(f"model {self.name!r} has no training diameter to estimate against")
        return self._estimate(self._window(self.preprocess(image)), progress)[0]

    def _window(self, x):
        side = int(self.config["estimate_side"])
        h, w = x.shape[:2]
        y0, x0 = max((h - side) // 2, 0), max((w - side) // 2, 0)
        return x[y0:y0 + side, x0:x0 + side]

    def _estimate(self, x, progress: bool):
        """``(diameter, factor, probs)``: the estimate and the last pass made for it."""
        from nuclib.data.scale import scale_for_diameter

        factor, probs = 1.0, self._run(x, 1.0, progress, {})
        diameter = self._measure(probs, factor)
        for _ in range(2):  # at most two refinements: three passes in all
            wanted = scale_for_diameter(diameter, self.config["diameter"])
            if not math.isfinite(diameter) or (
                    max(wanted, factor) / min(wanted, factor) < _ESTIMATE_AGREEMENT):
                break
            factor, probs = wanted, self._run(x, wanted, progress, {})
            remeasured = self._measure(probs, factor)
            if not math.isfinite(remeasured):
                break
            diameter = remeasured
        return diameter, factor, probs

    def predict_scaled(self, image, *, diameter: float | None = None, tta: bool | None = None,
                       progress: bool = True, **tiling) -> ScaledPrediction:
        """Probabilities in the model's space, where nuclei have the training size.

        For models without a training ``diameter`` this is ``predict`` with
        ``factor`` 1. Otherwise the image is zoomed by ``training diameter /
        diameter`` (``diameter`` measured with ``estimate_diameter`` when not
        given) before the model sees it.

        Args:
            image: HxW or HxWxC image, any numeric dtype, any size.
            diameter: median nucleus diameter in the image, in pixels, if known.
            tta: average over the 8 rotations and mirrors of the image (8x
                slower, slightly more accurate); default: the config's ``tta``.
            progress: show a progress bar over tiles (``nuclib.progress``).
            **tiling: override tiling settings (``tile_size``, ``batch_size``, ...).

        Returns:
            A ``ScaledPrediction`` (probabilities, zoom factor, original shape,
            diameter used).

        Raises:
            ValueError: unusable image, or a ``diameter`` that is not a positive
                number or given to a model without a training diameter.

        Example:
            >>> from nuclib.models import unet
            >>> seg = Segmenter(unet(depth=2, filters=4), {"diameter": 20})
            >>> pred = seg.predict_scaled(np.zeros((40, 50), np.uint8), diameter=10)
            >>> pred.factor, pred.probs.shape[:2], pred.shape
            (2.0, (80, 100), (40, 50))
        """
        from nuclib.data.scale import scale_for_diameter

        self._check_diameter(diameter)
        tta = self.config["tta"] if tta is None else tta
        x = self.preprocess(image)
        if self.config["diameter"] is None:
            return ScaledPrediction(self._run(x, 1.0, progress, tiling, tta), 1.0,
                                    x.shape[:2], None)
        if diameter is None:
            window = self._window(x)
            # Passes over a central crop only size the nuclei: no bar of their own.
            # Over the whole image they are the prediction, and show theirs.
            diameter, factor, probs = self._estimate(window, progress and window.shape == x.shape)
            if window.shape == x.shape and not tiling and not tta:
                return ScaledPrediction(probs, factor, x.shape[:2], diameter)
        factor = scale_for_diameter(diameter, self.config["diameter"])
        return ScaledPrediction(self._run(x, factor, progress, tiling, tta), factor,
                                x.shape[:2], float(diameter))

    def predict(self, image, *, diameter: float | None = None, tta: bool | None = None,
                progress: bool = True, **tiling) -> np.ndarray:
        """Probabilities for one image: ``(H, W, 3)`` (background, interior, boundary)
        for three-class models, ``(H, W, 1)`` foreground for binary ones.

        Args:
            image: HxW or HxWxC image, any numeric dtype, any size.
            diameter: median nucleus diameter in pixels, for models trained at
                one nucleus size (config ``diameter``); measured when omitted.
            tta: average over the 8 rotations and mirrors (see ``predict_scaled``).
            progress: show a progress bar over tiles (``nuclib.progress``).
            **tiling: override tiling settings (``tile_size``, ``batch_size``, ...).

        Returns:
            float32 array ``(H, W, 3)`` or ``(H, W, 1)`` of the image's height
            and width.

        Raises:
            ValueError: unusable image or diameter.

        Example:
            >>> from nuclib.models import unet
            >>> seg = Segmenter(unet(depth=2, filters=4), {"head": "three_class"})
            >>> seg.predict(np.zeros((40, 50), np.uint8)).shape
            (40, 50, 3)
        """
        from nuclib.data.scale import rescale_image

        pred = self.predict_scaled(image, diameter=diameter, tta=tta, progress=progress,
                                   **tiling)
        if pred.factor == 1.0:
            return pred.probs
        out = rescale_image(pred.probs, shape=pred.shape)
        if self.head == "star":  # distances in the original image's pixels
            out[..., 1:] /= pred.factor
        return out

    def labels_from(self, pred: ScaledPrediction, **postprocess) -> np.ndarray:
        """Instance labels at the original size from a ``ScaledPrediction``.

        Post-processing runs in the model's space (so ``min_size`` and the
        thresholds mean the same for every image); the labels are then
        zoomed back with nearest-neighbour sampling and renumbered 1..N.

        Args:
            pred: from ``predict_scaled``.
            **postprocess: override post-processing parameters.

        Returns:
            uint32 ``pred.shape`` instance labels.

        Example:
            >>> seg = Segmenter(None)
            >>> probs = np.zeros((8, 8, 3), np.float32); probs[..., 0] = 1
            >>> probs[2:6, 2:6] = (0, 1, 0)
            >>> labels = seg.labels_from(ScaledPrediction(probs, 2.0, (4, 4), 5.0), min_size=1)
            >>> labels.tolist()
            [[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
        """
        from skimage.segmentation import relabel_sequential

        from nuclib.data.scale import rescale_labels

        labels = self.postprocess(pred.probs, **postprocess)
        if pred.factor == 1.0:
            return labels
        labels = rescale_labels(labels, shape=pred.shape)
        # Objects thinner than a pixel of the original grid can vanish: renumber.
        return relabel_sequential(labels)[0].astype(np.uint32)

    def postprocess(self, probs, **overrides) -> np.ndarray:
        """Probabilities → uint32 instance labels with this model's thresholds.

        Calls the head's post-processing (``nuclib.postprocess.thresholds.KINDS``:
        ``three_class_to_labels``, ``binary_to_labels``, ``star_to_labels``
        or ``distance_to_labels``) with the config's ``postprocess`` parameters.

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
        from nuclib.postprocess.thresholds import KINDS

        params = dict(self.config["postprocess"])
        params.update(overrides)
        return KINDS[self.head](probs, **params)

    def segment(self, image, *, diameter: float | None = None, tta: bool | None = None,
                progress: bool = True, **postprocess) -> np.ndarray:
        """Instance labels (uint32 HxW, nuclei numbered 1..N) for one image.

        Args:
            image: HxW or HxWxC image, any numeric dtype, any size.
            diameter: median nucleus diameter in pixels, for models trained at
                one nucleus size (config ``diameter``); measured when omitted.
            tta: average over the 8 rotations and mirrors (see ``predict_scaled``).
            progress: show a progress bar over tiles (``nuclib.progress``).
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
        pred = self.predict_scaled(image, diameter=diameter, tta=tta, progress=progress)
        return self.labels_from(pred, **postprocess)

    def segment_many(self, images: Iterable | str | Path, *, diameter: float | None = None,
                     tta: bool | None = None, progress: bool = True,
                     **postprocess) -> list[np.ndarray]:
        """Segment a list of arrays, a list of file paths, or every image in a folder.

        Args:
            images: a folder (every image in it, via ``nuclib.data.list_images``)
                or an iterable of arrays and/or file paths.
            diameter: nucleus diameter for every image (see ``segment``);
                measured per image when omitted.
            tta: average over rotations and mirrors (see ``predict_scaled``).
            progress: show a progress bar over images.
            **postprocess: override post-processing parameters.

        Returns:
            One uint32 label array per image, in input order.

        Raises:
            ValueError: an unreadable file (named) or unusable image.

        Example:
            >>> results = seg.segment_many("images/")   # doctest: +SKIP
        """
        from nuclib.data.io import list_images, read_image
        from nuclib.progress import progress_bar

        if isinstance(images, (str, Path)):
            images = list_images(images)
        items = list(images)
        out = []
        for item in progress_bar(items, desc="segmenting", unit="image", enabled=progress):
            image = read_image(item) if isinstance(item, (str, Path)) else item
            out.append(self.segment(image, diameter=diameter, tta=tta, **postprocess))
        return out

    def segment_large(self, image, *, diameter: float | None = None, block_size: int = 2048,
                      min_overlap: int = 128, context: int | None = None, out=None,
                      client=None, overwrite: bool = False, progress: bool = True,
                      **options):
        """Instance labels of an image of any size, block by block, as ``segment`` gives whole.

        The normalization levels (sampled), the diameter and the zoom grid are
        the whole image's, and each block reads the network's receptive field
        and ``context`` pixels for post-processing around what it keeps; see
        ``nuclib.slides.segment_large``, which this calls.

        Args:
            image: HxW or HxWxC array-like (NumPy, memmap, zarr); one block is
                read at a time.
            diameter: median nucleus diameter in pixels; measured once when omitted.
            block_size: side of the window read per block (original pixels).
            min_overlap: the largest nucleus (pixels per axis) stitched exactly.
            context: post-processing context per block; default ``min_overlap``.
            out: integer (H, W) array to write into; default new uint32 zeros.
                A zarr array or a path (``"labels.zarr"``): written core by
                core, resumably, and returned.
            client: a ``distributed.Client``: the workers load the model once
                each (from ``self.directory``), segment the blocks and write
                ``out`` (a zarr array or path); no label array comes back.
            overwrite: replace a complete zarr ``out``.
            progress: show a progress bar over blocks.
            **options: ``on_large``, ``max_samples`` and post-processing parameters.

        Returns:
            ``out``: uint32 labels 1..N.

        Example:
            >>> labels = seg.segment_large(nuclib.data.read_image("slide.tif", memmap=True))  # doctest: +SKIP
            >>> seg.segment_large(zarr.open_array("slide.zarr"), out="labels.zarr",
            ...                   client=client)                     # doctest: +SKIP
        """
        from nuclib.slides import segment_large

        return segment_large(self, image, diameter=diameter, block_size=block_size,
                             min_overlap=min_overlap, context=context, out=out,
                             client=client, overwrite=overwrite, progress=progress, **options)

    # -- persistence --------------------------------------------------------
    def save(self, directory, *, card: str | None = None, overwrite: bool = False) -> Path:
        """Write the model directory: Keras Hub layout + ``nuclib.json`` + model card.

        See ``nuclib.model_dir.write_model_dir``.

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
        from nuclib.model_dir import write_model_dir

        return write_model_dir(self.model, self.config, directory, card=card,
                               overwrite=overwrite)

    def export(self, path, format: str = "onnx", *, overwrite: bool = False) -> Path:
        """Export the network for another runtime (ONNX, OpenVINO IR, TF SavedModel).

        See ``nuclib.export.export_model``: the exported graph is the model
        alone (input ``image``, ``(N, H, W, C)`` float32 normalized as by
        ``preprocess``, H and W multiples of ``nuclib.models.required_multiple``;
        output the ``(N, H, W, K)`` probabilities).

        Args:
            path: a ``.onnx`` file, an OpenVINO ``.xml`` (``.bin`` beside it)
                or a SavedModel folder.
            format: ``"onnx"``, ``"openvino"`` or ``"saved_model"``.
            overwrite: replace existing outputs.

        Returns:
            The main path written.

        Raises:
            ValueError: unknown format or its package missing.
            FileExistsError: an output exists and ``overwrite`` is False.

        Example:
            >>> seg.export("dsb-3class.xml", format="openvino")   # doctest: +SKIP
            PosixPath('dsb-3class.xml')
        """
        from nuclib.export import export_model

        return export_model(self, path, format=format, overwrite=overwrite)

    @classmethod
    def from_directory(cls, directory, *, verify: bool = True,
                       engine: str | None = None) -> "Segmenter":
        """Load a model directory written by ``save`` (``safe_mode=True``).

        With ``verify``, files listed with a sha256 in ``nuclib.json`` are
        checked before Keras reads them.

        Args:
            directory: a model directory (``config.json``, ``metadata.json``,
                ``model.weights.h5``, ``nuclib.json``).
            verify: check the sha256 table of ``nuclib.json``.
            engine: what runs the network (see ``Segmenter``); default: the
                saved config's ``engine``.

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
        from nuclib.model_dir import load_model_dir

        model, config = load_model_dir(directory, verify=verify)
        segmenter = cls(model, config, engine=engine)
        segmenter.directory = Path(directory).expanduser().resolve()
        return segmenter
