"""The ``nuclib`` command line."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest

from nuclib.cli import main
from nuclib.data.io import read_image, read_labels, write_image, write_labels


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
    assert "WARNING" not in capsys.readouterr().err  # real labels: no intensity warning
    # An existing CSV is refused before anything is scored: no table printed first.
    report.write_text("keep me")
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", "--true", str(truth), "--pred", str(pred), "--csv", str(report)])
    assert exit_.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and "exists; not overwritten: pass --overwrite" in err
    assert report.read_text() == "keep me"
    assert main(["evaluate", "--true", str(truth), "--pred", str(pred), "--csv", str(report),
                 "--overwrite"]) == 0
    assert "fluorescence" in report.read_text()


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


# -- segment: each output on its own; arguments and model names checked first -----------


def test_overlays_added_later_are_drawn_from_the_existing_labels(model_dir, inputs, tmp_path,
                                                               capsys, monkeypatch):
    from nuclib import zoo
    from nuclib.viz import overlay_rgb

    (inputs / "broken.png").unlink()
    out = tmp_path / "out"
    out.mkdir()
    sentinel = np.zeros((32, 40), np.int32)
    sentinel[5:15, 5:15] = 1
    for i in range(3):
        write_labels(out / f"img{i}_labels.tif", sentinel)

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded although only overlays were missing")

    monkeypatch.setattr(zoo, "load_pretrained", no_model)
    command = ["segment", str(inputs), "--model", str(model_dir), "--out", str(out),
               "--overlay", "--no-progress"]
    assert main(command) == 0
    err = capsys.readouterr().err
    assert "segmented 0, drew 3 overlay(s) from labels already in" in err
    assert "skipped 3 output(s) that already exist" in err and "3 labels file(s)" in err
    np.testing.assert_array_equal(read_image(out / "img1_overlay.png"),
                                  overlay_rgb(read_image(inputs / "img1.png"), sentinel))
    # A deleted overlay is drawn again; the others are kept.
    (out / "img2_overlay.png").unlink()
    assert main(command) == 0
    err = capsys.readouterr().err
    assert "drew 1 overlay(s)" in err
    assert "skipped 5 output(s)" in err and "(3 labels file(s), 2 overlay(s);" in err
    assert sorted(p.name for p in out.glob("*_overlay.png")) == [
        "img0_overlay.png", "img1_overlay.png", "img2_overlay.png"]


def test_missing_labels_are_segmented_and_existing_ones_kept(model_dir, inputs, tmp_path,
                                                            capsys):
    (inputs / "broken.png").unlink()
    out = tmp_path / "out"
    out.mkdir()
    sentinel = np.full((32, 40), 7, np.int32)
    write_labels(out / "img0_labels.tif", sentinel)
    write_image(out / "img1_overlay.png", np.zeros((32, 40, 3), np.uint8))
    assert main(["segment", str(inputs), "--model", str(model_dir), "--out", str(out),
                 "--overlay", "--no-progress"]) == 0
    err = capsys.readouterr().err
    # img1, img2 segmented; img0's overlay drawn from its labels, img1's overlay kept.
    assert err.startswith("segmented 2, drew 1 overlay(s)")
    assert "skipped 2 output(s)" in err and "(1 labels file(s), 1 overlay(s);" in err
    np.testing.assert_array_equal(read_labels(out / "img0_labels.tif"), sentinel)
    assert read_image(out / "img1_overlay.png").max() == 0
    assert (out / "img2_overlay.png").is_file() and (out / "img1_labels.tif").is_file()


def test_nothing_to_do_loads_neither_tensorflow_nor_the_model(inputs, tmp_path):
    import subprocess
    import sys

    (inputs / "broken.png").unlink()
    out = tmp_path / "out"
    for i in range(3):
        write_labels(out / f"img{i}_labels.tif", np.zeros((32, 40), np.int32))
        write_image(out / f"img{i}_overlay.png", np.zeros((32, 40, 3), np.uint8))
    # A model that does not exist: loading it would fail.
    script = ("import sys; from nuclib.cli import main; "
              f"code = main(['segment', {str(inputs)!r}, '--model', 'no-such-model', "
              f"'--out', {str(out)!r}, '--overlay', '--no-progress']); "
              "print(code, 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stdout.split() == ["0", "False", "False"], done.stderr
    assert "segmented 0, skipped 6 output(s) that already exist" in done.stderr


def test_a_missing_input_is_a_usage_error_before_the_model_loads(inputs, tmp_path, capsys):
    missing = tmp_path / "nope.png"
    with pytest.raises(SystemExit) as exit_:
        # An unknown model too: had it been loaded first, that would be the error.
        main(["segment", str(inputs), str(missing), "--model", "no-such-model",
              "--out", str(tmp_path / "o")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: nuclib segment")
    assert f"error: input not found: {missing} (expected image files or folders)" in err
    assert "unknown pretrained model" not in err


def test_a_mistyped_model_directory_is_reported_as_missing(model_dir, inputs, tmp_path, capsys):
    shutil.copytree(model_dir, tmp_path / "runs" / "my-model" / "model")
    wrong = tmp_path / "runs" / "my-modle" / "model"
    assert main(["segment", str(inputs), "--model", str(wrong), "--out", str(tmp_path / "o"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"model directory '{wrong}' does not exist" in err
    assert f"did you mean '{tmp_path / 'runs' / 'my-model' / 'model'}'?" in err
    assert "unknown pretrained model" not in err


def test_a_mistyped_zoo_name_gets_the_closest_one(inputs, tmp_path, capsys):
    assert main(["segment", str(inputs), "--model", "dsb3class", "--out", str(tmp_path / "o"),
                 "--no-progress"]) == 2
    assert "unknown pretrained model 'dsb3class'; did you mean 'dsb-3class'?" in (
        capsys.readouterr().err)


# -- evaluate: label checks, groups, short names ------------------------------------------

# From DSB2018 val/: two fluorescence images (9 and 20 nuclei), one histology (21).
FLUO = ("0acd2c223d300ea55d0546797713851e818e5c697d073b7f4091b96ce0f3d2fe",
        "20468e8779c43e089dc0ff30f25e6cf3872d5aa6a0fdad6f8aca382da43e8582")
HISTO = "0d3640c1f1b80f24e94cc9a5f3e1d9e8db7bf6af7d4aba920265f46cadc25e37"


@pytest.fixture
def dsb_folders(dsb_root, tmp_path):
    """Truth labels of three val images; predictions right for fluorescence, empty for histology."""
    truth, pred = tmp_path / "true", tmp_path / "pred"
    truth.mkdir()
    pred.mkdir()
    for name in (*FLUO, HISTO):
        labels = read_labels(dsb_root / "val" / "labels" / f"{name}.png")
        write_labels(truth / f"{name}.png", labels)
        write_labels(pred / f"{name}_labels.tif", labels if name in FLUO else 0 * labels)
    return truth, pred


def test_evaluate_groups_by_the_manifest_and_shortens_names(dsb_root, dsb_folders, tmp_path,
                                                           capsys):
    truth, pred = dsb_folders
    scores = tmp_path / "scores.csv"
    assert main(["evaluate", "--true", str(truth), "--pred", str(pred), "--groups",
                 str(dsb_root / "manifest.csv"), "--csv", str(scores)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:4] == ["0acd2c223d30…", "fluorescence", "9", "9"]
    assert lines[2].split()[:5] == ["0d3640c1f1b8…", "histology", "21", "0", "0.000"]
    assert lines[3].split()[:5] == ["20468e8779c4…", "fluorescence", "20", "20", "1.000"]
    summary = {line.split()[0]: line.split() for line in lines[5:]}
    assert summary["all"][1:4] == ["3", "50", "29"]
    assert summary["fluorescence"][1:5] == ["2", "29", "29", "1.000"]
    assert summary["histology"][1:5] == ["1", "21", "0", "0.000"]
    with open(scores, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["name"], r["group"]) for r in rows] == [  # full names in the CSV
        (FLUO[0], "fluorescence"), (HISTO, "histology"), (FLUO[1], "fluorescence")]


def test_evaluate_group_column_and_groups_file_errors(dsb_folders, tmp_path, capsys):
    truth, pred = dsb_folders
    groups = tmp_path / "groups.csv"
    groups.write_text("name,batch,stain\n" + "".join(f"{n}.png,b{i},s\n" for i, n in
                                                      enumerate(sorted((*FLUO, HISTO)))))
    # No "modality" column: the second one; ids may carry the image extension.
    assert main(["evaluate", "--true", str(truth), "--pred", str(pred), "--groups",
                 str(groups)]) == 0
    summary = capsys.readouterr().out.split("\n\n")[1]
    assert [line.split()[0] for line in summary.splitlines()[1:]] == ["all", "b0", "b1", "b2"]
    assert main(["evaluate", "--true", str(truth), "--pred", str(pred), "--groups",
                 str(groups), "--group-column", "stain"]) == 0
    assert "\ns " in capsys.readouterr().out
    assert main(["evaluate", "--true", str(truth), "--pred", str(pred), "--groups",
                 str(groups), "--group-column", "modality"]) == 2
    assert ("--group-column 'modality' is not a column of" in capsys.readouterr().err)
    groups.write_text(f"id,modality\n{FLUO[0]},fluorescence\n")
    assert main(["evaluate", "--true", str(truth), "--pred", str(pred), "--groups",
                 str(groups)]) == 2
    assert "has no row for 2 of the 3 images" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", "--true", str(truth), "--pred", str(pred), "--group-column", "x"])
    assert exit_.value.code == 2
    assert "--group-column needs --groups FILE" in capsys.readouterr().err


def test_evaluate_warns_when_labels_look_like_an_intensity_image(dsb_root, dsb_folders,
                                                                 capsys):
    truth, pred = dsb_folders
    image = truth / f"{FLUO[1]}.png"
    shutil.copy(dsb_root / "val" / "images" / f"{FLUO[1]}.png", image)  # grayscale image
    assert main(["evaluate", "--true", str(truth), "--pred", str(pred)]) == 0
    err = capsys.readouterr().err
    assert f"WARNING {image}: looks like an intensity image, not instance labels" in err
    assert err.count("WARNING") == 1


def test_evaluate_stops_on_colour_labels(dsb_root, dsb_folders, capsys):
    truth, pred = dsb_folders
    image = truth / f"{HISTO}.png"
    shutil.copy(dsb_root / "val" / "images" / f"{HISTO}.png", image)  # RGB histology image
    assert main(["evaluate", "--true", str(truth), "--pred", str(pred)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"--true {image} has 3 colour channels; expected single-channel instance labels" in err


def test_intensity_rule_known_answers():
    from nuclib.cli import intensity_like

    labels = np.zeros((10, 10), np.int32)
    labels[2:8, 2:8] = 1
    assert intensity_like(labels) is None
    dense = np.ones((10, 10), np.int32)  # no background, but constant: still labels
    assert intensity_like(dense) is None
    ramp = np.arange(1, 101).reshape(10, 10)  # every neighbour differs
    assert intensity_like(ramp) == (
        "only 0% of its pixels are background (0) and only 0% of neighbouring nucleus pixels "
        "share an id (instance labels: mostly background, constant over each nucleus)")
    speckle = np.zeros((10, 10), np.int32)
    speckle[::2, ::2] = np.arange(1, 26).reshape(5, 5)  # mostly background: not flagged
    assert intensity_like(speckle) is None


def test_the_cli_hides_the_backends_native_log_lines(model_dir, inputs, tmp_path):
    import os
    import subprocess
    import sys

    (inputs / "broken.png").unlink()
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    # -v, as in the README: nuclib's line per image, but still none of the backend's.
    done = subprocess.run([sys.executable, "-m", "nuclib", "segment", str(inputs), "--model",
                           str(model_dir), "--out", str(tmp_path / "out"), "--no-progress",
                           "-v"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    # TensorFlow's C++ lines ("I0000 ... cudart_stub.cc", "WARNING: All log messages
    # before absl::InitializeLog()") are gone: only nuclib's own summary is left.
    assert done.stderr.splitlines() == ["segmented 3, failed 0"]
    assert len(done.stdout.splitlines()) == 3 and " nuclei" in done.stdout


def test_a_reader_that_goes_away_is_not_an_error():
    import subprocess
    import sys

    # As in `nuclib zoo info dsb-3class | head -1`: the pipe closes before nuclib writes.
    proc = subprocess.Popen([sys.executable, "-m", "nuclib", "zoo", "info", "dsb-3class"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait() == 0, err
    assert "Broken pipe" not in err and "Traceback" not in err


# -- segment: probabilities, coloured labels, tiling ---------------------------------------


def test_probabilities_and_coloured_labels_of_a_bundled_sample(sample_dir, tmp_path, capsys):
    import tifffile

    shutil.copy(sample_dir / "fluorescence.png", tmp_path / "cells.png")
    out = tmp_path / "out"
    assert main(["segment", str(tmp_path / "cells.png"), "--out", str(out), "--overlay",
                 "--save-probabilities", "--colored-labels", "--tile-size", "256",
                 "--overlap", "40", "--no-progress"]) == 0
    labels = read_labels(out / "cells_labels.tif")
    probs = tifffile.imread(out / "cells_probabilities.tif")
    colored = read_image(out / "cells_colored.png")
    assert labels.shape == (260, 347) and labels.max() > 50
    assert probs.shape == (260, 347, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=2), 1.0, atol=1e-4)  # softmax per pixel
    # the nuclei are where the head says "not background"
    foreground, nuclei = probs.argmax(axis=2) > 0, labels > 0
    assert (foreground & nuclei).sum() / (foreground | nuclei).sum() > 0.8
    assert colored.shape == (260, 347, 3) and colored.dtype == np.uint8
    assert not colored[~nuclei].any() and colored[nuclei].any(axis=1).all()
    assert (out / "cells_overlay.png").is_file()
    assert not list(out.glob(".*")), "temporary files left behind"
    assert "segmented 1, failed 0" in capsys.readouterr().err


def test_new_outputs_are_kept_unless_overwrite(model_dir, inputs, tmp_path, capsys,
                                               monkeypatch):
    import tifffile

    from nuclib import zoo
    from nuclib.distributed import write_probabilities
    from nuclib.viz import colorize_labels

    (inputs / "broken.png").unlink()
    out = tmp_path / "out"
    command = ["segment", str(inputs), "--model", str(model_dir), "--out", str(out),
               "--no-progress"]
    assert main(command) == 0
    labels = {i: read_labels(out / f"img{i}_labels.tif") for i in range(3)}
    # Added later: probabilities need the model, the existing labels are kept.
    sentinel = np.full((32, 40, 3), 0.5, np.float32)
    write_probabilities(out / "img0_probabilities.tif", sentinel)
    assert main(command + ["--save-probabilities"]) == 0
    err = capsys.readouterr().err
    assert "predicted 2 probability map(s) for labels already in" in err
    assert "(3 labels file(s), 1 probability map(s);" in err
    np.testing.assert_array_equal(tifffile.imread(out / "img0_probabilities.tif"), sentinel)
    probs = tifffile.imread(out / "img1_probabilities.tif")
    assert probs.shape == (32, 40, 3) and probs.dtype == np.float32
    for i in range(3):
        np.testing.assert_array_equal(read_labels(out / f"img{i}_labels.tif"), labels[i])

    # Coloured labels are drawn from the labels on disk: no model needed.
    write_image(out / "img2_colored.png", np.zeros((32, 40, 3), np.uint8))

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded although only drawings were missing")

    monkeypatch.setattr(zoo, "load_pretrained", no_model)
    assert main(command + ["--colored-labels", "--save-probabilities"]) == 0
    err = capsys.readouterr().err
    assert "drew 2 coloured label image(s) from labels already in" in err
    assert "1 coloured label image(s); use --overwrite" in err
    np.testing.assert_array_equal(read_image(out / "img1_colored.png"),
                                  colorize_labels(labels[1]))
    assert not read_image(out / "img2_colored.png").any()
    monkeypatch.undo()
    assert main(command + ["--colored-labels", "--save-probabilities", "--overwrite"]) == 0
    assert read_image(out / "img2_colored.png").shape == (32, 40, 3)
    assert not np.array_equal(tifffile.imread(out / "img0_probabilities.tif"), sentinel)


@pytest.mark.parametrize("argv, message", [
    (["--tile-size", "0"], "expected a positive tile side (a whole number of pixels >= 1)"),
    (["--tile-size", "12.5"], "expected a positive tile side"),
    (["--overlap", "-1"], "expected an overlap (a whole number of pixels >= 0), got '-1'"),
    (["--tile-size", "64", "--overlap", "32"],
     "--overlap 32 leaves no pixels of their own to tiles of --tile-size 64"),
])
def test_bad_tiling_is_a_usage_error(model_dir, inputs, tmp_path, argv, message, capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_:
        main(["segment", str(inputs), "--model", str(model_dir), "--out", str(out), *argv])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("argv, message", [
    (["--tile-size", "30"], "must be a positive multiple of 4 (the model's total stride)"),
    (["--tile-size", "16"], "is too small for overlap"),  # the receptive field needs more
])
def test_tiling_the_model_cannot_use_stops_before_any_image(model_dir, inputs, tmp_path, argv,
                                                            message, capsys):
    out = tmp_path / "out"
    assert main(["segment", str(inputs), "--model", str(model_dir), "--out", str(out),
                 "--no-progress", *argv]) == 2
    err = capsys.readouterr().err
    assert "--tile-size/--overlap for model 'cli-test'" in err and message in err
    assert not out.exists()


def test_tiling_options_reach_the_network(model_dir, inputs, tmp_path, monkeypatch):
    from nuclib.task import SegmentationTask

    (inputs / "broken.png").unlink()
    seen = []
    original = SegmentationTask.predict_scaled

    def spy(self, image, **kwargs):
        seen.append({k: kwargs.get(k) for k in ("tile_size", "overlap")})
        return original(self, image, **kwargs)

    monkeypatch.setattr(SegmentationTask, "predict_scaled", spy)
    assert main(["segment", str(inputs), "--model", str(model_dir), "--out",
                 str(tmp_path / "out"), "--tile-size", "32", "--overlap", "4",
                 "--no-progress"]) == 0
    assert seen == [{"tile_size": 32, "overlap": 4}] * 3


def test_segment_files_writes_the_new_outputs_as_the_workers_do(model_dir, inputs, tmp_path):
    import tifffile

    from nuclib.distributed import segment_files
    from nuclib.viz import colorize_labels

    out = tmp_path / "out"
    report = segment_files(inputs, out, model=str(model_dir), progress=False,
                           probabilities=True, colored=True, tile_size=32, overlap=4)
    assert report.counts == {"done": 3, "failed": 1, "skipped": 0}
    done = [r for r in report.results if r.status == "done"]
    for record in done:
        labels = read_labels(record.labels)
        assert tifffile.imread(record.probabilities).shape == (32, 40, 3)
        np.testing.assert_array_equal(read_image(record.colored), colorize_labels(labels))
    assert {p.name for p in out.glob("img0_*")} == {
        "img0_labels.tif", "img0_probabilities.tif", "img0_colored.png"}
    # a second run keeps everything; a deleted probability map is predicted again
    (out / "img1_probabilities.tif").unlink()
    before = read_labels(out / "img1_labels.tif")
    again = segment_files(inputs, out, model=str(model_dir), progress=False,
                          probabilities=True, colored=True)
    assert again.segmented == 0
    assert (out / "img1_probabilities.tif").is_file()
    np.testing.assert_array_equal(read_labels(out / "img1_labels.tif"), before)
    with pytest.raises(ValueError, match="tiling overlap 20 leaves no pixels"):
        segment_files(inputs, tmp_path / "o2", model=str(model_dir), progress=False,
                      tile_size=32, overlap=20)


def test_the_dask_route_sends_the_new_options_to_the_workers(inputs, tmp_path, monkeypatch,
                                                            capsys):
    # The workers run segment_files' own code, tested above without a cluster (and with
    # one in test_distributed.py); here: that the command line hands every option over.
    pytest.importorskip("distributed")
    from nuclib import distributed

    calls = []

    class NoCluster:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def fake_segment_files(files, out, **kwargs):
        calls.append(kwargs)
        return distributed.FilesReport([], tmp_path / distributed.MANIFEST_NAME)

    monkeypatch.setattr(distributed, "local_client", lambda workers: NoCluster())
    monkeypatch.setattr(distributed, "segment_files", fake_segment_files)
    assert main(["segment", str(inputs), "--out", str(tmp_path / "out"), "--workers", "1",
                 "--save-probabilities", "--colored-labels", "--tile-size", "32",
                 "--overlap", "4", "--no-progress"]) == 0
    (kwargs,) = calls
    assert (kwargs["probabilities"], kwargs["colored"]) == (True, True)
    assert (kwargs["tile_size"], kwargs["overlap"]) == (32, 4)
    assert "segmented 0" in capsys.readouterr().err
