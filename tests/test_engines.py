"""``nuclib.engines``: OpenVINO and ONNX Runtime run the network as Keras does."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import nuclib
from nuclib.data.io import read_image, read_labels
from nuclib.engines import (ENGINES, cache_dir, check_engine, cpu_computes_bfloat16, make_engine,
                            model_digest, resolve_engine, resolve_precision)
from nuclib.metrics import matching
from nuclib.segmenter import Segmenter

COMPILED = ("openvino", "onnxruntime")


@pytest.fixture(scope="module")
def image(sample_dir):
    """A real DSB2018 fluorescence image (260x347) shipped in examples/data."""
    return read_image(sample_dir / "fluorescence.png")


@pytest.fixture(scope="module")
def keras_run(image):
    """The bundled dsb-3class with the Keras engine: (segmenter, prediction, labels)."""
    seg = nuclib.load_pretrained("dsb-3class")
    diameter = seg.estimate_diameter(image, progress=False)
    pred = seg.predict_scaled(image, diameter=diameter, progress=False)
    return seg, pred, seg.labels_from(pred)


@pytest.fixture(scope="module")
def tiny():
    from nuclib.models import unet

    return unet(depth=2, filters=4)


def _hide(monkeypatch, *modules):
    """Make ``importlib.util.find_spec`` say ``modules`` are not installed."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in modules else real(name, *a))


@pytest.mark.parametrize("engine", COMPILED)
def test_engine_labels_equal_the_keras_engines(engine, keras_run, image, sample_dir):
    keras_seg, keras_pred, keras_labels = keras_run
    seg = nuclib.load_pretrained("dsb-3class", engine=engine)
    seg.config["precision"] = "f32"   # bf16 is compared below
    assert seg.engine == engine and seg.config["engine"] == engine
    # The same tiles: stride and receptive field come from the Keras model.
    ours, theirs = seg.inferencer(), keras_seg.inferencer()
    assert (ours.multiple, ours.overlap) == (theirs.multiple, theirs.overlap) == (16, 107)
    assert ours.tile_origins(image.shape) == theirs.tile_origins(image.shape)
    assert seg.estimate_diameter(image, progress=False) == pytest.approx(
        keras_pred.diameter, rel=0.01)
    pred = seg.predict_scaled(image, diameter=keras_pred.diameter, progress=False)
    assert pred.factor == keras_pred.factor
    np.testing.assert_allclose(pred.probs, keras_pred.probs, atol=1e-3)
    labels = seg.labels_from(pred)
    assert labels.shape == keras_labels.shape and labels.dtype == keras_labels.dtype
    assert matching(keras_labels, labels, thresh=0.5).accuracy >= 0.99
    # The engine's scores against the annotations are the Keras engine's.
    truth = read_labels(sample_dir / "fluorescence_labels.png")
    assert matching(truth, labels).accuracy == pytest.approx(
        matching(truth, keras_labels).accuracy, abs=0.01)


def test_openvino_bf16_labels_agree_with_keras(keras_run, image, sample_dir):
    keras_seg, keras_pred, keras_labels = keras_run
    seg = nuclib.load_pretrained("dsb-3class", engine="openvino")
    seg.config["precision"] = "bf16"
    network = seg.inferencer().model
    assert network.precision == "bf16" and "precision='bf16'" in repr(network)
    pred = seg.predict_scaled(image, diameter=keras_pred.diameter, progress=False)
    # bfloat16 keeps 8 bits of mantissa: probabilities move by a few hundredths at most.
    assert np.abs(pred.probs - keras_pred.probs).max() < 0.15
    labels = seg.labels_from(pred)
    assert matching(keras_labels, labels, thresh=0.5).accuracy >= 0.95
    truth = read_labels(sample_dir / "fluorescence_labels.png")
    assert matching(truth, labels).accuracy == pytest.approx(
        matching(truth, keras_labels).accuracy, abs=0.03)


def test_precision_auto_is_bf16_where_the_cpu_computes_it(tmp_path, tiny):
    native = cpu_computes_bfloat16()
    assert resolve_precision("auto") == ("bf16" if native else "f32")
    assert resolve_precision("f32") == "f32" and resolve_precision("bf16") == "bf16"
    assert make_engine(tiny, "openvino").precision == resolve_precision("auto")
    assert make_engine(tiny, "openvino", "f32").precision == "f32"
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t\t: fpu avx2 avx512f\n")
    assert not cpu_computes_bfloat16(cpuinfo)
    cpuinfo.write_text("flags\t\t: fpu avx2 amx_bf16 amx_tile\n")
    assert cpu_computes_bfloat16(cpuinfo)
    assert not cpu_computes_bfloat16(tmp_path / "missing")
    with pytest.raises(ValueError, match=r"unknown precision 'int4'; expected one of"):
        resolve_precision("int4")
    with pytest.raises(ValueError, match=r"unknown precision 'fp16'"):
        Segmenter(tiny, {"precision": "fp16"})


