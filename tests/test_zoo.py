"""The zoo: model directories, verified loading, and the Hub path end to end."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from hub_server import COMMIT, FakeHub
from nuclib import zoo
from nuclib.segmenter import Segmenter
from nuclib import model_dir
from nuclib.zoo.registry import PretrainedEntry


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from nuclib.models import unet

    model = unet(depth=2, filters=4, name="tiny")
    directory = tmp_path_factory.mktemp("models") / "tiny"
    Segmenter(model, {"name": "tiny", "tiling": {"tile_size": 64}}).save(directory)
    return directory


@pytest.fixture
def image(rng):
    return (rng.random((40, 52)) * 255).astype(np.uint8)


@pytest.fixture
def registered(tiny_dir, monkeypatch):
    """A registry with one Hub-only entry pinned to the tiny model's hashes."""
    files = {name: zoo.sha256(tiny_dir / name)
             for name in (*model_dir.KERAS_FILES, "nuclib.json")}
    entry = PretrainedEntry(name="tiny-test", description="a tiny test model",
                            repo_id="nuclib-test/tiny", revision=COMMIT, files=files,
                            aliases=("tiny-alias",))
    from nuclib.zoo import registry

    monkeypatch.setattr(registry, "load_registry", lambda: {"tiny-test": entry})
    return entry


