"""``SegmentationTask``: a network between its pre- and post-processing, composed of parts.

The part of a ``nuclib.Segmenter`` that segments (the Segmenter adds what
the model is, its record and its files). It only composes parts that each do
one job:

- ``config``, a ``nuclib.config.SegmenterConfig``: the checked settings
  every part is built from (changing them changes what the parts do);
- a ``Preprocessor`` (normalize, invert, channels, zoom; ``nuclib.preprocessor``);
- the diameter estimate and the zoom to the training size (plain functions
  in ``nuclib.diameter``);
- the network (the Keras model or its compiled engine, and the
  ``TiledInferencer`` that runs it; ``nuclib.network``), with test-time
  augmentation (``nuclib.postprocess.tta``);
- a ``Postprocessor`` that picks the head's post-processing
  (``nuclib.postprocess.postprocessor``).

Example:
    >>> import numpy as np
    >>> from nuclib.models import unet
    >>> task = SegmentationTask(unet(depth=2, filters=4), {"diameter": 20})
    >>> task.predict_scaled(np.zeros((40, 50), np.uint8), diameter=10).factor
    2.0
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from nuclib.config import SegmenterConfig
from nuclib.diameter import Estimate, central_window, check_diameter
from nuclib.engines import check_engine_runs
from nuclib.network import Network
from nuclib.postprocess.postprocessor import Postprocessor
from nuclib.prediction import ScaledPrediction
from nuclib.preprocessor import Preprocessor

__all__ = ["SegmentationTask"]


class SegmentationTask:
    """A network between its pre- and post-processing: raw image → probabilities → labels.

    Args:
        model: a Keras model (or, with the ``keras`` or ``auto`` engine, any
            callable mapping ``(N, H, W, C)`` float32 batches to
            ``(N, H, W, K)`` probabilities); None for pre- and post-processing only.
        config: a ``SegmenterConfig`` or a dict of its settings (missing ones
            take their defaults).
        engine: what runs the network (``nuclib.engines``): ``"keras"``,
            ``"openvino"``, ``"onnxruntime"`` or ``"auto"``; stored in the config.

    Raises:
        ValueError: a setting out of range (see ``SegmenterConfig``), or a
            compiled engine asked to run something that is not a Keras model.

    Example:
        >>> from nuclib.models import unet
        >>> task = SegmentationTask(unet(depth=2, filters=4), {"head": "three_class"})
        >>> task.segment(np.zeros((40, 50), np.uint8)).shape
        (40, 50)
    """

    def __init__(self, model, config: SegmenterConfig | dict | None = None, *,
                 engine: str | None = None):
        self._config = SegmenterConfig.from_dict(config or {})
        if engine is not None:
            self._config.engine = engine
        self.model = model

    @property
    def config(self) -> SegmenterConfig:
        """The run-time settings (``SegmenterConfig``); assign one, or a dict of settings."""
        return self._config

    @config.setter
    def config(self, value: SegmenterConfig | dict) -> None:
        new = SegmenterConfig.from_dict(value)
        if isinstance(value, dict):  # the machine's engine stays unless the dict names one
            for key in SegmenterConfig.RUNTIME:
                if key not in value:
                    setattr(new, key, getattr(self._config, key))
        check_engine_runs(new.engine, self.model if self._network.loaded else None)
        self._config = new

    @property
    def model(self):
        """The Keras model (or other callable); loaded on first use when the segmenter came
        from a model directory whose compiled engine is cached (``from_directory``)."""
        return self._network.model

    @model.setter
    def model(self, value):
        # Another network: forget the engine and the directory it was built for.
        check_engine_runs(self.config.engine, value)
        self._network = Network(value)

    @property
    def name(self) -> str:
        """The model's name (e.g. ``"dsb-3class"``)."""
        return self.config.name

    @property
    def head(self) -> str:
        """One of ``nuclib.heads.HEADS``."""
        return self.config.head

    @property
    def engine(self) -> str:
        """The engine that runs the network, ``"auto"`` resolved (``nuclib.engines``)."""
        from nuclib.engines import resolve_engine

        return resolve_engine(self.config.engine)

    def __repr__(self) -> str:
        engine = self.config.engine
        return (f"SegmentationTask(name={self.name!r}, head={self.head!r}, "
                f"input_channels={self.config.input_channels}"
                + (f", engine={engine!r})" if engine != "keras" else ")"))

    # -- the parts ------------------------------------------------------------
    @property
    def preprocessor(self) -> Preprocessor:
        """The image → network input step, from the settings."""
        return Preprocessor.from_config(self.config)

    @property
    def postprocessor(self) -> Postprocessor:
        """The head's post-processing with the settings' ``postprocess`` parameters."""
        return Postprocessor(self.head, self.config.postprocess)

    def inferencer(self, **overrides):
        """The ``TiledInferencer`` this segmenter predicts with (cached for equal settings).

        Args:
            **overrides: ``TiledInferencer`` keyword arguments (``tile_size``,
                ``overlap``, ``batch_size``, ``blend``, ``progress``, ...) over
                the settings' ``tiling``; ``None`` values are ignored.

        Returns:
            A ``TiledInferencer`` around the model or its compiled engine,
            which keeps the Keras model's stride and receptive field, so the
            tiles are the same.

        Example:
            >>> from nuclib.models import unet
            >>> seg = SegmentationTask(unet(depth=2, filters=4))
            >>> seg.inferencer() is seg.inferencer(), seg.inferencer(tile_size=64).tile_size
            (True, (64, 64))
        """
        return self._network.inferencer(self.engine, self.config.engine, self.config.precision,
                                        **{**self.config.to_dict()["tiling"], **overrides})

    def preprocess(self, image) -> np.ndarray:
        """Raw image → normalized float32 ``(H, W, input_channels)`` (``self.preprocessor``).

        Example:
            >>> SegmentationTask(None, {"input_channels": 3}).preprocess(np.zeros((4, 5), np.uint8)).shape
            (4, 5, 3)
        """
        return self.preprocessor(image)

    def postprocess(self, probs, **overrides) -> np.ndarray:
        """Probabilities at any scale → uint32 instance labels 1..N (``self.postprocessor``).

        Example:
            >>> probs = np.zeros((6, 6, 3), np.float32); probs[..., 0] = 1
            >>> probs[1:5, 1:5] = (0, 1, 0)
            >>> int(SegmentationTask(None).postprocess(probs, min_size=1).max())
            1
        """
        return self.postprocessor(probs, **overrides)

    # -- the pipeline -----------------------------------------------------------
    def _run(self, x, factor: float, progress: bool, tiling: dict,
             tta: bool = False) -> np.ndarray:
        """Probabilities of a prepared image zoomed by ``factor`` (``tta``: mean over the
        8 symmetries of the square)."""
        from nuclib.postprocess.tta import predict_symmetries

        x = Preprocessor.zoom(x, factor)
        inferencer = self.inferencer(progress=progress, **tiling)
        return predict_symmetries(inferencer.predict, x, self.head) if tta \
            else inferencer.predict(x)

    def estimate_diameter(self, image, *, progress: bool = True) -> float:
        """Median nucleus diameter (the image's pixels; ``nan``: none found), measured with
        this model on the image, or on its central window where it has more than
        ``estimate_side`` squared pixels (``nuclib.diameter.window_bounds``).

        Raises:
            ValueError: the model has no training ``diameter``, or an unusable image.

        Example:
            >>> round(nuclib.load_pretrained("dsb-3class").estimate_diameter(image))  # doctest: +SKIP
            14
        """
        window = central_window(self.preprocess(image), self.config.estimate_side)
        return self.estimate_prepared(window, progress=progress).diameter

    def estimate_prepared(self, x, *, progress: bool = False) -> Estimate:
        """``nuclib.diameter.estimate`` of a prepared image (or window) with this model's
        passes and post-processing.

        Raises:
            ValueError: the model has no training ``diameter``.
        """
        from nuclib.diameter import estimate

        if self.config.diameter is None:
            raise ValueError(f"model {self.name!r} has no training diameter to estimate against")
        return estimate(x, run=lambda x, factor: self._run(x, factor, progress, {}),
                        postprocess=self.postprocessor, params=self.config.postprocess,
                        trained=self.config.diameter,
                        probe_side=self.config.estimate_probe_side)

    def predict_scaled(self, image, *, diameter: float | None = None, tta: bool | None = None,
                       progress: bool = True, **tiling) -> ScaledPrediction:
        """Probabilities in the model's space, where nuclei have the training size.

        The image is zoomed by ``training diameter / diameter`` (``diameter``
        measured when not given; no zoom for models without a training size).

        Args:
            image: HxW or HxWxC image, any numeric dtype, any size.
            diameter: median nucleus diameter in the image, in pixels, if known.
            tta: average over the 8 rotations and mirrors (8x slower, slightly
                more accurate); default: the settings' ``tta``.
            progress: show a progress bar over tiles (``nuclib.progress``).
            **tiling: override tiling settings (``tile_size``, ``batch_size``, ...).

        Raises:
            ValueError: unusable image, or a ``diameter`` that is not a positive
                number or given to a model without a training diameter.

        Example:
            >>> from nuclib.models import unet
            >>> seg = SegmentationTask(unet(depth=2, filters=4), {"diameter": 20})
            >>> pred = seg.predict_scaled(np.zeros((40, 50), np.uint8), diameter=10)
            >>> pred.factor, pred.probs.shape[:2], pred.shape
            (2.0, (80, 100), (40, 50))
        """
        from nuclib.diameter import predict_at_training_size

        check_diameter(diameter, self.config.diameter, self.name)
        tta = self.config.tta if tta is None else tta
        return predict_at_training_size(
            self.preprocess(image), run=lambda x, factor: self._run(x, factor, progress, tiling, tta),
            # Passes over a central crop only size the nuclei: no bar of their
            # own. Over the whole image they are the prediction, and show theirs.
            measure=lambda window, whole: self.estimate_prepared(window,
                                                                 progress=progress and whole),
            trained=self.config.diameter, side=self.config.estimate_side, diameter=diameter,
            reuse=not tiling and not tta)

    def predict(self, image, *, diameter: float | None = None, tta: bool | None = None,
                progress: bool = True, **tiling) -> np.ndarray:
        """float32 ``(H, W, K)`` probabilities of the head (``nuclib.heads``) at the image's
        size; arguments as ``predict_scaled``.

        Example:
            >>> from nuclib.models import unet
            >>> SegmentationTask(unet(depth=2, filters=4)).predict(np.zeros((40, 50), np.uint8)).shape
            (40, 50, 3)
        """
        pred = self.predict_scaled(image, diameter=diameter, tta=tta, progress=progress,
                                   **tiling)
        return self.postprocessor.probs_at_size(pred)

    def labels_from(self, pred: ScaledPrediction, **postprocess) -> np.ndarray:
        """uint32 labels at ``pred.shape``: post-processed in the model's space (so
        ``min_size`` and thresholds mean the same for every image), then zoomed back.

        Example:
            >>> probs = np.zeros((8, 8, 3), np.float32); probs[..., 0] = 1
            >>> probs[2:6, 2:6] = (0, 1, 0)
            >>> pred = ScaledPrediction(probs, 2.0, (4, 4), 5.0)
            >>> SegmentationTask(None).labels_from(pred, min_size=1).tolist()
            [[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
        """
        return self.postprocessor.labels_at_size(pred, **postprocess)

    def segment(self, image, *, diameter: float | None = None, tta: bool | None = None,
                progress: bool = True, **postprocess) -> np.ndarray:
        """uint32 HxW instance labels (0 background, nuclei 1..N) of one image; arguments as
        ``predict_scaled``, ``**postprocess`` overrides post-processing parameters.

        Example:
            >>> from nuclib.models import unet
            >>> labels = SegmentationTask(unet(depth=2, filters=4)).segment(np.zeros((40, 50), np.uint8))
            >>> labels.shape, labels.dtype
            ((40, 50), dtype('uint32'))
        """
        pred = self.predict_scaled(image, diameter=diameter, tta=tta, progress=progress)
        return self.labels_from(pred, **postprocess)

    def segment_many(self, images: Iterable | str | Path, *, diameter: float | None = None,
                     tta: bool | None = None, progress: bool = True,
                     **postprocess) -> list[np.ndarray]:
        """One uint32 label array per image of a folder or an iterable of arrays and/or
        paths, in input order; arguments as ``segment``, and the labels equal its.

        While the network predicts one image, a second thread post-processes
        the previous one (NumPy, SciPy and scikit-image release the GIL), so
        post-processing hides behind the next network pass. Only one image
        waits at a time: memory stays that of two images. See
        ``benchmarks/segment_many.py`` for the gain.

        Raises:
            FileNotFoundError: a missing file (named).
            ValueError: an unreadable file (named) or unusable image, or a bad
                post-processing parameter (before any image is read).

        Example:
            >>> results = seg.segment_many("images/")   # doctest: +SKIP
        """
        from concurrent.futures import ThreadPoolExecutor

        from nuclib.data.io import list_images, read_image
        from nuclib.postprocess.thresholds import check_postprocess
        from nuclib.progress import progress_bar

        if postprocess:  # at once, not from the other thread after two network passes
            check_postprocess(self.head, postprocess)
        items = list_images(images) if isinstance(images, (str, Path)) else list(images)
        results, waiting = [], None
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="nuclib-postprocess") as post, \
                progress_bar(total=len(items), desc="segmenting", unit="image",
                             enabled=progress) as bar:
            for item in items:
                image = read_image(item) if isinstance(item, (str, Path)) else item
                pred = self.predict_scaled(image, diameter=diameter, tta=tta, progress=False)
                if waiting is not None:
                    results.append(waiting.result())
                    bar.update(1)
                waiting = post.submit(self.labels_from, pred, **postprocess)
            if waiting is not None:
                results.append(waiting.result())
                bar.update(1)
        return results

    def segment_large(self, image, **options):
        """Labels of an image of any size (NumPy, memmap, zarr), block by block, equal to
        ``segment`` of the whole: see ``nuclib.slides.segment_large`` for the options
        (``diameter``, ``block_size``, ``min_overlap``, ``out``, ``client``, ...).

        Example:
            >>> labels = seg.segment_large(nuclib.data.read_image("slide.tif", memmap=True))  # doctest: +SKIP
        """
        from nuclib.slides import segment_large

        return segment_large(self, image, **options)
