"""The ``nuclib`` command line."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest

from nuclib.cli import main
from nuclib.data.io import read_labels, write_image, write_labels


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from nuclib.models import unet
    from nuclib.segmenter import Segmenter

    directory = tmp_path_factory.mktemp("cli") / "model"
    Segmenter(unet(depth=2, filters=4), {"name": "cli-test", "tiling": {"tile_size": 64}}).save(
        directory)
    return directory


@pytest.fixture
def inputs(tmp_path, rng):
    folder = tmp_path / "in"
    for i in range(3):
        write_image(folder / f"img{i}.png", (rng.random((32, 40)) * 255).astype(np.uint8))
    (folder / "broken.png").write_bytes(b"this is not a png")
    return folder


def test_segment_continues_past_a_corrupt_file(model_dir, inputs, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["segment", str(inputs), "--model", str(model_dir), "--out", str(out),
                 "--overlay", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1
    assert "FAILED" in err and "broken.png" in err
    assert sorted(p.name for p in out.glob("*_labels.tif")) == [
        "img0_labels.tif", "img1_labels.tif", "img2_labels.tif"]
    assert len(list(out.glob("*_overlay.png"))) == 3
    assert not list(out.glob(".*")), "temporary files left behind"
    assert read_labels(out / "img0_labels.tif").shape == (32, 40)


def test_existing_outputs_are_kept_unless_overwrite(model_dir, inputs, tmp_path, capsys):
    (inputs / "broken.png").unlink()
    out = tmp_path / "out"
    out.mkdir()
    sentinel = np.full((32, 40), 7, np.int32)
    write_labels(out / "img0_labels.tif", sentinel)
    assert main(["segment", str(inputs), "--model", str(model_dir), "--out", str(out),
                 "--no-progress"]) == 0
    assert "skipped 1" in capsys.readouterr().err
    np.testing.assert_array_equal(read_labels(out / "img0_labels.tif"), sentinel)
    assert main(["segment", str(inputs), "--model", str(model_dir), "--out", str(out),
                 "--no-progress", "--overwrite"]) == 0
    assert not np.array_equal(read_labels(out / "img0_labels.tif"), sentinel)


def test_evaluate_round_trip(tmp_path, sample_dir, capsys):
    truth, pred = tmp_path / "true", tmp_path / "pred"
    truth.mkdir()
    pred.mkdir()
    for name in ("fluorescence", "histology"):
        shutil.copy(sample_dir / f"{name}_labels.png", truth / f"{name}.png")
        labels = read_labels(sample_dir / f"{name}_labels.png")
        write_labels(pred / f"{name}_labels.tif", labels)
    report = tmp_path / "scores.csv"
    assert main(["evaluate", "--true", str(truth), "--pred", str(pred), "--csv",
                 str(report)]) == 0
    printed = capsys.readouterr().out
    assert "fluorescence" in printed and "histology" in printed
    with open(report, newline="") as fh:
        text = fh.read()
    assert "fluorescence" in text
    rows = list(csv.reader(text.splitlines()))
    assert len(rows) >= 3
    # the CSV is not overwritten by a second run without --overwrite
    assert main(["evaluate", "--true", str(truth), "--pred", str(pred), "--csv",
                 str(report)]) == 1


def test_evaluate_reports_missing_predictions(tmp_path, sample_dir, capsys):
    truth, pred = tmp_path / "true", tmp_path / "pred"
    truth.mkdir()
    pred.mkdir()
    for name in ("fluorescence", "histology"):
        shutil.copy(sample_dir / f"{name}_labels.png", truth / f"{name}.png")
    shutil.copy(sample_dir / "fluorescence_labels.png", pred / "fluorescence.png")
    assert main(["evaluate", "--true", str(truth), "--pred", str(pred)]) == 1
    assert "MISSING prediction" in capsys.readouterr().err


def test_unknown_model_is_a_usage_error(inputs, tmp_path, capsys):
    code = main(["segment", str(inputs), "--model", "no-such-model", "--out",
                 str(tmp_path / "o"), "--no-progress"])
    assert code == 2
    assert "unknown pretrained model 'no-such-model'" in capsys.readouterr().err


def test_zoo_list_and_info(capsys):
    assert main(["zoo", "list"]) == 0
    listing = capsys.readouterr().out
    assert "dsb-3class" in listing
    assert main(["zoo", "info", "dsb-3class"]) == 0
    assert '"repo_id"' in capsys.readouterr().out


def test_same_name_in_two_folders_is_refused_not_overwritten(model_dir, tmp_path, rng, capsys):
    for folder in ("a", "b"):
        write_image(tmp_path / folder / "cells.png", (rng.random((32, 32)) * 255).astype(np.uint8))
    out = tmp_path / "out"
    code = main(["segment", str(tmp_path / "a"), str(tmp_path / "b"), "--model", str(model_dir),
                 "--out", str(out), "--no-progress"])
    assert code == 1
    assert "clashes" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["cells_labels.tif"]


@pytest.fixture(scope="module")
def sized_model_dir(tmp_path_factory):
    from nuclib.models import unet
    from nuclib.segmenter import Segmenter

    directory = tmp_path_factory.mktemp("cli-sized") / "model"
    Segmenter(unet(depth=2, filters=4), {"name": "cli-sized", "diameter": 20,
                                         "tiling": {"tile_size": 64}}).save(directory)
    return directory


def test_segment_zooms_to_a_given_diameter(sized_model_dir, inputs, tmp_path, capsys):
    (inputs / "broken.png").unlink()
    out = tmp_path / "out"
    assert main(["segment", str(inputs), "--model", str(sized_model_dir), "--out", str(out),
                 "--diameter", "10", "--tta", "--no-progress", "-v"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("(diameter 10.0 px)") == 3
    assert read_labels(out / "img1_labels.tif").shape == (32, 40)


@pytest.mark.parametrize("value", ["0", "-2", "nan", "big"])
def test_segment_rejects_a_bad_diameter(sized_model_dir, inputs, tmp_path, value, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["segment", str(inputs), "--model", str(sized_model_dir),
              "--out", str(tmp_path / "o"), "--diameter", value])
    assert exit_.value.code == 2
    assert "positive number of pixels" in capsys.readouterr().err


def test_a_diameter_for_a_model_without_one_is_a_usage_error(model_dir, inputs, tmp_path,
                                                             capsys):
    out = tmp_path / "out"
    assert main(["segment", str(inputs), "--model", str(model_dir), "--out", str(out),
                 "--diameter", "12", "--no-progress"]) == 2
    assert "own scale" in capsys.readouterr().err
    assert not out.exists()


def test_segment_set_overrides_post_processing(model_dir, inputs, tmp_path, capsys):
    (inputs / "broken.png").unlink()
    out = tmp_path / "out"
    # an object needs a million pixels: every label image comes out empty
    assert main(["segment", str(inputs), "--model", str(model_dir), "--out", str(out),
                 "--set", "min_size=1000000", "--set", "seed_split_height=2.5",
                 "--no-progress"]) == 0
    assert all(read_labels(p).max() == 0 for p in out.glob("*_labels.tif"))
    assert len(list(out.glob("*_labels.tif"))) == 3


@pytest.mark.parametrize("setting, message", [
    ("threshold=0.5", "not a post-processing parameter of three_class_to_labels"),
    ("min_size=-3", "min_size"),
    ("seed_split_height=tall", "seed_split_height must be >= 0 pixels, got 'tall'"),
])
def test_segment_rejects_an_unusable_set(model_dir, inputs, tmp_path, setting, message, capsys):
    out = tmp_path / "out"
    assert main(["segment", str(inputs), "--model", str(model_dir), "--out", str(out),
                 "--set", setting, "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_set_needs_key_equals_value(model_dir, inputs, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["segment", str(inputs), "--model", str(model_dir), "--out", str(tmp_path),
              "--set", "min_size"])
    assert exit_.value.code == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err
