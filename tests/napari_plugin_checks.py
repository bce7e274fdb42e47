"""The napari plugin on a real viewer, headless: run by ``tests/test_napari.py`` in a process of its own.

Not collected by the suite itself (no ``test_`` prefix): the viewer must load
its OpenGL (Mesa's, which carries LLVM) before Keras' backend is imported,
as in the napari app, where nuclib's plugin imports the backend itself
(``nuclib.napari.import_backend``); the suite's other modules import
TensorFlow first. Qt's offscreen platform takes napari's OpenGL context
from an X display (GLX): with no ``DISPLAY``, a virtual one (Xvfb) is
started. The widget runs in its worker thread as in the app; tests wait for
its ``finished`` signal, however long the run takes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# Before the QApplication exists (pytest-qt makes it when a test first asks).
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import tifffile  # noqa: E402
from napari.layers import Image, Labels  # noqa: E402

import nuclib  # noqa: E402
from nuclib.napari import samples as napari_samples  # noqa: E402
from nuclib.napari.widget import FOLDER, SegmentWidget  # noqa: E402
from nuclib.samples import sample_image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def x_display():
    """An X display for OpenGL: the one there is, else a virtual one (Xvfb) for this run."""
    if os.environ.get("DISPLAY"):
        yield os.environ["DISPLAY"]
        return
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        raise RuntimeError("the napari tests need an X server for napari's OpenGL canvas "
                           "(Qt's offscreen platform draws through GLX): install Xvfb "
                           "(apt-get install xvfb) or set DISPLAY")
    read, write = os.pipe()
    # Xvfb picks a free display and writes its number to `write` when ready (-displayfd).
    # It must outlive this process' QApplication, which Python destroys after every
    # fixture (a display pulled from under it crashes the exit): a small watcher waits
    # for this process to end, then stops the server.
    subprocess.Popen([sys.executable, "-c", WATCHER, xvfb, str(write), str(os.getpid())],
                     pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)
    os.close(write)
    with os.fdopen(read) as fh:
        number = fh.readline().strip()
    assert number, "Xvfb did not start"
    os.environ["DISPLAY"] = f":{number}"
    yield os.environ["DISPLAY"]


WATCHER = """
import os, subprocess, sys, time
xvfb, fd, parent = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
server = subprocess.Popen([xvfb, "-displayfd", str(fd), "-screen", "0", "1280x1024x24",
                           "-nolisten", "tcp"], pass_fds=(fd,))
os.close(fd)  # a server that fails to start then ends the reader's wait
while server.poll() is None:
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        server.terminate()
        break
    time.sleep(0.5)
