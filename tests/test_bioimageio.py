"""bioimage.io packages: every zoo model's and a freshly trained one's, run by bioimageio.core."""

from __future__ import annotations

import shutil
import zipfile

import numpy as np
import pytest
import yaml
from bioimageio.core import test_model as bioimageio_test

import nuclib
from nuclib.bioimageio import WEIGHT_FORMATS, export_bioimageio, package_path, tile_sizes
from nuclib.cli import main
from nuclib.samples import sample_image


@pytest.fixture(autouse=True)
def keep_the_keras_backend(monkeypatch):
    """bioimageio.core's Keras runner sets ``os.environ["KERAS_BACKEND"]`` (to "torch" by
    default) when it loads: put the suite's back afterwards, for the subprocesses later
    tests start."""
    import keras

    monkeypatch.setenv("KERAS_BACKEND", keras.backend.backend())


def rdf(path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return yaml.safe_load(zf.read("rdf.yaml"))


def assert_passes_every_format(path):
    """bioimageio.core's own test: the test input through each weight format == the output.

    Its TensorFlow runner unzips the weights into the working folder: callers chdir to
    a tmp_path.
    """
    for weight_format in WEIGHT_FORMATS:
        summary = bioimageio_test(path, weight_format=weight_format)
        failed = [f"{d.name}: {[e.msg for e in d.errors]}" for d in summary.details
                  if d.status != "passed"]
        assert summary.status == "passed", f"{weight_format}: {failed}"
        ran = [d.name for d in summary.details if weight_format in d.name]
        assert any("Reproduce test outputs" in name for name in ran), ran


@pytest.mark.parametrize("name", [m["name"] for m in nuclib.list_pretrained()])
def test_every_zoo_models_package_passes_bioimageio_core(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    segmenter = nuclib.load_pretrained(name)
    path = export_bioimageio(segmenter, tmp_path / name)
    assert path == tmp_path / f"{name}.zip" and path.is_file()
    assert_passes_every_format(path)

    description = rdf(path)
    assert description["format_version"].startswith("0.5.")
    assert sorted(description["weights"]) == sorted(WEIGHT_FORMATS)
    assert description["weights"]["onnx"]["parent"] == "keras_v3"
    (inp,), (out,) = description["inputs"], description["outputs"]
    assert [a.get("id", a["type"]) for a in inp["axes"]] == ["batch", "y", "x", "channel"]
    assert [p["id"] for p in inp["preprocessing"] if p["id"] != "ensure_dtype"] == [
        "scale_range", "clip"]
    scale = next(p for p in inp["preprocessing"] if p["id"] == "scale_range")["kwargs"]
    norm = segmenter.config["normalize"]
    assert (scale["min_percentile"], scale["max_percentile"]) == (norm["low"], norm["high"])
    from nuclib.models.utils import required_multiple
    from nuclib.postprocess.tiling import receptive_field_radius

    halo = receptive_field_radius(segmenter.model)
    assert out["axes"][1]["halo"] == out["axes"][2]["halo"] == halo
    minimum, step = tile_sizes(required_multiple(segmenter.model), halo)
    assert inp["axes"][1]["size"] == {"min": minimum, "step": step} and minimum > 2 * halo
    names = {"three_class": ["background", "interior", "boundary"], "binary": ["foreground"]}
    assert out["axes"][3]["channel_names"] == names[segmenter.head]
    # Trained on DSB2018: its data, licence and citation.
    assert description["license"] == "CC0-1.0"
    assert "BBBC038" in description["training_data"]["name"]
    assert any("Data Science Bowl" in c["text"] for c in description["cite"])
    assert description["config"]["nuclib"]["postprocess"] == segmenter.config["postprocess"]
    with zipfile.ZipFile(path) as zf:
        readme = zf.read("README.md").decode()
        test_input = np.load(zf.open("test_input.npy"))
        test_output = np.load(zf.open("test_output.npy"))
        assert {"cover.png", "nuclib.json"} <= set(zf.namelist())
    assert "## Validation" in readme and "KINDS[" in readme  # how nuclib finds the nuclei
    # The test output is nuclib's own prediction of that tile (its declared normalization).
    side = test_input.shape[1]
    assert test_input.shape == (1, side, side, 1) and side >= minimum and side % step == 0
    from nuclib.data.normalize import percentile_normalize

    x = percentile_normalize(test_input[0], norm["low"], norm["high"], clip=True)
    expected = segmenter.inferencer(progress=False).predict(x)
    np.testing.assert_allclose(test_output[0], expected, atol=1e-4)
    assert segmenter.postprocess(test_output[0]).max() > 5  # nuclei in the test tile


@pytest.fixture(scope="module")
def own_model(dsb_root, tmp_path_factory):
    """A model trained here on "my_data" (a few DSB2018 images copied under another name)."""
    from nuclib.train import train

    root = tmp_path_factory.mktemp("own")
    for split, n in (("train", 3), ("val", 2)):
        for kind in ("images", "labels"):
            (root / "my_data" / split / kind).mkdir(parents=True)
        for image in sorted((dsb_root / split / "images").glob("*.png"))[:n]:
            shutil.copy(image, root / "my_data" / split / "images")
            shutil.copy(dsb_root / split / "labels" / image.name,
                        root / "my_data" / split / "labels")
    result = train({"name": "my-nuclei", "seed": 1,
                    "model": {"factory": "unet", "args": {"depth": 2, "filters": 4}},
                    "data": {"train": str(root / "my_data" / "train"),
                             "val": str(root / "my_data" / "val"), "crop_size": 64,
                             "batch_size": 2},
                    "train": {"epochs": 1, "steps_per_epoch": 2, "progress": False},
                    "output": {"dir": str(root / "run")}})
    return nuclib.load_pretrained(result["model_dir"])


def test_a_trained_models_package_passes_and_claims_no_zoo_data(own_model, tmp_path,
                                                                 monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert "DSB2018" not in str(own_model.record["training"]["data"])
    path = own_model.export_bioimageio(tmp_path / "mine.zip")
    assert_passes_every_format(path)
    description = rdf(path)
    assert description.get("training_data") is None, description.get("training_data")
    assert description.get("license") is None, description.get("license")
    assert not any("Data Science Bowl" in c["text"] for c in description["cite"])
    assert "dsb2018" not in description["tags"]
    assert [a["name"] for a in description["authors"]] == ["unknown"]
    with zipfile.ZipFile(path) as zf:
        readme = zf.read("README.md").decode()
    assert "DSB2018 stage" not in readme and "my_data" in readme
    # Its own licence and authors when given.
    again = own_model.export_bioimageio(tmp_path / "mine-mit", license="MIT",
                                        authors=[{"name": "A. Person", "affiliation": "Lab"}])
    assert rdf(again)["license"] == "MIT"
    assert rdf(again)["authors"] == [{"name": "A. Person", "affiliation": "Lab"}]


def test_an_inverted_package_for_dark_nuclei(own_model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = export_bioimageio(own_model, tmp_path / "dark.zip", invert=True,
                             weight_formats=("onnx",),
                             test_image=sample_image("brightfield")[:300, :300])
    description = rdf(path)
    steps = [p["id"] for p in description["inputs"][0]["preprocessing"]]
    assert steps[-2:] == ["scale_linear", "ensure_dtype"]
    assert sorted(description["weights"]) == ["keras_v3", "onnx"]  # Keras: the parent
    summary = bioimageio_test(path, weight_format="onnx")
    assert summary.status == "passed"


def test_outputs_are_kept_unless_overwrite(own_model, tmp_path, capsys):
    path = tmp_path / "kept.zip"
    path.write_text("mine")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_bioimageio(own_model, path, weight_formats=("onnx",))
    assert path.read_text() == "mine"
    with pytest.raises(ValueError, match="unknown weight formats"):
        export_bioimageio(own_model, tmp_path / "x.zip", weight_formats=("torchscript",))
    # The command line: --overwrite replaces it; without, a usage error names the flag.
    model_dir = str(own_model.directory)
    with pytest.raises(SystemExit) as exit_:
        main(["export", model_dir, "--format", "bioimageio", "--out", str(path)])
    assert exit_.value.code == 2 and "--overwrite" in capsys.readouterr().err
    assert main(["export", model_dir, "--format", "bioimageio", "--out", str(path),
                 "--overwrite"]) == 0
    assert "bioimage.io package" in capsys.readouterr().out
    assert rdf(path)["name"] == "my-nuclei"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftovers
    assert package_path("a/b") == package_path("a/b.zip")
