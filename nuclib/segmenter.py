"""``Segmenter``: a model together with its pre- and post-processing.

What ``nuclib.load_pretrained`` returns. It turns any 2-D microscopy image
(8/16-bit or float, 1 or 3 channels, any size) into probabilities
(``predict``) or instance labels (``segment``); images larger than a tile are
tiled through ``nuclib.postprocess.TiledInferencer``. Models trained at one
nucleus size (config ``diameter``) zoom each image to it first, measuring
the nuclei with a quick first pass unless told their ``diameter``.

The Segmenter composes parts that each do one job: a ``Preprocessor``
(normalize, invert, channels, zoom; ``nuclib.preprocessor``), the diameter
estimate (plain functions in ``nuclib.diameter``), the network (the Keras
model or its compiled engine, ``nuclib.engines``) run by a
``TiledInferencer``, test-time augmentation (``nuclib.postprocess.tta``) and
a ``Postprocessor`` that picks the head's post-processing
(``nuclib.postprocess.postprocessor``). It keeps the config they are built
from, so that changing ``seg.config`` changes what they do.

Example:
    >>> import nuclib
    >>> seg = nuclib.load_pretrained("dsb-3class")              # doctest: +SKIP
    >>> labels = seg.segment(nuclib.data.read_image("cells.png"))  # doctest: +SKIP
    >>> int(labels.max())                                        # doctest: +SKIP
    125
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from nuclib.diameter import Estimate, central_window, check_diameter
from nuclib.heads import HEADS, check_head  # noqa: F401  (HEADS re-exported)
from nuclib.model_dir import (  # noqa: F401  (CONFIG_FILE, FORMAT_VERSION, read_config re-exported)
    CONFIG_FILE, DEFAULT_CONFIG, FORMAT_VERSION, merge_config, read_config)
from nuclib.network import Network
from nuclib.postprocess.postprocessor import Postprocessor
from nuclib.prediction import ScaledPrediction
from nuclib.preprocessor import Preprocessor

__all__ = ["Segmenter", "ScaledPrediction"]


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
            installed, else Keras); stored in the config. Default: the
            config's ``engine``, else ``"keras"`` (``from_directory`` and
            ``load_pretrained`` default to ``nuclib.engines.default_engine``).

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

        self._network = Network(model)
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
        # The model directory it was loaded from (set by from_directory and
        # load_pretrained): where Dask workers load the same model.
        self.directory = None

    @property
    def model(self):
        """The Keras model (or other callable); loaded on first use when the segmenter
        came from a model directory whose compiled engine was cached (``from_directory``)."""
        return self._network.model

    @model.setter
    def model(self, value):
        # Another network: forget the engine and the directory it was built for.
        self._network, self._inferencer = Network(value), None

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

    @property
    def preprocessor(self) -> Preprocessor:
        """The image → network input step, from the config's ``input_channels``,
        ``normalize`` and ``invert``."""
        return Preprocessor.from_config(self.config)

    @property
    def postprocessor(self) -> Postprocessor:
        """The head's post-processing with the config's ``postprocess`` parameters."""
        return Postprocessor(self.head, self.config["postprocess"])

    # -- pipeline -----------------------------------------------------------
    def preprocess(self, image) -> np.ndarray:
        """Raw image → normalized float32 ``(H, W, input_channels)`` model input
        (``self.preprocessor``; see ``nuclib.preprocessor.Preprocessor``).

        Raises:
            ValueError: unusable shape, dtype, empty or non-finite image.

        Example:
            >>> Segmenter(None, {"input_channels": 3}).preprocess(np.zeros((4, 5), np.uint8)).shape
            (4, 5, 3)
        """
        return self.preprocessor(image)

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

        network, defaults = self._network.predictor(self.engine, self.config["engine"],
                                                    self.config["precision"])
        settings = dict(defaults)
        settings.update({k: v for k, v in self.config["tiling"].items() if v is not None})
        settings.update({k: v for k, v in overrides.items() if v is not None})
        key = (id(network), tuple(sorted(settings.items())))
        if self._inferencer is None or self._inferencer[0] != key:
            self._inferencer = (key, TiledInferencer(network, **settings))
        return self._inferencer[1]

    def _run(self, x, factor: float, progress: bool, tiling: dict,
             tta: bool = False) -> np.ndarray:
        """Model probabilities for a prepared image zoomed by ``factor`` (with ``tta``,
        the mean over the 8 symmetries of the square: ``nuclib.postprocess.tta``)."""
        from nuclib.postprocess.tta import predict_symmetries

        x = Preprocessor.zoom(x, factor)
        inferencer = self.inferencer(progress=progress, **tiling)
        return predict_symmetries(inferencer.predict, x, self.head) if tta \
            else inferencer.predict(x)

    def estimate_diameter(self, image, *, progress: bool = True) -> float:
        """Median nucleus diameter (pixels) in an image, measured with this model.

        A first pass at the image's own scale finds nuclei; if their size is
        far from the model's training ``diameter``, a second pass at the
        zoom that size asks for measures them again (``nuclib.diameter``). A
        central window of at most ``estimate_side`` pixels per side is used.

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
        window = central_window(self.preprocess(image), int(self.config["estimate_side"]))
        return self.estimate_prepared(window, progress=progress).diameter

    def estimate_prepared(self, x, *, progress: bool = False) -> Estimate:
        """``nuclib.diameter.estimate`` of an already prepared image (or window) with
        this model's passes and post-processing.

        Raises:
            ValueError: the model has no training ``diameter``.
        """
        from nuclib.diameter import estimate

        if self.config["diameter"] is None:
            raise ValueError(f"model {self.name!r} has no training diameter to estimate against")
        return estimate(x, run=lambda x, factor: self._run(x, factor, progress, {}),
                        postprocess=self.postprocessor, params=self.config["postprocess"],
                        trained=self.config["diameter"])

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

        check_diameter(diameter, self.config["diameter"], self.name)
        tta = self.config["tta"] if tta is None else tta
        x = self.preprocess(image)
        if self.config["diameter"] is None:
            return ScaledPrediction(self._run(x, 1.0, progress, tiling, tta), 1.0,
                                    x.shape[:2], None)
        if diameter is None:
            window = central_window(x, int(self.config["estimate_side"]))
            # Passes over a central crop only size the nuclei: no bar of their own.
            # Over the whole image they are the prediction, and show theirs.
            found = self.estimate_prepared(window, progress=progress and window.shape == x.shape)
            diameter = found.diameter
            if window.shape == x.shape and not tiling and not tta:
                return ScaledPrediction(found.probs, found.factor, x.shape[:2], diameter,
                                        found.measured)
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
        pred = self.predict_scaled(image, diameter=diameter, tta=tta, progress=progress,
                                   **tiling)
        return self.postprocessor.probs_at_size(pred)

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
        return self.postprocessor.labels_at_size(pred, **postprocess)

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
        return self.postprocessor(probs, **overrides)

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

    def export_bioimageio(self, path, *, overwrite: bool = False, **options) -> Path:
        """Write a bioimage.io model package (``.zip``) for deepImageJ, QuPath, ilastik, napari.

        See ``nuclib.bioimageio.export_bioimageio``: Keras, ONNX and SavedModel
        weights, the normalization as declared preprocessing, test tensors,
        halo, cover and model card; DSB2018 named only for models trained on it.

        Args:
            path: the output ``.zip`` (the suffix is added when missing).
            overwrite: replace an existing output.
            **options: ``weight_formats``, ``test_image``, ``diameter``,
                ``invert``, ``license``, ``authors``.

        Returns:
            The path of the zip written.

        Example:
            >>> seg.export_bioimageio("dsb-3class.zip")            # doctest: +SKIP
            PosixPath('dsb-3class.zip')
        """
        from nuclib.bioimageio import export_bioimageio

        return export_bioimageio(self, path, overwrite=overwrite, **options)

    @classmethod
    def from_directory(cls, directory, *, verify: bool = True, engine: str | None = None,
                       expected: dict[str, str] | None = None) -> "Segmenter":
        """Load a model directory written by ``save`` (``safe_mode=True``).

        With ``verify``, files listed with a sha256 in ``nuclib.json`` (or in
        ``expected``) are checked before anything reads them.

        With a compiled engine (``openvino``, ``onnxruntime``, or ``auto``
        where OpenVINO is installed) whose conversion of these files is in
        the engine cache (``nuclib.engines``), Keras is not imported: the
        Keras model is loaded only when ``segmenter.model`` is asked for.
        For a small image that halves the time of a whole process.

        Args:
            directory: a model directory (``config.json``, ``metadata.json``,
                ``model.weights.h5``, ``nuclib.json``).
            verify: check the sha256 values.
            engine: what runs the network (see ``Segmenter``); default:
                ``nuclib.engines.default_engine``: ``$NUCLIB_ENGINE``, else
                ``"auto"`` (OpenVINO when installed, else Keras).
            expected: pinned ``{filename: sha256}`` (the zoo registry's),
                checked before ``nuclib.json`` is read.

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
        from nuclib.engines import default_engine
        from nuclib.model_dir import check_model_dir

        directory = Path(directory).expanduser().resolve()
        config = check_model_dir(directory, verify=verify, expected=expected)
        segmenter = cls(None, config, engine=engine or default_engine(config.get("engine")))
        segmenter.directory = directory
        segmenter._network = Network.from_directory(directory, segmenter.engine,
                                                    segmenter.config["precision"])
        return segmenter
