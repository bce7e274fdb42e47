"""``nuclib.export``: ONNX, OpenVINO IR and SavedModel exports run in their own runtimes."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from nuclib.export import FORMATS, INPUT_NAME, export_model, exported_paths

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def segmenter():
    from nuclib.models import unet
    from nuclib.segmenter import Segmenter

    return Segmenter(unet(depth=2, filters=4), {"name": "tiny"})


@pytest.fixture(scope="module")
def batch():
    return np.random.default_rng(0).random((1, 64, 96, 1), dtype=np.float32)


@pytest.fixture(scope="module")
def exports(segmenter, tmp_path_factory):
    """Each format exported once: {format: main path}."""
    folder = tmp_path_factory.mktemp("exports")
    names = {"onnx": "tiny.onnx", "openvino": "tiny.xml", "saved_model": "tiny_saved_model"}
    return {fmt: export_model(segmenter, folder / names[fmt], format=fmt) for fmt in FORMATS}


def _runner(fmt, path):
    """``(predict(batch) -> array, input description)`` for an exported model."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (spec,) = session.get_inputs()
        info = (spec.name, list(spec.shape), spec.type)
        return (lambda x: session.run(None, {spec.name: x})[0]), info
    if fmt == "openvino":
        import openvino as ov

        # OpenVINO computes in bfloat16 by default on CPUs with AMX; compare in f32.
        compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        (port,) = compiled.inputs
        shape = port.get_partial_shape()
        info = (port.get_any_name(),
                [d.get_length() if d.is_static else None for d in shape],
                str(port.get_element_type()))
        return (lambda x: compiled(x)[0]), info
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    fn = loaded.signatures["serving_default"]
    (name, spec), = fn.structured_input_signature[1].items()
    info = (name, list(spec.shape), spec.dtype.name)
    # ``serve`` checks shapes against the signature (the bare signature function
    # does not, and fails deep inside the graph instead).
    return (lambda x: loaded.serve(x).numpy()), info


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_matches_keras_in_its_runtime(fmt, exports, segmenter, batch):
    predict, (name, shape, _) = _runner(fmt, exports[fmt])
    expected = segmenter.model.predict_on_batch(batch)
    got = np.asarray(predict(batch))
    assert got.shape == expected.shape == (1, 64, 96, 3)
    np.testing.assert_allclose(got, expected, atol=TOLERANCE)
    # Another size and batch: height and width are dynamic.
    other = np.random.default_rng(1).random((2, 32, 48, 1), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(predict(other)),
                               segmenter.model.predict_on_batch(other), atol=TOLERANCE)


@pytest.mark.parametrize("fmt", FORMATS)
def test_exported_signature_is_an_image_batch_of_any_size(fmt, exports):
    _, (name, shape, dtype) = _runner(fmt, exports[fmt])
    assert name == INPUT_NAME
    assert len(shape) == 4 and shape[-1] == 1  # rank 4, channels fixed
    # batch, height and width dynamic (ONNX names its free dimensions)
    assert all(d is None or isinstance(d, str) for d in shape[:3]), shape
    assert "float" in dtype.lower() or dtype == "f32"


@pytest.mark.parametrize("fmt, shape, message", [
    # three channels for a one-channel model
    ("onnx", (1, 64, 96, 3), r"index: 3 Got: 3 Expected: 1"),
    ("openvino", (1, 64, 96, 3), r"(?s)Can't set the input tensor"),
    ("saved_model", (1, 64, 96, 3),
     r"Can not cast TensorSpec\(shape=\(1, 64, 96, 3\).*\(None, None, None, 1\)"),
    # no batch axis
    ("onnx", (64, 96, 1), r"Invalid rank for input: image Got: 3 Expected: 4"),
    ("openvino", (64, 96, 1), r"(?s)Can't set the input tensor"),
    ("saved_model", (64, 96, 1), r"Can not cast TensorSpec\(shape=\(64, 96, 1\)"),
])
def test_wrong_input_fails_with_the_runtime_message(fmt, shape, message, exports):
    predict, _ = _runner(fmt, exports[fmt])
    with pytest.raises(Exception, match=message):
        predict(np.zeros(shape, np.float32))


def test_export_writes_openvino_weights_beside_and_nothing_else(exports):
    xml = exports["openvino"]
    assert xml.suffix == ".xml" and xml.with_suffix(".bin").is_file()
    # The temporary siblings are gone.
    assert sorted(p.name for p in xml.parent.iterdir()) == [
        "tiny.bin", "tiny.onnx", "tiny.xml", "tiny_saved_model"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_existing_output_is_refused_without_overwrite(fmt, exports, segmenter):
    path = exports[fmt]
    before = {p: p.stat().st_mtime_ns for p in exported_paths(path, fmt)}
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_model(segmenter, path, format=fmt)
    assert {p: p.stat().st_mtime_ns for p in exported_paths(path, fmt)} == before


def test_overwrite_replaces_and_the_suffix_is_added(segmenter, tmp_path, batch):
    target = tmp_path / "model"
    assert segmenter.export(target) == tmp_path / "model.onnx"
    (tmp_path / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(FileExistsError):
        segmenter.export(target)
    segmenter.export(target, overwrite=True)
    predict, _ = _runner("onnx", tmp_path / "model.onnx")
    np.testing.assert_allclose(predict(batch), segmenter.model.predict_on_batch(batch),
                               atol=TOLERANCE)
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_saved_model_overwrite_replaces_the_folder(segmenter, tmp_path):
    target = tmp_path / "sm"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    export_model(segmenter, target, format="saved_model", overwrite=True)
    assert not (target / "stale.txt").exists() and (target / "saved_model.pb").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["sm"]


def test_unknown_format_and_missing_package(segmenter, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="unknown export format 'tflite'"):
        export_model(segmenter, tmp_path / "m", format="tflite")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "openvino" else real(name, *a))
    with pytest.raises(ValueError, match=r'pip install "nuclib\[openvino\]"'):
        export_model(segmenter, tmp_path / "m.xml", format="openvino")
    assert not any(tmp_path.iterdir())


def test_not_an_image_model_is_refused(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="fixed channel count"):
        export_model(model, tmp_path / "m.onnx")


def test_cli_export(segmenter, tmp_path, capsys):
    from nuclib.cli import main

    model_dir = segmenter.save(tmp_path / "tiny-model")
    out = tmp_path / "tiny.xml"
    assert main(["export", str(model_dir), "--format", "openvino", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "tiny.xml and" in printed and "multiples of 4" in printed
    assert out.is_file() and out.with_suffix(".bin").is_file()
    # An existing output is a usage error, found before the model is loaded.
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(model_dir), "--format", "openvino", "--out", str(out)])
    assert exit_info.value.code == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["export", str(model_dir), "--format", "openvino", "--out", str(out),
                 "--overwrite"]) == 0
