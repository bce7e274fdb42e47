"""The napari plugin: its viewer tests (in a process of their own), its writer and checks.

The viewer tests (``tests/napari_plugin_checks.py``) run in a fresh Python,
because napari's OpenGL must be loaded before TensorFlow, as in the app
(see that file); the rest needs no Qt and runs here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from nuclib.napari.segment import layer_image, nucleus_probability, segment_image
from nuclib.napari.writer import label_dtype, write_labels
from nuclib.samples import sample_image

REPO = Path(__file__).resolve().parents[1]


def test_the_plugin_on_a_real_viewer():
    import keras

    # The suite's backend, whatever an imported package left in os.environ.
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", KERAS_BACKEND=keras.backend.backend())
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-W", "ignore::DeprecationWarning",
                           str(REPO / "tests" / "napari_plugin_checks.py")],
                          capture_output=True, text=True, cwd=REPO, env=env)
    report = done.stdout[-8000:] + done.stderr[-4000:]
    assert done.returncode == 0, report
    counts = re.search(r"(\d+) passed", done.stdout)
    assert counts and int(counts[1]) == 6 and "failed" not in done.stdout, report


@pytest.fixture(scope="module")
def segmenter():
    import nuclib

    return nuclib.load_pretrained("dsb-3class")


# --------------------------------------------------------------------------- without Qt
def test_the_writer_uses_16_bits_then_32(tmp_path):
    labels = np.zeros((8, 8), np.int32)
    labels[0, 0] = 65535
    assert write_labels(str(tmp_path / "a.tif"), labels, {}) == [str(tmp_path / "a.tif")]
    assert tifffile.imread(tmp_path / "a.tif").dtype == np.uint16
    labels[1, 1] = 70000
    write_labels(str(tmp_path / "b.tiff"), labels, {})
    back = tifffile.imread(tmp_path / "b.tiff")
    assert back.dtype == np.uint32 and back[1, 1] == 70000
    stack = np.stack([labels, labels])  # a stack of label planes stays a stack
    write_labels(str(tmp_path / "c.tif"), stack, {})
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "c.tif"), stack)
    with pytest.raises(ValueError, match="expected a .tif"):
        write_labels(str(tmp_path / "a.png"), labels, {})
    with pytest.raises(ValueError, match="negative id"):
        label_dtype(np.array([-1, 2]))
    with pytest.raises(ValueError, match="integers"):
        label_dtype(np.array([0.5]))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries


def test_layer_images_are_one_2d_image():
    assert layer_image(np.zeros((1, 1, 40, 50)), rgb=False).shape == (40, 50)
    assert layer_image(np.zeros((1, 40, 50, 3)), rgb=True).shape == (40, 50, 3)
    assert layer_image([np.zeros((40, 50)), np.zeros((20, 25))], rgb=False,
                       multiscale=True).shape == (40, 50)
    with pytest.raises(ValueError, match="stack of 6 planes"):
        layer_image(np.zeros((2, 3, 40, 50)), rgb=False, name="z")
    with pytest.raises(ValueError, match="marked RGB but has shape"):
        layer_image(np.zeros((40, 50)), rgb=True)
    with pytest.raises(ValueError, match="expected a 2-D image"):
        layer_image(np.zeros((40,)), rgb=False)


def test_segment_image_is_segment_and_predict(segmenter):
    image = sample_image("fluorescence")
    result = segment_image(segmenter, image, diameter=13.4, probability=True)
    np.testing.assert_array_equal(result.labels, segmenter.segment(image, diameter=13.4,
                                                                   progress=False))
    probs = segmenter.predict(image, diameter=13.4, progress=False)
    np.testing.assert_allclose(result.probability, nucleus_probability(probs, "three_class"),
                               atol=1e-5)
    assert result.count == int(result.labels.max()) and result.factor == pytest.approx(20 / 13.4,
                                                                                      rel=1e-2)


def test_the_samples_are_the_repositorys_images():
    from nuclib.samples import SAMPLES, sample_path

    for name, (file, _) in SAMPLES.items():
        assert sample_path(name).read_bytes() == (REPO / "examples" / "data" / file).read_bytes()


def test_the_core_library_never_imports_qt_or_napari():
    modules = sorted(
        ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for p in (REPO / "nuclib").rglob("*.py")
        if "napari" not in p.relative_to(REPO / "nuclib").parts and p.name != "__main__.py")
    code = ("import importlib, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "import nuclib; nuclib.load_pretrained('dsb-3class').segment("
            "__import__('numpy').zeros((64, 64), 'uint8'), progress=False)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('napari', 'PySide6', 'PyQt5', 'PyQt6', 'PySide2', 'qtpy', 'magicgui', 'vispy'))\n"
            "print(bad)\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