@pytest.fixture
def hub_env(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return tmp_path


def test_saved_directory_has_the_hub_layout(tiny_dir):
    names = sorted(p.name for p in tiny_dir.iterdir())
    assert names == ["README.md", "config.json", "metadata.json", "model.weights.h5",
                     "nuclib.json", "record.json"]
    config = json.loads((tiny_dir / "nuclib.json").read_text())
    assert config["name"] == "tiny" and config["head"] == "three_class"
    assert config["format_version"] == 2
    assert set(config["files"]) == {*model_dir.KERAS_FILES, "record.json"}
    assert (tiny_dir / "README.md").read_text().startswith("---\nlibrary_name: keras\n")


def test_local_directory_round_trip(tiny_dir, image):
    from nuclib.model_dir import load_model_dir

    model, _ = load_model_dir(tiny_dir)
    seg = zoo.load_pretrained(tiny_dir)
    again = Segmenter(model, seg.config)
    np.testing.assert_array_equal(seg.predict(image), again.predict(image))
    assert seg.segment(image).dtype == np.uint32


def test_save_refuses_to_overwrite(tiny_dir):
    seg = zoo.load_pretrained(tiny_dir)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        seg.save(tiny_dir)


def test_hub_download_then_offline_cache(registered, tiny_dir, hub_env, monkeypatch, image):
    with FakeHub({"nuclib-test/tiny": tiny_dir}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        seg = zoo.load_pretrained("tiny-test", source="hub")
        fetched = [p for m, p in hub.requests if m == "GET" and "/resolve/" in p]
        assert {p.rsplit("/", 1)[1] for p in fetched} == set(registered.files)
        assert all(f"/resolve/{COMMIT}/" in p for p in fetched), "pinned revision not used"
        expected = seg.predict(image)

        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        before = len(hub.requests)
        again = zoo.load_pretrained("tiny-alias", source="hub")
        assert len(hub.requests) == before, "offline load must not touch the network"
    np.testing.assert_array_equal(again.predict(image), expected)


def test_hf_url_loads_any_repo_in_the_layout(tiny_dir, hub_env, monkeypatch):
    with FakeHub({"someone/tiny": tiny_dir}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        seg = zoo.load_pretrained("hf://someone/tiny")
    assert seg.name == "tiny"


def test_tampered_download_raises_and_loads_nothing(registered, tiny_dir, hub_env, tmp_path,
                                                    monkeypatch):
    bad = tmp_path / "tampered"
    shutil.copytree(tiny_dir, bad)
    weights = bad / "model.weights.h5"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF
    weights.write_bytes(bytes(data))

    def must_not_load(*args, **kwargs):
        raise AssertionError("Keras was asked to load a file that failed its checksum")

    monkeypatch.setattr(model_dir, "load_keras_model", must_not_load)
    with FakeHub({"nuclib-test/tiny": bad}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        with pytest.raises(zoo.ChecksumError, match="model.weights.h5"):
            zoo.load_pretrained("tiny-test", source="hub")


def test_local_directory_with_modified_file_is_rejected(tiny_dir, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_dir, bad)
    (bad / "config.json").write_text((bad / "config.json").read_text() + " ")
    with pytest.raises(zoo.ChecksumError, match="config.json"):
        zoo.load_pretrained(bad)


def test_offline_without_cache_says_what_to_do(registered, hub_env, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="HF_HUB_OFFLINE"):
        zoo.load_pretrained("tiny-test", source="hub")


def test_unknown_name_lists_known_ones(registered):
    with pytest.raises(KeyError, match="tiny-test"):
        zoo.load_pretrained("no-such-model")


def test_unknown_repo_on_the_hub(hub_env, tiny_dir, monkeypatch):
    with FakeHub({"someone/tiny": tiny_dir}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        with pytest.raises(RuntimeError, match="nobody/nothing"):
            zoo.load_pretrained("hf://nobody/nothing")


def test_bad_source_and_missing_files(tiny_dir, tmp_path):
    with pytest.raises(ValueError, match="source"):
        zoo.load_pretrained("dsb-3class", source="ftp")
    partial = tmp_path / "partial"
    shutil.copytree(tiny_dir, partial)
    (partial / "model.weights.h5").unlink()
    with pytest.raises(FileNotFoundError, match="model.weights.h5"):
        zoo.load_pretrained(partial)


def test_list_pretrained_describes_registered_models(registered):
    (item,) = zoo.list_pretrained()
    assert item["name"] == "tiny-test" and item["description"] == "a tiny test model"
    assert item["aliases"] == ["tiny-alias"] and item["bundled"] is False


def test_model_compiled_with_nuclib_metrics_loads(tmp_path):
    """A model directory whose config names nuclib's Keras metrics loads in a fresh registry."""
    from nuclib.losses import WeightedCategoricalCrossentropy
    from nuclib.metrics import DiceCoefficient
    from nuclib.models import unet
    from nuclib.model_dir import write_model_dir

    model = unet(depth=2, filters=4, name="compiled")
    model.compile(optimizer="adam", loss=WeightedCategoricalCrossentropy(),
                  metrics=[DiceCoefficient()])
    write_model_dir(model, {"name": "compiled"}, tmp_path / "m")
    assert zoo.load_pretrained(tmp_path / "m").name == "compiled"


def _run_record(run, name, epochs, seconds, fine_tuned_from=None, widen=False):
    """A ``nuclib train`` run folder as ``previous_stage`` reads it."""
    import json

    run.mkdir(parents=True)
    (run / "recipe.json").write_text(json.dumps(
        {"name": name, "train": {"steps_per_epoch": 100, "widen": widen}}))
    (run / "history.json").write_text(json.dumps({"history": {"loss": [1.0] * epochs},
                                                  "train_seconds": seconds}))
    if fine_tuned_from:
        (run / "model").mkdir()
        (run / "model" / "nuclib.json").write_text(json.dumps({"format_version": 2}))
        (run / "model" / "record.json").write_text(
            json.dumps({"training": {"fine_tuned_from": fine_tuned_from}}))
    return run / "best.keras"


def test_model_card_of_a_two_stage_model_trained_at_one_nucleus_size(tmp_path):
    from nuclib.model_card import model_card
    from nuclib.train.finalize import previous_stage

    stage1 = previous_stage(_run_record(tmp_path / "runs" / "stage1", "m-stage1", 40, 4200.0))
    assert stage1 == {"recipe_file": "recipes/m-stage1.toml", "epochs": 40,
                      "steps_per_epoch": 100, "seconds": 4200.0}
    card = model_card({"name": "m", "head": "three_class", "diameter": 20.0,
                       "training": {"recipe_file": "recipes/m.toml", "epochs": 45,
                                    "steps_per_epoch": 100, "seconds": 3900.0,
                                    "fine_tuned_from": stage1},
                       "speed": "2.0 s per megapixel.", "notes": ["Stage 1 had a bug."]})
    assert "- stage 1: `recipes/m-stage1.toml`, 40 epochs x 100 steps, 70 minutes" in card
    assert "- stage 2, fine-tuned from stage 1: `recipes/m.toml`, 45 epochs x 100 steps, " \
           "65 minutes" in card
    assert "`nuclib train recipes/m-stage1.toml` then `nuclib train recipes/m.toml`" in card
    assert "zoomed to 20 pixels across" in card
    assert "## Speed\n\n2.0 s per megapixel." in card
    assert "- Stage 1 had a bug." in card
    assert previous_stage("dsb-3class") == {"model": "dsb-3class"}


def test_model_card_of_a_three_stage_model_lists_every_stage(tmp_path):
    from nuclib.model_card import model_card, training_stages
    from nuclib.train.finalize import previous_stage

    first = previous_stage(_run_record(tmp_path / "s1", "m-stage1", 40, 4200.0))
    # stage 2's finalized model records stage 1, so stage 3 sees the whole chain
    second = previous_stage(_run_record(tmp_path / "s2", "m-stage2", 36, 4920.0, first))
    assert second["fine_tuned_from"] == first
    training = {"recipe_file": "recipes/m.toml", "epochs": 26, "steps_per_epoch": 100,
                "seconds": 3000.0, "fine_tuned_from": second}
    assert [s["recipe_file"] for s in training_stages(training)] == [
        "recipes/m-stage1.toml", "recipes/m-stage2.toml", "recipes/m.toml"]
    card = model_card({"name": "m", "head": "three_class", "training": training})
    assert "- stage 1: `recipes/m-stage1.toml`, 40 epochs x 100 steps, 70 minutes" in card
    assert "- stage 2, fine-tuned from stage 1: `recipes/m-stage2.toml`, 36 epochs" in card
    assert "- stage 3, fine-tuned from stage 2: `recipes/m.toml`, 26 epochs x 100 steps, " \
           "50 minutes" in card
    assert ("`nuclib train recipes/m-stage1.toml` then `nuclib train recipes/m-stage2.toml` "
            "then `nuclib train recipes/m.toml`") in card
    # a chain that starts from a zoo model says so
    zoo_start = dict(first, fine_tuned_from={"model": "dsb-3class"})
    card = model_card({"name": "m", "head": "three_class",
                       "training": dict(training, fine_tuned_from=zoo_start)})
    assert "- stage 1 fine-tuned from `dsb-3class`" in card
    assert training_stages({}) == []
    # a stage that widened its start says so
    wide = previous_stage(_run_record(tmp_path / "s3", "m-wide", 12, 3300.0, second,
                                      widen=True))
    assert wide["widened"] is True and "widened" not in second
    card = model_card({"name": "m", "head": "three_class",
                       "training": dict(training, fine_tuned_from=wide)})
    assert "- stage 3, widened (Net2WiderNet) and fine-tuned from stage 2: " \
           "`recipes/m-wide.toml`, 12 epochs" in card
    assert "- stage 4, fine-tuned from stage 3: `recipes/m.toml`" in card
    # ... also when it is the only stage, widened from a zoo model
    card = model_card({"name": "m", "head": "three_class",
                       "training": {"recipe_file": "recipes/m.toml", "widened": True,
                                    "fine_tuned_from": {"model": "dsb-3class"}}})
    assert "- widened (Net2WiderNet) and fine-tuned from `dsb-3class`" in card


def test_unknown_name_suggests_the_closest_and_marks_aliases(registered):
    with pytest.raises(KeyError) as err:
        zoo.load_pretrained("tiny-tset")
    message = err.value.args[0]
    assert "unknown pretrained model 'tiny-tset'; did you mean 'tiny-test'?" in message
    assert "Known names: tiny-test (alias: tiny-alias)." in message
    with pytest.raises(KeyError, match="did you mean 'tiny-alias' \\(an alias of 'tiny-test'\\)"):
        zoo.load_pretrained("tiny-alais")
    with pytest.raises(KeyError) as err:
        zoo.load_pretrained("qqq")
    assert "did you mean" not in err.value.args[0]


@pytest.mark.parametrize("text", ["runs/my-modle/model", "./my-model", "~/no-such-nuclib-model",
                                  "model.weights.h5", "best.keras"])
def test_a_path_like_model_that_does_not_exist_is_a_missing_directory(registered, text):
    with pytest.raises(FileNotFoundError, match=f"model directory '{text}' does not exist"):
        zoo.load_pretrained(text)


def test_a_mistyped_model_directory_gets_the_close_existing_one(tiny_dir, tmp_path):
    shutil.copytree(tiny_dir, tmp_path / "runs" / "my-model" / "model")
    wrong = tmp_path / "runs" / "my-modle" / "model"
    with pytest.raises(FileNotFoundError) as err:
        zoo.load_pretrained(wrong)
    assert str(err.value) == (
        f"model directory '{wrong}' does not exist (no '{tmp_path / 'runs' / 'my-modle'}'; "
        f"did you mean '{tmp_path / 'runs' / 'my-model' / 'model'}'?); expected a model "
        "directory (config.json, metadata.json, model.weights.h5, nuclib.json, record.json), a zoo name "
        "or 'hf://owner/repo'")
    with pytest.raises(FileNotFoundError, match="is a file, not a directory; pass its folder"):
        zoo.load_pretrained(tmp_path / "runs" / "my-model" / "model" / "nuclib.json")
    assert zoo.load_pretrained(tmp_path / "runs" / "my-model" / "model").name == "tiny"
