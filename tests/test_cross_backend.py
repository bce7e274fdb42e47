"""Numerics across Keras backends (issue 14): JAX and PyTorch against TensorFlow.

``tests/cross_backend_outputs.py`` runs once under TensorFlow, then under JAX
and under PyTorch with TensorFlow hidden (as on a machine without it), on the
same inputs and, for the model factories, the same weights. Each loss and
training metric must match TensorFlow's value to 1e-5, each factory's outputs
to 1e-4, and the zoo models' labels on real ``val/`` images must agree with
TensorFlow's at pooled AP@0.5 >= 0.98 (``benchmarks/backends.py`` scores the
whole of ``val/``).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from nuclib.data.io import folder_pairs
from nuclib.metrics import matching_dataset
from tests.without_tensorflow import (NO_TENSORFLOW, OTHER_BACKENDS, REPO, backend_env)

SCRIPT = REPO / "tests" / "cross_backend_outputs.py"
# Two fluorescence images and one histology image of val/ (touching and sparse nuclei).
VAL_IMAGES = ("0402a81e75", "3852c7e45b", "420f43d21d")


def _write_outputs(backend: str, out_dir, images, hide_tensorflow: bool):
    prelude = NO_TENSORFLOW if hide_tensorflow else ""
    code = prelude + ("import runpy, sys\n"
                      f"sys.argv = [{str(SCRIPT)!r}, {str(out_dir)!r}, '--images', "
                      f"*{[str(p) for p in images]!r}]\n"
                      "runpy.run_path(sys.argv[0], run_name='__main__')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=backend_env(backend), cwd=REPO, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    return dict(np.load(out_dir / f"{backend}.npz"))


@pytest.fixture(scope="module")
def val_images(dsb_root):
    pairs = folder_pairs(dsb_root / "val")
    chosen = [p for p in pairs if p[0].stem.startswith(VAL_IMAGES)]
    assert len(chosen) == len(VAL_IMAGES), [p[0].stem for p in chosen]
    return [image for image, _ in chosen]


@pytest.fixture(scope="module")
def outputs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cross_backend")


@pytest.fixture(scope="module")
def tensorflow_outputs(outputs_dir, val_images):
    # First: it initializes the factories' weights that the other backends load.
    return _write_outputs("tensorflow", outputs_dir, val_images, hide_tensorflow=False)


@pytest.fixture(scope="module", params=OTHER_BACKENDS)
def other_outputs(request, tensorflow_outputs, outputs_dir, val_images):
    return request.param, _write_outputs(request.param, outputs_dir, val_images,
                                         hide_tensorflow=True)


def _keys(outputs, prefix):
    keys = sorted(k for k in outputs if k.startswith(prefix))
    assert keys, f"no {prefix!r} outputs"
    return keys


def test_the_other_backend_ran_without_tensorflow(other_outputs):
    backend, outputs = other_outputs
    assert not bool(outputs["tensorflow_imported"]), backend


def test_losses_and_metrics_match_tensorflow(tensorflow_outputs, other_outputs):
    backend, outputs = other_outputs
    keys = _keys(tensorflow_outputs, "loss/") + _keys(tensorflow_outputs, "metric/")
    assert len(keys) == 12 * 2 + 5  # every loss (value and per image) and metric
    for key in keys:
        expected = tensorflow_outputs[key]
        assert np.all(np.isfinite(expected)) and np.any(expected != 0), key
        np.testing.assert_allclose(outputs[key], expected, rtol=1e-5, atol=1e-5,
                                   err_msg=f"{key} on {backend}")


def test_every_factory_gives_tensorflows_outputs_for_the_same_weights(tensorflow_outputs,
                                                                     other_outputs):
    backend, outputs = other_outputs
    keys = _keys(tensorflow_outputs, "model/")
    assert len(keys) == 11  # 7 U-Net-family configurations and the 4 newer factories
    worst = {}
    for key in keys:
        expected = tensorflow_outputs[key]
        assert outputs[key].shape == expected.shape, key
        np.testing.assert_allclose(outputs[key], expected, rtol=0, atol=1e-4,
                                   err_msg=f"{key} on {backend}")
        worst[key] = float(np.abs(outputs[key] - expected).max())
    print(f"largest difference from TensorFlow on {backend}: "
          + ", ".join(f"{k.removeprefix('model/')} {v:.1e}" for k, v in worst.items()))


def test_zoo_models_label_val_images_as_on_tensorflow(tensorflow_outputs, other_outputs):
    backend, outputs = other_outputs
    for model in ("dsb-3class", "dsb-binary-mobilenet"):
        keys = _keys(tensorflow_outputs, f"zoo/{model}/")
        assert len(keys) == len(VAL_IMAGES)
        expected = [tensorflow_outputs[k] for k in keys]
        assert all(e.max() > 0 for e in expected), model
        got = [outputs[k] for k in keys]
        score = matching_dataset(expected, got, thresh=0.5, progress=False)
        assert score.accuracy >= 0.98, (model, backend, score)
