"""SegmenterConfig (checked settings) and the model directory's settings / record split."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from nuclib import model_dir
from nuclib.config import Normalization, SegmenterConfig, Tiling, split_config
from nuclib.segmenter import Segmenter

BUNDLED = model_dir.Path(__file__).parents[1] / "nuclib" / "zoo" / "bundled" / "dsb-3class"


def test_defaults_are_the_documented_ones():
    config = SegmenterConfig()
    assert config.to_dict() == {
        "name": "model", "head": "three_class", "input_channels": 1,
        "normalize": {"low": 1.0, "high": 99.8}, "invert": "auto", "postprocess": {},
        "tiling": {"tile_size": 1024, "overlap": None, "batch_size": 1, "blend": "crop",
                   "buckets": False},
        "diameter": None, "estimate_side": 1024, "estimate_probe_side": 256, "tta": False,
        "engine": "keras",
        "precision": "auto"}
    assert "engine" not in config.to_dict(runtime=False)
    assert model_dir.DEFAULT_CONFIG == config.to_dict()


@pytest.mark.parametrize("key, value, message", [
    ("head", "3class", "unknown head '3class'"),
    ("input_channels", 2, "input_channels must be 1 or 3, got 2"),
    ("input_channels", True, "input_channels must be 1 or 3"),
    ("invert", "yes", "invert must be 'auto', true or false"),
    ("invert", 1, "invert must be 'auto', true or false"),
    ("diameter", -3, "diameter must be a positive number"),
    ("diameter", "20", "diameter must be a positive number"),
    ("estimate_side", 8, "estimate_side must be a whole number of pixels >= 16"),
    ("estimate_probe_side", 100.5, "estimate_probe_side must be a whole number of pixels"),
    ("tta", "no", "tta must be true or false"),
    ("engine", "tensorrt", "unknown engine"),
    ("precision", "fp8", "precision"),
    ("normalize", {"low": 50, "high": 10}, "0 <= low < high <= 100"),
    ("normalize", {"median": 50}, "'median': .*expected one of \\('low', 'high'\\)"),
    ("tiling", {"tile_size": 0}, "tile_size must be a positive whole number"),
    ("tiling", {"tile_size": 64, "overlap": 32}, "expected overlap < tile_size / 2"),
    ("tiling", {"overlap": -1}, "overlap must be a whole number of pixels >= 0"),
    ("tiling", {"batch_size": 0}, "batch_size must be a whole number >= 1"),
    ("tiling", {"blend": "average"}, "unknown tiling blend 'average'"),
    ("tiling", {"buckets": "yes"}, "tiling buckets must be true or false"),
    ("postprocess", {"seed_thresh": 0.5}, "seed_thresh: not a post-processing parameter"),
    ("postprocess", {"min_size": "big"}, "could not convert string to float: .big."),
    ("postprocess", [0.5], "postprocess must be a dict"),
])
def test_every_setting_is_checked_when_built_and_when_assigned(key, value, message):
    with pytest.raises(ValueError, match=message):
        SegmenterConfig(**{key: value})
    config = SegmenterConfig()
    with pytest.raises(ValueError, match=message):
        setattr(config, key, value)
    with pytest.raises(ValueError, match=message):
        config[key] = value
    assert config == SegmenterConfig(), "a refused value must leave the settings as they were"


def test_unknown_keys_name_the_record_when_they_belong_to_it():
    config = SegmenterConfig()
    with pytest.raises(KeyError, match="segmenter.record\\['scores'\\]"):
        config["scores"]
    with pytest.raises(AttributeError, match="not a SegmenterConfig setting"):
        config.tile_size = 256
    with pytest.raises(ValueError, match="'scores': not a Segmenter setting.*record"):
        SegmenterConfig.from_dict({"scores": {}})


def test_tables_take_dicts_that_update_them_and_keep_their_type():
    config = SegmenterConfig(tiling={"tile_size": 256})
    assert config.tiling == Tiling(tile_size=256)
    config["tiling"] = {"batch_size": 4}
    assert config.tiling == Tiling(tile_size=256, batch_size=4)
    assert config["tiling"]["tile_size"] == 256 and config.tiling.get("overlap") is None
    config.normalize = Normalization(0.5, 99.5)
    assert config.to_dict()["normalize"] == {"low": 0.5, "high": 99.5}
    assert SegmenterConfig(tiling={"tile_size": [128, 256]}).tiling.tile_size == (128, 256)
    copy = config.copy(diameter=17, tiling={"blend": "crop"})
    assert copy.diameter == 17.0 and copy.tiling.batch_size == 4 and config.diameter is None


def test_postprocess_is_checked_against_the_head_set_with_it():
    # Both orders of keywords: the head is always set first.
    a = SegmenterConfig(postprocess={"threshold": 0.6}, head="binary")
    b = SegmenterConfig.from_dict({"postprocess": {"threshold": 0.6}, "head": "binary"})
    assert a == b and a.postprocess == {"threshold": 0.6}
    assert SegmenterConfig().copy(head="binary", postprocess={"threshold": 0.6}) == a
    with pytest.raises(ValueError, match="threshold: not a post-processing parameter"):
        SegmenterConfig(head="three_class", postprocess={"threshold": 0.6})
    with pytest.raises(ValueError, match="not a post-processing parameter"):
        a.head = "three_class"   # binary's threshold means nothing to three_class


def test_split_config_sorts_settings_about_and_record():
    flat = json.loads((BUNDLED / "nuclib.json").read_text())
    flat.update(json.loads((BUNDLED / "record.json").read_text()))
    settings, about, record = split_config(flat)
    # The bundled file (sha256-pinned) predates the probe window: its default applies.
    assert set(settings) == set(SegmenterConfig._fields()) - {"engine", "precision",
                                                              "estimate_probe_side"}
    assert SegmenterConfig.from_dict(settings).estimate_probe_side == 256
    assert set(record) == {"scores", "training", "notes", "speed"}
    assert {"description", "architecture", "architecture_args", "parameters"} == set(about)
    assert SegmenterConfig.from_dict(settings).diameter == 20.0


def test_a_segmenter_built_from_a_flat_dict_keeps_the_parts_apart():
    seg = Segmenter(None, {"head": "binary", "description": "mine", "scores": {"ap50": 0.5}})
    assert seg.config.head == "binary" and seg.about == {"description": "mine"}
    assert seg.record == {"scores": {"ap50": 0.5}}
    assert seg.as_dict()["scores"] == {"ap50": 0.5} and "engine" not in seg.as_dict()
    seg.config = {"head": "three_class", "diameter": 12}
    assert seg.config.diameter == 12.0 and seg.postprocessor.head == "three_class"
    with pytest.raises(ValueError, match="not a Segmenter setting"):
        seg.config = {"description": "settings only"}


def test_saving_writes_settings_and_record_apart_and_loads_them_back(tmp_path):
    from nuclib.models import unet

    seg = Segmenter(unet(depth=2, filters=4), {"name": "tiny", "diameter": 16},
                    about={"description": "a tiny test model"},
                    record={"scores": {"ap50": 0.25}})
    seg.config.postprocess = {"min_size": 3}
    out = seg.save(tmp_path / "tiny")
    stored = json.loads((out / "nuclib.json").read_text())
    assert stored["format_version"] == 2 and stored["postprocess"] == {"min_size": 3}
    assert "scores" not in stored and "engine" not in stored
    assert json.loads((out / "record.json").read_text()) == {"scores": {"ap50": 0.25}}
    assert stored["files"]["record.json"] == model_dir.sha256(out / "record.json")
    again = Segmenter.from_directory(out, engine="keras")
    assert again.config.to_dict(runtime=False) == seg.config.to_dict(runtime=False)
    assert again.record == seg.record
    assert again.about["description"] == "a tiny test model"
    assert again.about["parameters"] == seg.model.count_params()
    image = np.random.default_rng(0).integers(0, 255, (40, 48), dtype=np.uint8)
    np.testing.assert_array_equal(again.predict(image, diameter=16), seg.predict(image, diameter=16))


def test_a_tampered_record_is_caught(tmp_path):
    target = tmp_path / "m"
    shutil.copytree(BUNDLED, target)
    (target / "record.json").write_text('{"scores": {"ap50": 1.0}}')
    with pytest.raises(model_dir.ChecksumError, match="record.json"):
        model_dir.check_model_dir(target)


def test_format_1_directories_still_load_with_their_record(tmp_path):
    """nuclib 0.1 kept scores and training inside nuclib.json."""
    target = tmp_path / "old"
    shutil.copytree(BUNDLED, target)
    flat = json.loads((target / "nuclib.json").read_text())
    record = json.loads((target / "record.json").read_text())
    flat = {**flat, **record, "format_version": 1, "engine": "keras"}
    flat["files"].pop("record.json")
    (target / "nuclib.json").write_text(json.dumps(flat))
    (target / "record.json").unlink()
    info = model_dir.check_model_dir(target)
    assert info.record == record and info.engine == "keras" and "engine" not in info.settings
    seg = Segmenter.from_directory(target, engine="keras")
    assert seg.record["scores"] == record["scores"] and seg.config.diameter == 20.0


def test_a_directory_with_bad_settings_names_the_file(tmp_path):
    target = tmp_path / "bad"
    shutil.copytree(BUNDLED, target)
    stored = json.loads((target / "nuclib.json").read_text())
    stored["input_channels"] = 4
    (target / "nuclib.json").write_text(json.dumps(stored))
    with pytest.raises(ValueError, match="nuclib.json: input_channels must be 1 or 3, got 4"):
        model_dir.check_model_dir(target, verify=False)
    stored["format_version"] = 3
    (target / "nuclib.json").write_text(json.dumps(stored))
    with pytest.raises(ValueError, match="unsupported format_version 3; expected one of"):
        model_dir.check_model_dir(target, verify=False)
