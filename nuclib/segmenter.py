"""``Segmenter``: a model together with its pre- and post-processing, and its files.

What ``nuclib.load_pretrained`` returns. It turns any 2-D microscopy image
(8/16-bit or float, 1 or 3 channels, any size) into probabilities
(``predict``) or instance labels (``segment``). Models trained at one
nucleus size (setting ``diameter``) zoom each image to it first, measuring
the nuclei with a quick first pass unless told their ``diameter``.

Segmenting is ``nuclib.task.SegmentationTask``'s, which composes the parts
(settings, preprocessor, diameter estimate, network, postprocessor). A
Segmenter adds the model as a thing with files: ``about`` (what it is),
``record`` (scores and training history, never read to segment), the
directory it came from, saving, loading and export.

Example:
    >>> import nuclib
    >>> seg = nuclib.load_pretrained("dsb-3class")              # doctest: +SKIP
    >>> labels = seg.segment(nuclib.data.read_image("cells.png"))  # doctest: +SKIP
    >>> int(labels.max())                                        # doctest: +SKIP
    125
"""

from __future__ import annotations

from pathlib import Path

from nuclib.config import SegmenterConfig, split_config
from nuclib.heads import HEADS  # noqa: F401  (re-exported)
from nuclib.model_dir import (  # noqa: F401  (CONFIG_FILE, FORMAT_VERSION, read_config re-exported)
    CONFIG_FILE, DEFAULT_CONFIG, FORMAT_VERSION, read_config)
from nuclib.network import Network
from nuclib.prediction import ScaledPrediction
from nuclib.task import SegmentationTask

__all__ = ["Segmenter", "ScaledPrediction"]


class Segmenter(SegmentationTask):
    """A ``SegmentationTask`` that knows what its model is, its record and its files.

    Args:
        model: a Keras model or another callable (see ``SegmentationTask``).
        config: a ``SegmenterConfig`` or a dict of settings. A flat dict that
            also describes the model or holds scores (a format-1
            ``nuclib.json``) is sorted by ``nuclib.config.split_config``.
        engine: what runs the network (``nuclib.engines``). Default: the
            config's (``"keras"``); ``from_directory`` and ``load_pretrained``
            default to ``nuclib.engines.default_engine``.
        about: what the model is (description, architecture, licence, ...).
        record: what happened to it (scores, training), for saving.

    Raises:
        ValueError: as ``SegmentationTask``.

    Example:
        >>> import numpy as np
        >>> from nuclib.models import unet
        >>> seg = Segmenter(unet(depth=2, filters=4), {"head": "three_class"},
        ...                 about={"description": "an untrained example"})
        >>> seg.segment(np.zeros((40, 50), np.uint8)).shape
        (40, 50)
    """

    def __init__(self, model, config: SegmenterConfig | dict | None = None, *,
                 engine: str | None = None, about: dict | None = None,
                 record: dict | None = None):
        if isinstance(config, SegmenterConfig):
            flat_about, flat_record = {}, {}
        else:
            config, flat_about, flat_record = split_config(config or {})
        super().__init__(model, config, engine=engine)
        self.about = {**flat_about, **(about or {})}
        self.record = {**flat_record, **(record or {})}
        # The model directory it was loaded from (set by from_directory): where
        # Dask workers load the same model.
        self.directory = None

    def as_dict(self) -> dict:
        """Settings (without the machine's engine), about and record in one flat dict, as
        model cards and packages read them (a format-1 ``nuclib.json``'s layout).

        Example:
            >>> Segmenter(None, about={"description": "mine"}).as_dict()["description"]
            'mine'
        """
        return {**self.config.to_dict(runtime=False), **self.about, **self.record}

    # -- persistence and export -------------------------------------------------
    def save(self, directory, *, card: str | None = None, overwrite: bool = False) -> Path:
        """Write the model directory (``nuclib.model_dir.write_model_dir``): Keras files,
        ``nuclib.json`` (settings and about), ``record.json`` and the model card.

        Raises:
            FileExistsError: ``directory`` is not empty and ``overwrite`` is False.

        Example:
            >>> seg.save("models/my-model")                     # doctest: +SKIP
            PosixPath('models/my-model')
        """
        from nuclib.model_dir import write_model_dir

        return write_model_dir(self.model, self.config, directory, about=self.about,
                               record=self.record, card=card, overwrite=overwrite)

    def export(self, path, format: str = "onnx", *, overwrite: bool = False) -> Path:
        """The network alone for another runtime: ``"onnx"``, ``"openvino"`` or
        ``"saved_model"`` (``nuclib.export.export_model``; input as ``preprocess`` gives).

        Example:
            >>> seg.export("dsb-3class.xml", format="openvino")   # doctest: +SKIP
            PosixPath('dsb-3class.xml')
        """
        from nuclib.export import export_model

        return export_model(self, path, format=format, overwrite=overwrite)

    def export_bioimageio(self, path, *, overwrite: bool = False, **options) -> Path:
        """A bioimage.io model package (``.zip``) for deepImageJ, QuPath, ilastik, napari
        (``nuclib.bioimageio.export_bioimageio``, which lists the ``options``).

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

        With ``verify``, the files pinned in ``expected`` (else in
        ``nuclib.json``) are checked against their sha256 before anything
        reads them. With a compiled engine whose conversion of these files is
        cached (``nuclib.engines``), Keras is loaded only when ``.model`` is
        asked for, which halves a small image's whole-process time.

        Args:
            directory: a model directory.
            verify: check the sha256 values.
            engine: what runs the network; default ``nuclib.engines.default_engine``.
            expected: pinned ``{filename: sha256}`` (the zoo registry's).

        Raises:
            FileNotFoundError: missing files.
            ValueError: a checksum mismatch or malformed settings.

        Example:
            >>> Segmenter.from_directory("nuclib/zoo/bundled/dsb-3class")  # doctest: +SKIP
            Segmenter(name='dsb-3class', head='three_class', input_channels=1, engine='auto')
        """
        from nuclib.engines import default_engine
        from nuclib.model_dir import check_model_dir

        directory = Path(directory).expanduser().resolve()
        info = check_model_dir(directory, verify=verify, expected=expected)
        segmenter = cls(None, info.settings, about=info.about, record=info.record,
                        engine=engine or default_engine(info.engine))
        segmenter.directory = directory
        segmenter._network = Network.from_directory(directory, segmenter.engine,
                                                    segmenter.config.precision)
        return segmenter