def test_converted_models_are_cached_on_disk_by_digest(tiny, tmp_path, monkeypatch):
    import nuclib.export
    from nuclib.models import unet

    monkeypatch.setenv("NUCLIB_CACHE_DIR", str(tmp_path / "cache"))
    assert cache_dir() == tmp_path / "cache" / "engines"
    batch = np.random.default_rng(1).random((1, 32, 32, 1), dtype=np.float32)
    first = make_engine(tiny, "openvino", "f32")(batch)
    entries = sorted(p.name for p in cache_dir().iterdir())
    assert entries == [f"openvino-{model_digest(tiny)[:32]}"]
    assert {p.name for p in (cache_dir() / entries[0]).iterdir()} == {"model.xml", "model.bin"}

    # A second engine (another process, in real use) reads the file: no conversion.
    def no_export(*args, **kwargs):
        raise AssertionError("converted again although the cache holds the model")

    monkeypatch.setattr(nuclib.export, "export_model", no_export)
    np.testing.assert_allclose(make_engine(tiny, "openvino", "f32")(batch), first)
    monkeypatch.undo()
    monkeypatch.setenv("NUCLIB_CACHE_DIR", str(tmp_path / "cache"))
    # Other weights, another entry; the same weights in a new model, the same one.
    other = unet(depth=2, filters=4)
    assert model_digest(other) != model_digest(tiny)
    other.set_weights(tiny.get_weights())
    assert model_digest(other) == model_digest(tiny)
    make_engine(tiny, "onnxruntime")(batch)
    assert len(list(cache_dir().iterdir())) == 2      # no staging folder left behind


