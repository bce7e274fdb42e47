"""The "Segment nuclei" dock widget: a nuclib model on the selected Image layer.

Controls: the image layer; a zoo model or a model folder; the nucleus
diameter (measured, or given in pixels); test-time augmentation; the engine
(Keras, OpenVINO, ONNX Runtime or auto) and the tile size; whether to add the
nucleus probability too. "Segment" runs in a worker thread (the viewer stays
responsive) with a progress bar over its steps; the result is a Labels layer
``<image> nuclei`` (placed like the image: same scale and translation), and
optionally an Image layer ``<image> nucleus probability``. A problem (a
folder that is no model, a stack, an engine not installed) is shown in the
widget and as a napari notification, and adds no layer.

Example:
    >>> import napari                                           # doctest: +SKIP
    >>> viewer = napari.Viewer()                                # doctest: +SKIP
    >>> viewer.open_sample("nuclib", "fluorescence")            # doctest: +SKIP
    >>> widget = SegmentWidget(viewer)                          # doctest: +SKIP
    >>> viewer.window.add_dock_widget(widget, name="Segment nuclei")  # doctest: +SKIP
    >>> widget.run()                                            # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import napari
from magicgui.widgets import (CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, Label,
                              ProgressBar, PushButton, SpinBox)
from psygnal import Signal

from nuclib.engines import default_engine
from nuclib.napari.segment import ENGINES, layer_image, segment_image

__all__ = ["SegmentWidget", "FOLDER"]

FOLDER = "model folder..."
# The steps the progress bar counts.
STEPS = ("loading the model", "predicting", "finding nuclei")


class SegmentWidget(Container):
    """Segment the nuclei of an Image layer with a nuclib model, in a worker thread.

    Args:
        viewer: the napari viewer whose layers it reads and adds to.

    Raises:
        Nothing: problems (no image, a stack, a folder that is no model, an
        engine not installed) are shown in the widget and as notifications.

    Example:
        >>> widget = SegmentWidget(viewer)                  # doctest: +SKIP
        >>> viewer.window.add_dock_widget(widget)           # doctest: +SKIP

    Attributes:
        finished: a signal emitted (in the main thread) when a run ends, with
            the status text: the nucleus count, or the problem.
        status: the text shown under the button.
    """

    finished = Signal(str)

    def __init__(self, viewer: napari.viewer.Viewer):
        from nuclib.napari import import_backend
        from nuclib.zoo import list_pretrained

        import_backend()  # before any model: napari's OpenGL is already loaded

        self._viewer = viewer
        self._segmenters: dict = {}
        self._worker = None
        self.image = ComboBox(label="image", choices=self._image_layers,
                              tooltip="the Image layer to segment (one 2-D image)")
        zoo = [m["name"] for m in list_pretrained()]
        self.model = ComboBox(label="model", choices=zoo + [FOLDER], value=zoo[0],
                              tooltip="a zoo model, or a model directory of your own")
        self.folder = FileEdit(label="folder", mode="d", visible=False,
                               tooltip="a nuclib model directory (nuclib.json, config.json, ...)")
        self.auto_diameter = CheckBox(label="measure diameter", value=True,
                                      tooltip="measure the nuclei's size with the model")
        self.diameter = FloatSpinBox(label="diameter (px)", value=20.0, min=1.0, max=1000.0,
                                     step=0.5, enabled=False,
                                     tooltip="the nuclei's median diameter in pixels")
        self.tta = CheckBox(label="test-time augmentation", value=False,
                            tooltip="average the 8 rotations and mirrors (8x slower)")
        self.engine = ComboBox(label="engine", choices=list(ENGINES), value=default_engine(),
                               tooltip="what runs the network (openvino and onnxruntime "
                                       "need their packages)")
        self.tile_size = SpinBox(label="tile size", value=1024, min=64, max=8192, step=64,
                                 tooltip="side of the tiles the image is predicted in")
        self.probability = CheckBox(label="add probability layer", value=False)
        self.button = PushButton(text="Segment")
        self.progress = ProgressBar(label="progress", min=0, max=len(STEPS), value=0,
                                    visible=False)
        self.message = Label(label="status", value="")
        # A whole problem, not its first words (the notification has it too).
        self.message.native.setWordWrap(True)
        self.message.native.setMinimumHeight(4 * self.message.native.fontMetrics().height())
        super().__init__(widgets=[self.image, self.model, self.folder, self.auto_diameter,
                                  self.diameter, self.tta, self.engine, self.tile_size,
                                  self.probability, self.button, self.progress,
                                  self.message])
        self.model.changed.connect(self._model_changed)
        self.auto_diameter.changed.connect(lambda auto: setattr(self.diameter, "enabled",
                                                                not auto))
        self.button.changed.connect(self.run)
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed,
                      viewer.layers.events.reordered):
            event.connect(self._layers_changed)
        self._layers_changed()

    # -- state -------------------------------------------------------------
    @property
    def status(self) -> str:
        """The text under the button: the last result or problem."""
        return self.message.value

    @property
    def running(self) -> bool:
        """Whether a segmentation is under way."""
        return self._worker is not None

    def _image_layers(self, _widget=None):
        from napari.layers import Image

        return [(layer.name, layer) for layer in self._viewer.layers
                if isinstance(layer, Image)]

    def _layers_changed(self, _event=None):
        self.image.reset_choices()
        active = self._viewer.layers.selection.active
        if active is not None and active in self.image.choices:
            self.image.value = active

    def _model_changed(self, value):
        self.folder.visible = value == FOLDER

    def _model_source(self) -> str:
        if self.model.value != FOLDER:
            return self.model.value
        folder = str(self.folder.value or "").strip()
        if not folder or folder == ".":
            raise ValueError("choose a model folder (a nuclib model directory)")
        return str(Path(folder).expanduser())

    def _report(self, text: str, error: bool = False) -> None:
        from napari.utils.notifications import show_error, show_info

        self.message.value = text
        (show_error if error else show_info)(f"Segment nuclei: {text}")

    # -- running -------------------------------------------------------------
    def run(self, *_args) -> None:
        """Segment the chosen layer in a worker thread; ``finished`` tells when it is done.

        Checks come first, in the main thread: with no image layer, or a
        stack, nothing starts and the problem is shown.

        Args:
            *_args: what a button's ``changed`` signal passes (ignored).

        Raises:
            Nothing: problems are reported in ``status``, then ``finished``.

        Example:
            >>> widget.run()                                # doctest: +SKIP
        """
        # superqt's worker, not napari.qt.threading's wrapper: napari 0.9's wrapper connects
        # `errored` to a status callback that takes no exception, so a failed run raised
        # a second error in the event loop.
        from superqt.utils import create_worker

        if self._worker is not None:
            return
        layer = self.image.value
        try:
            if layer is None:
                raise ValueError("no image layer to segment: open an image first (File > "
                                 "Open Sample > nuclib for an example)")
            image = layer_image(layer.data, rgb=bool(layer.rgb), name=layer.name,
                                multiscale=bool(layer.multiscale))
            source = self._model_source()
        except ValueError as err:
            self._report(str(err), error=True)
            self.finished.emit(self.status)
            return
        request = {"source": source, "engine": self.engine.value,
                   "diameter": None if self.auto_diameter.value else float(self.diameter.value),
                   "tta": bool(self.tta.value), "tile_size": int(self.tile_size.value),
                   "probability": bool(self.probability.value)}
        self.button.enabled = False
        self.progress.value, self.progress.visible = 0, True
        self.message.value = f"{STEPS[0]}..."
        # Errors are reported in the widget, not re-raised in the event loop.
        worker = create_worker(self._work, image, request, _start_thread=False,
                               _connect={"errored": lambda err: self._report(_message(err),
                                                                             error=True)})
        worker.yielded.connect(self._step)
        worker.returned.connect(lambda result: self._add_layers(layer, result))
        worker.finished.connect(self._done)
        self._worker = worker
        worker.start()

    def _work(self, image, request):
        """The worker thread: load (cached), predict, post-process; yields each step."""
        from nuclib.zoo import load_pretrained

        yield 0
        key = (request["source"], request["engine"])
        if key not in self._segmenters:
            self._segmenters[key] = load_pretrained(request["source"],
                                                    engine=request["engine"])
        segmenter = self._segmenters[key]
        yield 1
        return segment_image(segmenter, image, diameter=request["diameter"],
                             tta=request["tta"], tile_size=request["tile_size"],
                             probability=request["probability"])

    def _step(self, index: int) -> None:
        self.progress.value = index
        self.message.value = f"{STEPS[index]}..."

    def _add_layers(self, layer, result) -> None:
        placement = {"scale": layer.scale[-2:], "translate": layer.translate[-2:]}
        if result.probability is not None:
            self._viewer.add_image(result.probability, name=f"{layer.name} nucleus probability",
                                   colormap="magma", blending="additive",
                                   contrast_limits=(0.0, 1.0), visible=False,
                                   metadata=dict(result.info), **placement)
        self._viewer.add_labels(result.labels, name=f"{layer.name} nuclei",
                                metadata=dict(result.info), **placement)
        diameter = result.diameter
        size = "" if diameter is None else (
            ", no nucleus to measure" if diameter != diameter else f", diameter {diameter:.1f} px")
        self._report(f"{result.count} nuclei{size} ({result.info['model']})")

    def _done(self) -> None:
        self._worker = None
        self.button.enabled = True
        self.progress.value, self.progress.visible = len(STEPS), False
        self.finished.emit(self.status)


def _message(err: BaseException) -> str:
    """One line for a failed run: a KeyError's text without its quotes."""
    if isinstance(err, KeyError) and err.args:
        return str(err.args[0])
    return str(err) or type(err).__name__
