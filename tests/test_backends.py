"""Every Keras backend: nuclib without TensorFlow, and the PyDataset loader (issue 14).

The TensorFlow-side tests compare the ``"pydataset"`` loader with the
``tf.data`` pipeline batch for batch; the JAX and PyTorch tests run in a
subprocess with ``KERAS_BACKEND=jax`` or ``torch`` and TensorFlow hidden, as on
the accelerator machines that have JAX and PyTorch but no TensorFlow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from nuclib.data.augment import default_augment
from nuclib.data.io import folder_pairs
from nuclib.heads import HEADS
from nuclib.data.pipeline import (ArrayBatches, labels_to_target_np,
                                  labels_to_target_tf, load_pairs, make_dataset,
                                  make_validation_dataset)
from tests.without_tensorflow import (OTHER_BACKENDS, REPO, backend_env,
                                      run_without_tensorflow)

tf_only = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                             reason="compares with the tf.data pipeline")


@pytest.fixture(scope="module")
def dsb_pairs(dsb_root):
    return folder_pairs(dsb_root / "train")[:3]


@pytest.fixture(scope="module")
def dsb_data(dsb_pairs):
    return load_pairs(dsb_pairs, progress=False)


def _touching_labels(rng, shape=(24, 30)):
    coarse = rng.integers(0, 7, (-(-shape[0] // 3), -(-shape[1] // 3)))
    return np.kron(coarse, np.ones((3, 3), int))[:shape[0], :shape[1]].astype(np.int32)


def _as_numpy(batch):
    return tuple(np.asarray(x) for x in batch)


# --- targets -------------------------------------------------------------------------------

@tf_only
@pytest.mark.parametrize("target", HEADS)
def test_numpy_targets_equal_the_graph_targets(rng, target):
    labels = np.stack([_touching_labels(rng), _touching_labels(rng)])[..., None]
    labels[:, -3:] = -1
    expected = np.asarray(labels_to_target_tf(labels, target, n_rays=8))
    got = labels_to_target_np(labels, target, n_rays=8)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


# --- the PyDataset loader against tf.data -------------------------------------------------

@tf_only
@pytest.mark.parametrize("sampling", ["image", "nucleus"])
@pytest.mark.parametrize("target", HEADS)
def test_pydataset_gives_the_tf_data_batches(dsb_data, target, sampling):
    kwargs = dict(data=dsb_data, crop_size=48, batch_size=2, target=target, seed=3,
                  sampling=sampling, n_rays=8)
    tf_batches = list(make_dataset(**kwargs, loader="tf.data").take(3))
    py = make_dataset(**kwargs, loader="pydataset")
    assert isinstance(py, ArrayBatches) and py.num_batches is None
    for i, expected in enumerate(tf_batches):
        (x, y), (ex, ey) = py[i], _as_numpy(expected)
        assert x.dtype == ex.dtype == np.float32 and y.dtype == ey.dtype
        assert x.shape == ex.shape and y.shape == ey.shape
        # Same sampler, same seed, one worker: the same crops in the same order.
        np.testing.assert_array_equal(x, ex)
        np.testing.assert_array_equal(y, ey)


@tf_only
def test_pydataset_augments_like_tf_data(dsb_data):
    kwargs = dict(data=dsb_data, crop_size=48, batch_size=2, seed=1)
    (ex, ey), = _as_numpy(next(iter(make_dataset(**kwargs, augment=default_augment(seed=0))))),
    x, y = make_dataset(**kwargs, augment=default_augment(seed=0), loader="pydataset")[0]
    assert x.shape == ex.shape and y.shape == ey.shape and x.dtype == ex.dtype
    assert y.dtype == ey.dtype == np.int32
    assert set(np.unique(y)) <= {-1, 0, 1, 2}
    assert 0.0 <= x.min() and x.max() <= 1.0
    plain, _ = make_dataset(**kwargs, loader="pydataset")[0]
    assert not np.array_equal(x, plain)  # augmented


@tf_only
@pytest.mark.parametrize("tile_size", [None, 40])
@pytest.mark.parametrize("target", ["three_class", "star"])
def test_validation_batches_are_identical(dsb_data, tile_size, target):
    kwargs = dict(data=dsb_data, tile_size=tile_size, batch_size=3, target=target, n_rays=8)
    tf_batches = [_as_numpy(b) for b in make_validation_dataset(**kwargs, loader="tf.data")]
    py = make_validation_dataset(**kwargs, loader="pydataset")
    assert len(py) == len(tf_batches) == py.num_batches
    for (x, y), (ex, ey) in zip(py, tf_batches):
        assert x.dtype == ex.dtype and y.dtype == ey.dtype
        np.testing.assert_array_equal(x, ex)
        np.testing.assert_array_equal(y, ey)
    with pytest.raises(IndexError):
        py[len(py)]


def test_finite_pydataset_declares_its_length_and_visits_each_image_once(rng):
    images = [rng.random((30, 30, 1), dtype=np.float32) + 0 * i for i in range(5)]
    labels = [np.full((30, 30), i + 1, np.int32) for i in range(5)]
    ds = make_dataset(data=(images, labels), crop_size=16, batch_size=2, repeat=False,
                      target="binary", loader="pydataset", seed=0)
    assert len(ds) == 3
    seen = sorted(float(np.asarray(im).mean().round(6)) for x, _ in ds for im in x)
    assert len(seen) == 5
    with pytest.raises(TypeError):
        len(make_dataset(data=(images, labels), crop_size=16, loader="pydataset"))


def test_unknown_loader(rng):
    with pytest.raises(ValueError, match="loader"):
        make_dataset(data=([np.zeros((8, 8, 1), np.float32)], [np.zeros((8, 8), np.int32)]),
                     crop_size=8, loader="grain")


def test_pydataset_trains_with_fit_and_threads(rng):
    import nuclib.models
    from nuclib.losses import WeightedCategoricalCrossentropy

    images = [rng.random((40, 40, 1), dtype=np.float32) for _ in range(2)]
    labels = [_touching_labels(rng, (40, 40)) for _ in range(2)]
    train = make_dataset(data=(images, labels), crop_size=32, batch_size=2, seed=0,
                         augment=default_augment(seed=0), loader="pydataset", workers=2)
    val = make_validation_dataset(data=(images, labels), tile_size=32, loader="pydataset")
    model = nuclib.models.unet(depth=2, filters=4)
    model.compile(optimizer="adam", loss=WeightedCategoricalCrossentropy())
    history = model.fit(train, steps_per_epoch=2, epochs=1, validation_data=val, verbose=0,
                        shuffle=False)
    assert np.isfinite(history.history["loss"][-1])
    assert np.isfinite(history.history["val_loss"][-1])


# --- without TensorFlow ---------------------------------------------------------------------

@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_imports_without_tensorflow(backend):
    out = run_without_tensorflow('''
        import json, sys
        import nuclib, nuclib.data, nuclib.models, nuclib.losses, nuclib.metrics
        import nuclib.postprocess, nuclib.metrics.training
        from nuclib.data import augment, geometric, intensity, joint, pipeline, targets
        from nuclib.data import default_augment, make_dataset, make_validation_dataset
        import keras
        print(json.dumps({"backend": keras.backend.backend(),
                          "tensorflow": "tensorflow" in sys.modules}))
    ''', backend=backend)
    assert out == {"backend": backend, "tensorflow": False}


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_tensorflow_only_parts_say_so_without_tensorflow(backend):
    out = run_without_tensorflow('''
        import json
        import numpy as np
        from nuclib.data import make_dataset
        data = ([np.zeros((8, 8, 1), np.float32)], [np.zeros((8, 8), np.int32)])
        try:
            make_dataset(data=data, crop_size=8, loader="tf.data")
            message = ""
        except ImportError as err:
            message = str(err)
        print(json.dumps({"message": message}))
    ''', backend=backend)
    assert "needs TensorFlow" in out["message"]


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_trains_without_tensorflow(dsb_root, backend):
    out = run_without_tensorflow(f'''
        import json, sys
        import numpy as np
        import nuclib
        from nuclib.data import (default_augment, folder_pairs, load_pairs, make_dataset,
                                 make_validation_dataset)
        from nuclib.losses import WeightedCategoricalCrossentropy
        images, labels = load_pairs(folder_pairs({str(dsb_root / "train")!r})[:2],
                                    progress=False)
        train = make_dataset(data=(images, labels), crop_size=64, batch_size=2, seed=0,
                             augment=default_augment(seed=0))
        val = make_validation_dataset(data=(images, labels), tile_size=64)
        x, y = train[0]
        model = nuclib.models.unet(depth=2, filters=4)
        model.compile(optimizer="adam", loss=WeightedCategoricalCrossentropy())
        history = model.fit(train, steps_per_epoch=2, epochs=1, validation_data=val,
                            verbose=0)
        print(json.dumps({{"loss": float(history.history["loss"][-1]),
                          "val_loss": float(history.history["val_loss"][-1]),
                          "x": [list(x.shape), str(x.dtype)], "y": [list(y.shape), str(y.dtype)],
                          "type": type(train).__name__,
                          "tensorflow": "tensorflow" in sys.modules}}))
    ''', backend=backend)
    assert out["type"] == "ArrayBatches" and not out["tensorflow"]
    assert out["x"] == [[2, 64, 64, 1], "float32"] and out["y"] == [[2, 64, 64, 1], "int32"]
    assert np.isfinite(out["loss"]) and np.isfinite(out["val_loss"])


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_the_recipe_trains_and_finalizes_without_tensorflow(dsb_root, tmp_path, backend):
    from tests.test_train import tiny_recipe

    recipe = tiny_recipe(dsb_root, tmp_path, data={"max_images": 2}, train={"epochs": 1})
    out = run_without_tensorflow(f'''
        import json, sys
        from nuclib.train import train
        result = train({recipe!r})
        print(json.dumps({{"loss": result["history"]["loss"][-1],
                          "model_dir": result["model_dir"],
                          "tensorflow": "tensorflow" in sys.modules}}))
    ''', backend=backend)
    assert np.isfinite(out["loss"]) and not out["tensorflow"]
    model_dir = Path(out["model_dir"])
    for name in ("config.json", "model.weights.h5", "nuclib.json"):
        assert (model_dir / name).is_file(), name


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_every_augmentation_layer_runs_without_tensorflow(backend):
    out = run_without_tensorflow('''
        import json, sys
        import numpy as np
        import keras
        from nuclib.data import augment as A
        rng = np.random.default_rng(0)
        labels = np.kron(rng.integers(0, 7, (2, 8, 8)), np.ones((5, 5), int)).astype(np.int32)
        images = (labels[..., None] / 10.0).astype(np.float32)  # the image shows the ids
        nearest = dict(interpolation="nearest")
        layers = {
            "flip_rotate90": A.RandomFlipRotate90(seed=1),
            "affine": A.RandomAffine(rotation=180, shear=10, translation=0.1, seed=2, **nearest),
            "grid_elastic": A.RandomGridElastic(probability=0.5, seed=3, **nearest),
            "elastic": A.RandomElastic(sigma=3.0, alpha=(5.0, 10.0), seed=4, **nearest),
            "crop": A.RandomCrop(24, 24, seed=5),
            "gamma": A.RandomGamma(seed=6), "blur": A.RandomGaussianBlur(seed=7),
            "gaussian_noise": A.RandomGaussianNoise(seed=8),
            "poisson_noise": A.RandomPoissonNoise(seed=9, probability=0.5),
            "strong": A.strong_augment(seed=0), "default": A.default_augment(seed=0),
        }
        geometric = {"flip_rotate90", "affine", "grid_elastic", "elastic", "crop"}
        report = {}
        for name, layer in layers.items():
            first = layer({"images": images, "labels": labels}, training=True)
            second = layer({"images": images, "labels": labels}, training=True)
            twin = layer.__class__.from_config(layer.get_config())
            again = twin({"images": images, "labels": labels}, training=True)
            im, lab = (np.asarray(first[k]) for k in ("images", "labels"))
            report[name] = {
                "dtypes": [str(im.dtype), str(lab.dtype)],
                "ids_kept": bool(set(np.unique(lab)) <= set(np.unique(labels))),
                "aligned": bool(np.allclose(im[..., 0], lab / 10.0))
                           if name in geometric else None,
                "labels_untouched": bool(np.array_equal(lab, labels))
                                    if name not in geometric | {"strong", "default"} else None,
                "reproducible": bool(np.array_equal(np.asarray(again["images"]), im)),
                "draws_change": not np.array_equal(np.asarray(second["images"]), im),
            }
        print(json.dumps({"layers": report, "tensorflow": "tensorflow" in sys.modules}))
    ''', backend=backend)
    assert not out["tensorflow"]
    for name, r in out["layers"].items():
        assert r["dtypes"] == ["float32", "int32"], name
        assert r["ids_kept"] and r["reproducible"] and r["draws_change"], (name, r)
        assert r["aligned"] in (None, True), name
        assert r["labels_untouched"] in (None, True), name


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_augmentation_runs_inside_tf_data_under_another_backend(backend):
    # TensorFlow present, Keras on another backend: the layers switch to TensorFlow ops
    # in the graph.
    code = textwrap.dedent('''
        import json
        import numpy as np
        import tensorflow as tf
        from nuclib.data import make_dataset, strong_augment
        rng = np.random.default_rng(0)
        labels = [np.kron(rng.integers(0, 7, (8, 8)), np.ones((5, 5), int)).astype(np.int32)
                  for _ in range(3)]
        images = [rng.random((40, 40, 1), dtype=np.float32) for _ in range(3)]
        ds = make_dataset(data=(images, labels), crop_size=32, batch_size=2, seed=0,
                          augment=strong_augment(seed=0), loader="tf.data")
        x, y = next(iter(ds))
        print(json.dumps({"x": list(x.shape), "y": str(y.dtype.name),
                          "values": sorted(int(v) for v in np.unique(y.numpy()))}))
    ''')
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=backend_env(backend), cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["x"] == [2, 32, 32, 1] and out["y"] == "int32"
    assert set(out["values"]) <= {-1, 0, 1, 2}


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_the_device_script_trains_a_recipe_without_tensorflow(dsb_root, tmp_path, backend):
    # benchmarks/device_train.py as it runs on an accelerator machine, here on the CPU.
    script = REPO / "benchmarks" / "device_train.py"
    out = run_without_tensorflow(f'''
        import json, runpy, sys
        sys.argv = [{str(script)!r}, "run", {str(REPO / "recipes" / "dsb-3class-stage1.toml")!r},
                    "--data", {str(dsb_root)!r}, "--out", {str(tmp_path / "run")!r},
                    "--set", "model.args={{depth = 2, filters = 4}}", "--set", "train.epochs=1",
                    "--set", "train.steps_per_epoch=2", "--set", "data.max_images=2",
                    "--set", "data.crop_size=64", "--set", "data.batch_size=2",
                    "--set", "output.sample_image=''", "--set", "train.progress=false"]
        runpy.run_path(sys.argv[0], run_name="__main__")
        print(json.dumps({{"tensorflow": "tensorflow" in sys.modules}}))
    ''', backend=backend)
    assert not out["tensorflow"]
    summary = json.loads((tmp_path / "run" / "result.json").read_text())
    assert summary["backend"] == backend and summary["accelerator"] is None
    assert summary["hardware"] == f"a {os.cpu_count()}-core CPU"
    assert summary["scores"]["n_images"] == 2 and 0 <= summary["scores"]["ap50"] <= 1
    model_dir = Path(summary["model_dir"])
    assert (model_dir / "model.weights.h5").is_file()
    config = json.loads((model_dir / "nuclib.json").read_text())
    assert config["architecture_args"]["filters"] == 4


# --- installing without TensorFlow ----------------------------------------------------------

def test_requirements_without_tensorflow_keep_the_rest():
    from nuclib.requirements import requirements

    full = requirements()
    lean = requirements(without=["TensorFlow"], extras=["torch"])
    names = [r.split(">")[0].split("=")[0].split(";")[0].strip() for r in lean]
    assert "tensorflow" not in names and "keras" in names and "torch" in names
    assert [r for r in full if not r.startswith("tensorflow")] == lean[:len(full) - 1]
    assert len(full) == len(lean)  # tensorflow out, torch in
    # Markers other than the extra's survive (tomli only before Python 3.11).
    assert any(r.startswith("tomli") and 'python_version < "3.11"' in r for r in lean)


def test_requirements_command_names_the_extras_it_knows(capsys):
    from nuclib.requirements import main

    assert main(["--without", "tensorflow", "--extra", "jax"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("keras") and printed[-1].startswith("jax")
    with pytest.raises(SystemExit):
        main(["--extra", "tensorflw"])
    error = capsys.readouterr().err
    assert "no extra ['tensorflw']" in error and "'torch'" in error


# --- the zoo with the default engine on another backend -------------------------------------

@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_the_default_engine_runs_the_zoo_without_tensorflow(backend, tmp_path, monkeypatch):
    # engine="auto": a cached conversion (made here, on TensorFlow) runs on any backend;
    # without one, Keras runs, since converting traces through TensorFlow.
    code = '''
        import sys
        import numpy as np
        import nuclib
        from nuclib.data import read_image
        image = read_image("examples/data/fluorescence.png")
        seg = nuclib.load_pretrained("dsb-3class")
        labels = seg.segment(image, progress=False)
        wide = np.concatenate([image, image[:, ::-1]], axis=1)  # two blocks of 384
        blocks = seg.segment_large(wide, block_size=384, min_overlap=32, progress=False)
        whole = seg.segment(wide, progress=False)
        try:
            seg.export("m.onnx", format="onnx")
            message = ""
        except ValueError as err:
            message = str(err)
        print(json.dumps({"nuclei": int(labels.max()), "engine": type(seg.inferencer().model).__name__,
                          "message": message, "tensorflow": "tensorflow" in sys.modules,
                          "large": [int(blocks.max()), int(whole.max())]}))
    '''
    monkeypatch.delenv("NUCLIB_ENGINE", raising=False)
    monkeypatch.setenv("NUCLIB_CACHE_DIR", str(tmp_path / "empty"))
    fresh = run_without_tensorflow(code, backend=backend)
    assert not fresh["tensorflow"] and fresh["engine"] not in ("OpenVINOEngine",)
    assert "KERAS_BACKEND=tensorflow" in fresh["message"] and backend in fresh["message"]
    blocks, whole = fresh["large"]
    assert blocks == whole > 2 * fresh["nuclei"] - 5  # segment_large's seams lose nothing

    import nuclib
    from nuclib.data import read_image

    monkeypatch.setenv("NUCLIB_CACHE_DIR", str(tmp_path / "cached"))
    here = nuclib.load_pretrained("dsb-3class", engine="auto")
    expected = here.segment(read_image(REPO / "examples" / "data" / "fluorescence.png"),
                            progress=False)
    cached = run_without_tensorflow(code, backend=backend)
    assert cached["engine"] == "OpenVINOEngine" and not cached["tensorflow"]
    assert cached["nuclei"] == int(expected.max())
    assert abs(fresh["nuclei"] - cached["nuclei"]) <= 2  # Keras f32 against OpenVINO bf16