def test_an_unwritable_cache_converts_in_memory(tiny, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("NUCLIB_CACHE_DIR", str(blocker))
    batch = np.zeros((1, 32, 32, 1), np.float32)
    with pytest.warns(UserWarning, match=r"cannot write the engine cache .*NUCLIB_CACHE_DIR"):
        out = make_engine(tiny, "openvino", "f32")(batch)
    np.testing.assert_allclose(out, tiny.predict_on_batch(batch), atol=1e-5)


@pytest.mark.parametrize("engine", COMPILED)
def test_compiled_engines_match_keras_on_a_batch_and_compile_once(engine, tiny):
    compiled = make_engine(tiny, engine, "f32")
    assert (compiled.multiple, compiled.overlap, compiled.input_shape[-1]) == (4, 23, 1)
    rng = np.random.default_rng(0)
    for shape in ((1, 64, 96, 1), (3, 32, 48, 1)):  # any batch and size
        batch = rng.random(shape, dtype=np.float32)
        np.testing.assert_allclose(compiled(batch), tiny.predict_on_batch(batch), atol=1e-5)
    first = compiled.compiled()
    assert compiled.compiled() is first
    with pytest.raises(ValueError, match=r"multiples of 4"):
        compiled(np.zeros((1, 30, 32, 1), np.float32))
    with pytest.raises(ValueError, match=r"expected a float32 batch \(N, h, w, 1\)"):
        compiled(np.zeros((1, 32, 32, 3), np.float32))


def test_segmenter_builds_its_engine_once(tiny):
    seg = Segmenter(tiny, engine="onnxruntime")
    image = np.random.default_rng(0).random((50, 70)).astype(np.float32)
    first = seg.predict(image, progress=False)
    network = seg.inferencer().model
    assert network.name == "onnxruntime" and network.model is tiny
    np.testing.assert_allclose(seg.predict(image, progress=False), first)
    assert seg.inferencer().model is network
    np.testing.assert_allclose(first, Segmenter(tiny).predict(image, progress=False),
                               atol=1e-5)


def test_a_compiled_engine_tiles_a_pooling_model_as_keras_does():
    """Global pooling (squeeze-and-excitation) makes tiles approximate: the compiled
    engine's inferencer has the Keras one's overlap and names the same layer."""
    import keras

    inputs = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    s = keras.layers.GlobalAveragePooling2D(keepdims=True, name="squeeze")(x)
    x = keras.layers.Multiply()([x, keras.layers.Conv2D(4, 1, activation="sigmoid")(s)])
    model = keras.Model(inputs, keras.layers.Conv2D(3, 3, padding="same",
                                                    activation="softmax")(x))
    by_keras = Segmenter(model, {"tiling": {"tile_size": 64}}).inferencer()
    compiled = Segmenter(model, {"tiling": {"tile_size": 64}}, engine="onnxruntime").inferencer()
    assert compiled.model.name == "onnxruntime"
    assert (compiled.overlap, compiled.approximate_layer) == (
        by_keras.overlap, by_keras.approximate_layer) == (2, "squeeze (GlobalAveragePooling2D)")
    image = np.random.default_rng(0).random((150, 100, 1), dtype=np.float32)
    with pytest.warns(UserWarning, match="squeeze .GlobalAveragePooling2D. summarizes"):
        tiled = compiled.predict(image)
    with pytest.warns(UserWarning, match="squeeze"):
        np.testing.assert_allclose(tiled, by_keras.predict(image), atol=1e-5)


def test_the_engine_is_the_machines_choice_not_the_models(tiny, tmp_path, monkeypatch):
    seg = Segmenter(tiny, {"name": "tiny"}, engine="onnxruntime")
    assert "engine='onnxruntime'" in repr(seg)
    folder = seg.save(tmp_path / "tiny")
    saved = json.loads((folder / "nuclib.json").read_text())
    assert "engine" not in saved and "precision" not in saved
    # conftest sets NUCLIB_ENGINE=keras; an argument wins over it.
    assert Segmenter.from_directory(folder).engine == "keras"
    assert Segmenter.from_directory(folder, engine="openvino").engine == "openvino"
    monkeypatch.setenv("NUCLIB_ENGINE", "onnxruntime")
    assert nuclib.load_pretrained(folder).config["engine"] == "onnxruntime"
    assert nuclib.load_pretrained(folder, engine="keras").engine == "keras"
    monkeypatch.setenv("NUCLIB_ENGINE", "tensorrt")
    with pytest.raises(ValueError, match=r"NUCLIB_ENGINE: unknown engine 'tensorrt'"):
        Segmenter.from_directory(folder)
    monkeypatch.delenv("NUCLIB_ENGINE")
    assert Segmenter.from_directory(folder).config["engine"] == "auto"
    # A directory written before 0.2 may name its engine: kept when none is set.
    saved["engine"] = "onnxruntime"
    (folder / "nuclib.json").write_text(json.dumps(saved))
    assert Segmenter.from_directory(folder, verify=False).engine == "onnxruntime"


def test_directories_default_to_auto_and_code_to_keras(tiny, monkeypatch):
    monkeypatch.delenv("NUCLIB_ENGINE")
    assert Segmenter(tiny).engine == "keras"
    seg = nuclib.load_pretrained("dsb-3class")
    assert seg.config["engine"] == "auto" and seg.engine == "openvino"
    auto = Segmenter(tiny, engine="auto")
    assert auto.engine == "openvino" and auto.config["engine"] == "auto"
    _hide(monkeypatch, "openvino")
    assert auto.engine == "keras" and resolve_engine("auto") == "keras"
    assert auto.inferencer().model is tiny


KERAS_FREE_RUN = """
import json, sys
import nuclib
from nuclib.data import read_image
seg = nuclib.load_pretrained("dsb-3class")
labels = seg.segment(read_image(sys.argv[1]), progress=False)
imported = sorted(m for m in ("keras", "tensorflow") if m in sys.modules)
unloaded = not seg._network.loaded
name = seg.model.name  # asked for: loaded now
print(json.dumps({"imported": imported, "unloaded": unloaded, "name": name,
                  "engine": repr(seg.inferencer().model), "labels": labels.tolist()}))
"""


def test_a_cached_directory_runs_without_importing_keras(sample_dir, tmp_path):
    # Two processes as two `nuclib segment` runs: the first converts (and imports
    # Keras), the second runs the cached conversion and never imports Keras.
    env = dict(os.environ, NUCLIB_CACHE_DIR=str(tmp_path / "cache"), NUCLIB_ENGINE="auto")
    runs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", KERAS_FREE_RUN,
                               str(sample_dir / "fluorescence.png")],
                              capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    first, second = runs
    assert first["imported"] == ["keras", "tensorflow"] and not first["unloaded"]
    assert second["imported"] == [] and second["unloaded"]
    assert first["name"] == second["name"] == "dsb_3class"
    assert "OpenVINOEngine(model='dsb_3class'" in second["engine"]
    assert first["labels"] == second["labels"]
    records = list((tmp_path / "cache" / "engines" / "directories").iterdir())
    assert len(records) == 1