"""


@pytest.fixture(scope="session", autouse=True)
def opengl_then_backend(x_display, qapp):
    """OpenGL loaded, then Keras' backend as the plugin imports it: the app's order."""
    from qtpy.QtGui import QOffscreenSurface, QOpenGLContext

    from nuclib.napari import import_backend

    surface = QOffscreenSurface()
    surface.create()
    context = QOpenGLContext()
    assert context.create() and context.makeCurrent(surface), "no OpenGL context"
    context.doneCurrent()
    import_backend()
    yield


@pytest.fixture(scope="session")
def segmenter(opengl_then_backend):
    return nuclib.load_pretrained("dsb-3class")


def run_widget(widget, qtbot):
    """Press "Segment" and wait (no time limit) until the run has ended; its status."""
    with qtbot.waitSignal(widget.finished, timeout=None) as blocker:
        widget.button.native.click()  # a real click on the Qt button
    return blocker.args[0]


def add_widget(viewer) -> SegmentWidget:
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Segment nuclei")
    return widget


# --------------------------------------------------------------------------- the widget
def test_the_widget_adds_the_segmenters_nuclei(make_napari_viewer, qtbot, segmenter):
    viewer = make_napari_viewer()
    data, kwargs, _ = napari_samples.fluorescence()[0]
    viewer.add_image(data, scale=(0.5, 0.5), **kwargs)
    widget = add_widget(viewer)
    assert widget.image.value is viewer.layers["fluorescence"]
    widget.probability.value = True
    status = run_widget(widget, qtbot)

    expected = segmenter.segment(data, progress=False)
    labels = viewer.layers["fluorescence nuclei"]
    assert isinstance(labels, Labels)
    assert int(labels.data.max()) == int(expected.max()) > 20
    np.testing.assert_array_equal(labels.data, expected)
    assert tuple(labels.scale) == (0.5, 0.5)  # drawn over the image it came from
    assert status.startswith(f"{int(expected.max())} nuclei, diameter ")
    assert status.endswith(" px (dsb-3class)")
    probability = viewer.layers["fluorescence nucleus probability"]
    assert isinstance(probability, Image) and probability.data.shape == data.shape
    assert 0.0 <= probability.data.min() and probability.data.max() <= 1.0
    # Nuclei are where the probability is high.
    assert probability.data[expected > 0].mean() > 0.5 > probability.data[expected == 0].mean()
    assert not widget.running and widget.button.enabled


def test_a_given_diameter_and_tile_size_reach_the_segmenter(make_napari_viewer, qtbot,
                                                            segmenter):
    viewer = make_napari_viewer()
    data = sample_image("fluorescence")
    viewer.add_image(data, name="cells")
    widget = add_widget(viewer)
    widget.auto_diameter.value = False
    assert widget.diameter.enabled
    widget.diameter.value = 13.4
    widget.tile_size.value = 256  # several tiles: the same nuclei (blend "crop" is exact)
    run_widget(widget, qtbot)
    np.testing.assert_array_equal(viewer.layers["cells nuclei"].data,
                                  segmenter.segment(data, diameter=13.4, progress=False))
    assert viewer.layers["cells nuclei"].metadata["diameter"] == 13.4


def test_a_folder_that_is_no_model_shows_why_and_adds_no_layer(make_napari_viewer, qtbot,
                                                               tmp_path):
    viewer = make_napari_viewer()
    viewer.add_image(sample_image("fluorescence"), name="cells")
    widget = add_widget(viewer)
    folder = tmp_path / "my-model"
    folder.mkdir()
    widget.model.value = FOLDER
    assert not widget.folder.native.isHidden()  # shown for a folder model only
    widget.folder.value = folder
    status = run_widget(widget, qtbot)
    assert str(folder) in status and "lacks config.json" in status
    assert widget.status == status
    assert [layer.name for layer in viewer.layers] == ["cells"]
    assert widget.button.enabled  # ready for the next try


def test_an_rgb_stack_is_refused_with_a_message(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((3, 64, 64, 3), np.uint8), rgb=True, name="movie")
    widget = add_widget(viewer)
    status = run_widget(widget, qtbot)
    assert "stack of 3 RGB images" in status and "one 2-D image" in status
    assert [layer.name for layer in viewer.layers] == ["movie"]


def test_an_rgb_image_is_segmented(make_napari_viewer, qtbot, segmenter):
    viewer = make_napari_viewer()
    data, kwargs, _ = napari_samples.histology()[0]
    viewer.add_image(data, **kwargs)
    widget = add_widget(viewer)
    run_widget(widget, qtbot)
    np.testing.assert_array_equal(viewer.layers["histology nuclei"].data,
                                  segmenter.segment(data, progress=False))


# --------------------------------------------------------------------------- through napari
@pytest.fixture
def plugin_viewer(npe2pm, make_napari_viewer):
    """A viewer whose napari knows one plugin: nuclib as installed (its entry point)."""
    with npe2pm.tmp_plugin(package="nuclib"):
        yield make_napari_viewer()


def test_the_manifest_offers_the_widget_samples_and_writer(plugin_viewer, tmp_path):
    import npe2

    manifest = npe2.PluginManifest.from_file(REPO / "nuclib" / "napari" / "napari.yaml")
    assert [w.display_name for w in manifest.contributions.widgets] == ["Segment nuclei"]
    assert {s.key for s in manifest.contributions.sample_data} == {
        "fluorescence", "fluorescence_large", "histology", "brightfield"}
    viewer = plugin_viewer
    viewer.open_sample("nuclib", "histology")
    assert viewer.layers["histology"].rgb
    np.testing.assert_array_equal(viewer.layers["histology"].data, sample_image("histology"))
    _, widget = viewer.window.add_plugin_dock_widget("nuclib", "Segment nuclei")
    assert isinstance(widget, SegmentWidget)
    assert widget.image.value is viewer.layers["histology"]

    labels = np.zeros((20, 30), np.int64)
    labels[2:5, 3:9] = 7
    viewer.add_labels(labels, name="nuclei")
    out = tmp_path / "nuclei.tif"
    viewer.layers["nuclei"].save(str(out), plugin="nuclib")
    saved = tifffile.imread(out)
    assert saved.dtype == np.uint16
    np.testing.assert_array_equal(saved, labels)