def test_a_model_changed_in_place_gets_its_own_cache_entry(tiny, tmp_path, monkeypatch):
    from nuclib.engines import engine_from_cache
    from nuclib.model_dir import keras_files_digest

    monkeypatch.setenv("NUCLIB_CACHE_DIR", str(tmp_path / "cache"))
    folder = Segmenter(tiny, {"name": "tiny"}).save(tmp_path / "tiny")
    seg = Segmenter.from_directory(folder, engine="openvino")
    assert seg._network.loaded  # nothing cached yet: Keras loaded
    seg.model.set_weights([w * 0 for w in seg.model.get_weights()])  # before any conversion
    seg.predict(np.ones((32, 32), np.float32), progress=False)
    # The conversion went to the changed model's entry, not to the directory's.
    assert engine_from_cache(keras_files_digest(folder), "openvino") is None
    assert (cache_dir() / f"openvino-{model_digest(seg.model)[:32]}" / "model.xml").is_file()
    again = Segmenter.from_directory(folder, engine="openvino")
    assert again._network.loaded
    again.predict(np.ones((32, 32), np.float32), progress=False)
    cached = Segmenter.from_directory(folder, engine="openvino")
    assert not cached._network.loaded and cached.inferencer().model.model is None
    np.testing.assert_allclose(cached.predict(np.ones((32, 32), np.float32), progress=False),
                               Segmenter(tiny).predict(np.ones((32, 32), np.float32),
                                                       progress=False), atol=1e-4)


def test_compiled_engines_need_a_keras_model():
    def threshold(batch):
        return np.repeat(batch > 0.5, 3, axis=-1).astype(np.float32)

    with pytest.raises(ValueError, match="engine 'openvino' converts Keras models"):
        Segmenter(threshold, engine="openvino")
    with pytest.raises(ValueError, match="converts Keras models; got a function"):
        make_engine(threshold, "onnxruntime")
    # auto falls back to the callable itself.
    auto = Segmenter(threshold, {"tiling": {"overlap": 0}}, engine="auto")
    assert auto.inferencer().model is threshold
    assert auto.predict(np.zeros((20, 30), np.float32), progress=False).shape == (20, 30, 3)


def test_unknown_engine_is_refused(tiny):
    with pytest.raises(ValueError, match=r"unknown engine 'tensorrt'.*pip install"):
        Segmenter(tiny, engine="tensorrt")
    with pytest.raises(ValueError, match=r"unknown engine 'tensorrt'"):
        Segmenter(tiny, {"engine": "tensorrt"})
    with pytest.raises(ValueError, match=r"unknown engine"):
        nuclib.load_pretrained("dsb-3class", engine="tensorrt")
    assert ENGINES == ("keras", "openvino", "onnxruntime", "auto")


@pytest.mark.parametrize("engine, extra, module", [("openvino", "openvino", "openvino"),
                                                   ("onnxruntime", "onnx", "onnxruntime"),
                                                   ("onnxruntime", "onnx", "tf2onnx")])
def test_an_engine_whose_package_is_missing_names_the_install(engine, extra, module, tiny,
                                                             monkeypatch):
    _hide(monkeypatch, module)
    message = rf'engine {engine!r} needs {module}.*pip install "nuclib\[{extra}\]"'
    with pytest.raises(ValueError, match=message):
        check_engine(engine)
    with pytest.raises(ValueError, match=message):
        Segmenter(tiny, engine=engine)
    with pytest.raises(ValueError, match=message):
        nuclib.load_pretrained("dsb-3class", engine=engine)


def test_cli_segment_engine(tiny, tmp_path, image, monkeypatch, capsys):
    from nuclib.cli import main
    from nuclib.data.io import write_image

    model_dir = Segmenter(tiny, {"name": "tiny"}).save(tmp_path / "tiny")
    write_image(tmp_path / "cells.png", image)
    outputs = {}
    for engine, precision in (("keras", []), ("openvino", ["--precision", "f32"]),
                              ("openvino", ["--precision", "bf16"])):
        out = tmp_path / f"{engine}{precision}"
        assert main(["segment", str(tmp_path / "cells.png"), "--model", str(model_dir),
                     "--engine", engine, *precision, "--out", str(out), "--no-progress"]) == 0
        outputs[engine + "".join(precision[1:])] = read_labels(out / "cells_labels.tif")
    assert matching(outputs["keras"], outputs["openvinof32"]).accuracy >= 0.99
    assert matching(outputs["keras"], outputs["openvinobf16"]).accuracy >= 0.9
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:  # not one of the choices
        main(["segment", str(tmp_path / "cells.png"), "--engine", "tensorrt",
              "--out", str(tmp_path / "x")])
    assert exit_info.value.code == 2
    _hide(monkeypatch, "openvino")
    with pytest.raises(SystemExit) as exit_info:  # checked before the model is loaded
        main(["segment", str(tmp_path / "cells.png"), "--engine", "openvino",
              "--out", str(tmp_path / "x")])
    assert exit_info.value.code == 2
    assert 'pip install "nuclib[openvino]"' in capsys.readouterr().err
