"""The training recipe, end to end on a few real DSB2018 images."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nuclib.cli import main
from nuclib.train import load_recipe, train

# Two 256 x 256 fluorescence validation images (20 and 56 nuclei).
SMALL_VAL_IMAGES = (
    "20468e8779c43e089dc0ff30f25e6cf3872d5aa6a0fdad6f8aca382da43e8582",
    "3852c7e45bd885b9537e276861ab50b99bb42f0f8e717d2f88174c62862ca3ff",
)


def tiny_recipe(dsb_root, tmp_path, **overrides):
    recipe = {
        "name": "tiny-run", "seed": 3,
        "model": {"factory": "unet", "args": {"depth": 2, "filters": 4}},
        "data": {"train": str(dsb_root / "train"), "val": str(dsb_root / "val"),
                 "crop_size": 64, "batch_size": 2, "max_images": 3},
        "train": {"epochs": 2, "steps_per_epoch": 2, "progress": False},
        "output": {"dir": str(tmp_path / "run")},
    }
    for section, values in overrides.items():
        recipe.setdefault(section, {}).update(values)
    return recipe


def test_train_writes_a_loadable_evaluated_model(dsb_root, tmp_path, sample_dir):
    import nuclib

    recipe = tiny_recipe(dsb_root, tmp_path, output={
        "sample_image": str(sample_dir / "fluorescence.png")})
    result = train(recipe)
    run = tmp_path / "run"
    assert (run / "log.csv").read_text().count("\n") == 3  # header + 2 epochs
    assert sorted(p.name for p in (run / "epochs").iterdir()) == ["epoch_001.png",
                                                                   "epoch_002.png"]
    config = json.loads((run / "model" / "nuclib.json").read_text())
    record = json.loads((run / "model" / "record.json").read_text())
    assert record["scores"]["n_images"] == 3 and "scores" not in config
    assert set(config["postprocess"]) >= {"seed_threshold", "foreground_threshold"}
    assert result["scores"]["ap50"] == record["scores"]["ap50"]
    seg = nuclib.load_pretrained(run / "model")
    assert seg.segment(np.zeros((40, 40), np.uint8)).shape == (40, 40)


def test_same_seed_same_first_epoch(dsb_root, tmp_path):
    # With the default augmentation: seeded pipelines augment one batch at a time, so
    # the Keras layers' shared random state is drawn in the same order on every run.
    losses = []
    for i in range(2):
        recipe = tiny_recipe(dsb_root, tmp_path / str(i), train={"epochs": 1},
                             data={"augment": "default", "sampling": "nucleus"},
                             output={"finalize": False})
        losses.append(train(recipe)["history"]["loss"][0])
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)


def test_fine_tuning_starts_from_the_given_model(dsb_root, tmp_path):
    import keras

    first = train(tiny_recipe(dsb_root, tmp_path / "a", output={"finalize": False}))
    tuned = train(tiny_recipe(dsb_root, tmp_path / "b", output={"finalize": False},
                              train={"fine_tune_from": first["checkpoint"], "epochs": 1}))
    assert tuned["history"]["loss"][0] < first["history"]["loss"][0]
    # Widened to twice the filters, it starts from what the narrow model learned, too.
    wide = train(tiny_recipe(dsb_root, tmp_path / "c", output={"finalize": False},
                             model={"args": {"depth": 2, "filters": 8}},
                             train={"fine_tune_from": first["checkpoint"], "widen": True,
                                    "epochs": 1}))
    assert wide["history"]["loss"][0] < first["history"]["loss"][0]
    model = keras.saving.load_model(wide["checkpoint"], compile=False)
    assert model.count_params() > 3 * keras.saving.load_model(first["checkpoint"]).count_params()


def test_widening_needs_a_model_to_widen_and_a_wider_recipe_model():
    from nuclib.models import unet
    from nuclib.train.fit import _widened

    with pytest.raises(ValueError, match="widen = true needs \\[train\\] fine_tune_from"):
        load_recipe({"data": {"train": "x"}, "train": {"widen": True}})
    with pytest.raises(ValueError, match="widen must be true or false, got 'yes'"):
        load_recipe({"data": {"train": "x"}, "train": {"fine_tune_from": "m", "widen": "yes"}})
    recipe = load_recipe({"data": {"train": "x"}, "model": {"args": {"depth": 3, "filters": 8}},
                          "train": {"fine_tune_from": "start.keras", "widen": True}})
    with pytest.raises(ValueError, match="widen: fine_tune_from '.*start.keras' cannot be "
                                         "widened into the recipe's \\[model\\]"):
        _widened(unet(depth=2, filters=4), recipe)


def test_cli_train_reads_a_toml_recipe(dsb_root, tmp_path, capsys):
    toml = tmp_path / "recipe.toml"
    toml.write_text(f"""
name = "cli-run"
[model]
factory = "unet"
args = {{ depth = 2, filters = 4 }}
[data]
train = "{dsb_root / 'train'}"
crop_size = 64
batch_size = 2
max_images = 2
[train]
epochs = 1
steps_per_epoch = 1
progress = false
[output]
dir = "out"
""")
    assert main(["train", str(toml)]) == 0
    checkpoint = tmp_path / "out" / "best.keras"
    assert checkpoint.is_file(), "output dir is relative to the recipe"
    # The file as given: what a model card's "retrain with nuclib train ..." names.
    assert json.loads((tmp_path / "out" / "history.json").read_text())["recipe_file"] == str(toml)
    # After Keras' epoch lines, a short summary rather than a page of JSON; without
    # [data] val there is no model directory.
    out = capsys.readouterr().out
    assert "{" not in out
    lines = out.splitlines()[-3:]
    assert lines[0].startswith("trained in ")
    assert f"checkpoint {checkpoint} (no model directory" in lines[0]
    assert lines[1] == f'load it with: keras.saving.load_model("{checkpoint}")'
    assert lines[2].startswith(f"run folder: {tmp_path / 'out'} (log.csv")


def test_cli_train_ends_with_a_summary_and_prints_json_on_request(monkeypatch, capsys):
    import nuclib.train

    result = {"run_dir": "runs/x", "checkpoint": "runs/x/best.keras", "history": {"loss": [1.0]},
              "train_seconds": 120.0, "model_dir": "runs/x/model",
              "scores": {"ap50": 0.8, "per_image": [{"name": "a", "ap50": 0.8}],
                         "groups": {"all": {"ap50": 0.8}, "fluorescence": {"ap50": 0.85},
                                    "histology": {"ap50": 0.7}}}}
    monkeypatch.setattr(nuclib.train, "train", lambda recipe, output_dir=None: result)
    assert main(["train", "recipe.toml"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "trained in 2.0 min; model directory: runs/x/model",
        "validation AP@0.5: 0.800 overall, fluorescence 0.850, histology 0.700",
        'load it with: nuclib.load_pretrained("runs/x/model")',
        "run folder: runs/x (log.csv, history.json); the full result: nuclib train --json"]
    assert main(["train", "recipe.toml", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {k: v for k, v in result.items()
                                                   if k != "history"}


def test_training_with_validation_does_not_say_the_input_ran_out(dsb_root, tmp_path, recwarn):
    # The finite validation set used to end with a StopIteration Keras took for
    # running out of data, once per epoch, although every step ran.
    result = train(tiny_recipe(dsb_root, tmp_path, output={"finalize": False}))
    assert len(result["history"]["val_loss"]) == 2
    messages = [str(w.message) for w in recwarn]
    assert not [m for m in messages if "ran out of data" in m or "`shuffle=True`" in m]


@pytest.mark.parametrize("recipe,match", [
    ({"data": {"train": "x"}, "modle": {}}, "unknown recipe section 'modle'"),
    ({"data": {"train": "x", "crop": 3}}, r"unknown keys \['crop'\]"),
    ({"data": {}}, "no \\[data\\] train"),
    ({"data": {"train": "x", "augment": "heavy"}}, "unknown \\[data\\] augment 'heavy'"),
])
def test_recipe_typos_are_errors(recipe, match):
    with pytest.raises(ValueError, match=match):
        load_recipe(recipe)


def test_unknown_factory_and_loss(dsb_root, tmp_path):
    from nuclib.train import build_loss, build_model

    with pytest.raises(ValueError, match="unknown model factory 'vnet'"):
        build_model(load_recipe({"data": {"train": "x"}, "model": {"factory": "vnet"}}))
    with pytest.raises(ValueError, match="expected one of .*BCEDice"):
        build_loss(load_recipe({"data": {"train": "x"}, "loss": {"name": "dice_loss"}}))


def test_training_data_is_zoomed_to_the_recipe_diameter(dsb_root, tmp_path):
    from nuclib.data import folder_pairs, read_labels
    from nuclib.data.scale import median_diameter
    from nuclib.train import load_training_data

    pairs = folder_pairs(dsb_root / "train")[:4]
    native = [median_diameter(read_labels(lab)) for _, lab in pairs]
    recipe = load_recipe({"data": {"train": str(dsb_root / "train"), "diameter": 20}})
    images, labels = load_training_data(pairs, recipe)
    for image, lab, before in zip(images, labels, native):
        assert image.shape[:2] == lab.shape and image.dtype == np.float32
        # Nearest-neighbour zoom moves the median by at most a few percent.
        assert median_diameter(lab) == pytest.approx(20 if abs(before - 20) > 1 else before,
                                                      rel=0.06)
    assert any(abs(before - 20) > 5 for before in native), "the sample should need zooming"


def test_fine_tune_from_may_name_a_model_directory_or_a_zoo_model(tmp_path):
    from nuclib.models import unet
    from nuclib.segmenter import Segmenter
    from nuclib.train import load_initial_model

    recipe = load_recipe({"data": {"train": "x"}, "train": {"fine_tune_from": "dsb-3class"}})
    assert recipe["train"]["fine_tune_from"] == "dsb-3class", "a zoo name is not a path"
    toml = tmp_path / "recipes" / "r.toml"
    toml.parent.mkdir()
    toml.write_text('[data]\ntrain = "x"\n[train]\nfine_tune_from = "../runs/a/best.keras"\n')
    missing = load_recipe(toml)["train"]["fine_tune_from"]
    assert missing == str(tmp_path / "runs" / "a" / "best.keras"), "paths are recipe-relative"
    with pytest.raises(FileNotFoundError, match="fine_tune_from .*best.keras' does not exist"):
        load_initial_model(missing)
    with pytest.raises(FileNotFoundError, match="fine_tune_from .*nowhere' does not exist"):
        load_initial_model(str(tmp_path / "nowhere"))
    hub = load_recipe({"data": {"train": "x"}, "train": {"fine_tune_from": "hf://o/m"}})
    assert hub["train"]["fine_tune_from"] == "hf://o/m"
    model = unet(depth=2, filters=4)
    Segmenter(model, {"name": "start"}).save(tmp_path / "start")
    loaded = load_initial_model(str(tmp_path / "start"))
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_model_trained_at_one_diameter_remembers_it(dsb_root, tmp_path):
    import shutil

    import nuclib

    # Two 256 x 256 validation images: an untrained model may zoom them 4-fold.
    val = tmp_path / "val"
    for name in ("images", "labels"):
        (val / name).mkdir(parents=True)
    for stem in SMALL_VAL_IMAGES:
        for name in ("images", "labels"):
            shutil.copy(dsb_root / "val" / name / f"{stem}.png", val / name)
    result = train(tiny_recipe(dsb_root, tmp_path, data={"diameter": 16.0, "val": str(val)},
                               train={"epochs": 1}))
    config = json.loads((tmp_path / "run" / "model" / "nuclib.json").read_text())
    record = json.loads((tmp_path / "run" / "model" / "record.json").read_text())
    assert config["diameter"] == 16.0
    assert len(record["scores"]["per_image"]) == 2
    assert result["scores"]["ap50"] == record["scores"]["ap50"]
    seg = nuclib.load_pretrained(tmp_path / "run" / "model")
    assert seg.predict_scaled(np.zeros((40, 40), np.uint8), diameter=8).factor == 2.0


@pytest.fixture
def mixed_policy():
    import keras

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_mixed_precision_fine_tuning_rebuilds_the_model_with_its_weights(mixed_policy):
    # A saved float32 model keeps float32 layers when reloaded; fine-tuning under
    # mixed precision must rebuild it (bfloat16 compute) without losing weights.
    import keras

    from nuclib.models import unet
    from nuclib.train.fit import _rebuilt_under_current_policy

    keras.mixed_precision.set_global_policy("float32")
    initial = unet(input_shape=(None, None, 1), depth=2, filters=4, head="three_class")
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    recipe = load_recipe({"name": "ft", "data": {"train": "x"},
                          "model": {"args": {"depth": 2, "filters": 4}},
                          "train": {"fine_tune_from": "start.keras", "mixed_precision": True}})
    model = _rebuilt_under_current_policy(initial, recipe)
    conv = next(layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
    assert conv.compute_dtype == "bfloat16" and conv.variable_dtype == "float32"
    for a, b in zip(model.get_weights(), initial.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)

    other = load_recipe({"name": "ft", "data": {"train": "x"},
                         "model": {"args": {"depth": 3, "filters": 4}},
                         "train": {"fine_tune_from": "start.keras"}})
    with pytest.raises(ValueError, match="fine_tune_from '.*start.keras' does not match"):
        _rebuilt_under_current_policy(initial, other)


def test_sample_prediction_shows_the_sample_at_the_models_scale(tmp_path):
    from nuclib.data.io import read_image, write_image
    from nuclib.models import unet
    from nuclib.train.fit import _sample_zoom
    from nuclib.train.callbacks import SamplePrediction

    write_image(tmp_path / "sample.png", np.full((40, 50), 100, np.uint8))
    callback = SamplePrediction(tmp_path / "sample.png", tmp_path / "epochs",
                                preprocess=lambda im: im[..., None] / 255.0, zoom=2.0)
    callback.set_model(unet(depth=2, filters=4, head="three_class"))
    callback.on_epoch_end(0)
    # zoomed to 80 x 100, cropped to the depth-2 stride (4): input | probabilities
    assert read_image(tmp_path / "epochs" / "epoch_001.png").shape == (80, 200, 3)
    with pytest.raises(ValueError, match="zoom must be a positive factor"):
        SamplePrediction(tmp_path / "sample.png", tmp_path, preprocess=lambda im: im, zoom=0)

    recipe = {"data": {"train": "t", "diameter": 20.0}, "output": {"sample_diameter": 10.0}}
    assert _sample_zoom(load_recipe(recipe)) == 2.0
    assert _sample_zoom(load_recipe({"data": {"train": "t"},
                                     "output": {"sample_diameter": 10.0}})) == 1.0
    with pytest.raises(ValueError, match="sample_diameter must be the sample image's median"):
        load_recipe({"data": {"train": "t"}, "output": {"sample_diameter": "14 px"}})


def test_finalize_keeps_the_recipes_fixed_postprocess_values(dsb_root, tmp_path):
    from nuclib.postprocess.thresholds import DEFAULT_GRIDS
    from nuclib.train.finalize import finalize_model

    recipe = load_recipe(tiny_recipe(dsb_root, tmp_path, data={"diameter": 20.0},
                                     output={"finalize": False}))
    checkpoint = train(recipe)["checkpoint"]
    recipe["postprocess"] = {"min_size": 5, "seed_split_height": 0.0}
    finalize_model(recipe, checkpoint, tmp_path / "model", progress=False)
    config = json.loads((tmp_path / "model" / "nuclib.json").read_text())
    record = json.loads((tmp_path / "model" / "record.json").read_text())
    assert config["postprocess"]["min_size"] == 5
    assert config["postprocess"]["seed_split_height"] == 0.0
    search = record["training"]["threshold_search"]
    assert search["n_evaluations"] > 2
    assert search["params"]["min_size"] == 5  # searched around, never changed

    # every parameter fixed: nothing to search, the recipe's values are used as given
    recipe["postprocess"] = {k: v[0] for k, v in DEFAULT_GRIDS["three_class"].items()}
    finalize_model(recipe, checkpoint, tmp_path / "fixed", progress=False)
    config = json.loads((tmp_path / "fixed" / "nuclib.json").read_text())
    record = json.loads((tmp_path / "fixed" / "record.json").read_text())
    assert config["postprocess"] == recipe["postprocess"]
    assert record["training"]["threshold_search"]["n_evaluations"] == 0


def test_unknown_postprocess_keys_fail_when_the_recipe_is_loaded():
    with pytest.raises(ValueError, match=r"recipe section \[postprocess\]: seed_treshold: not a "
                                         r"post-processing parameter of three_class_to_labels"):
        load_recipe({"data": {"train": "t"}, "postprocess": {"seed_treshold": 0.4}})
    # values too: a negative size would otherwise fail in finalize, after training
    with pytest.raises(ValueError, match=r"recipe section \[postprocess\]: min_size"):
        load_recipe({"data": {"train": "t"}, "postprocess": {"min_size": -3}})
    binary = load_recipe({"data": {"train": "t", "target": "binary"},
                          "postprocess": {"split_height": 2.0}})
    assert binary["postprocess"] == {"split_height": 2.0}


@pytest.mark.parametrize("head, loss", [("star", "StarLoss"),
                                        ("three_class_distance", "ThreeClassDistanceLoss")])
def test_new_heads_train_from_a_three_class_backbone(dsb_root, tmp_path, head, loss):
    import keras

    import nuclib
    from nuclib.models import unet

    start = unet(depth=2, filters=4, name="start")
    start.save(tmp_path / "start.keras")
    args = {"depth": 2, "filters": 4, "n_rays": 8} if head == "star" else {"depth": 2,
                                                                           "filters": 4}
    recipe = tiny_recipe(dsb_root, tmp_path, model={"args": args},
                         data={"target": head, "max_images": 2},
                         loss={"name": loss},
                         train={"backbone_from": str(tmp_path / "start.keras")})
    result = train(recipe)
    trained = keras.saving.load_model(result["checkpoint"], safe_mode=True)
    assert trained.output_shape[-1] == (9 if head == "star" else 4)
    seg = nuclib.load_pretrained(tmp_path / "run" / "model")
    assert seg.head == head
    assert seg.segment(np.zeros((40, 40), np.uint8)).shape == (40, 40)


def test_backbone_from_and_fine_tune_from_exclude_each_other(dsb_root, tmp_path):
    with pytest.raises(ValueError, match="expected one of them"):
        load_recipe(tiny_recipe(dsb_root, tmp_path, train={"backbone_from": "dsb-3class",
                                                           "fine_tune_from": "dsb-3class"}))


def test_backbone_from_names_a_mismatched_model(dsb_root, tmp_path):
    from nuclib.models import unet

    unet(depth=3, filters=4).save(tmp_path / "other.keras")
    recipe = tiny_recipe(dsb_root, tmp_path, data={"target": "star"},
                         loss={"name": "StarLoss"},
                         train={"backbone_from": str(tmp_path / "other.keras")})
    with pytest.raises(ValueError, match="backbone_from"):
        train(recipe)


def test_bfloat16_is_native_reads_the_cpu_flags(tmp_path):
    from nuclib.train import bfloat16_is_native

    avx2 = tmp_path / "avx2"
    avx2.write_text("flags\t\t: fpu sse2 avx avx2 fma\n")
    amx = tmp_path / "amx"
    amx.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16\n")
    assert bfloat16_is_native(amx)
    assert not bfloat16_is_native(avx2)  # emulated bfloat16: float32 is faster
    assert not bfloat16_is_native(tmp_path / "missing")


def test_the_optimizer_takes_its_schedule_and_clipping_from_the_recipe():
    import keras

    from nuclib.train import build_optimizer

    recipe = load_recipe({"data": {"train": "d/train"}, "train": {"steps_per_epoch": 10},
                          "optimizer": {"name": "sgd", "schedule": "exponential",
                                        "decay_rate": 0.5, "clipvalue": 0.1}})
    optimizer = build_optimizer(recipe)
    assert isinstance(optimizer, keras.optimizers.SGD)
    assert (optimizer.clipnorm, optimizer.clipvalue) == (None, 0.1)
    schedule = optimizer._learning_rate
    # decay_steps 0 means one epoch: the rate halves every 10 steps.
    assert float(schedule(0)) == pytest.approx(1e-3)
    assert float(schedule(20)) == pytest.approx(0.25e-3)
    cosine = build_optimizer(load_recipe({"data": {"train": "d/train"}}))._learning_rate
    assert float(cosine(4000)) == pytest.approx(1e-5)  # min_learning_rate after all steps
    assert build_optimizer(load_recipe({"data": {"train": "d/train"}, "optimizer": {
        "schedule": "constant"}})).clipnorm is None  # 0 means no clipping


@pytest.mark.parametrize("optimizer, match", [
    ({"schedule": "linear"}, "unknown .optimizer. schedule 'linear'"),
    ({"clipnorm": -1.0}, "clipnorm must be a number >= 0"),
    ({"learning_rate": 0}, "learning_rate must be > 0"),
    ({"decay_rate": 1.5}, r"decay_rate must be in \(0, 1\]"),
    ({"clipnorm": 1.0, "clipvalue": 0.5}, "both clipnorm and clipvalue"),
])
def test_bad_optimizer_settings_fail_when_the_recipe_is_loaded(optimizer, match):
    with pytest.raises(ValueError, match=match):
        load_recipe({"data": {"train": "d/train"}, "optimizer": optimizer})


def test_an_unknown_optimizer_is_named():
    from nuclib.train import build_optimizer

    with pytest.raises(ValueError, match="unknown .optimizer. name 'adamz'"):
        build_optimizer(load_recipe({"data": {"train": "d/train"},
                                     "optimizer": {"name": "adamz"}}))


def test_the_best_checkpoint_is_chosen_on_every_validation_pixel(dsb_root, tmp_path,
                                                                  monkeypatch):
    import nuclib.data as nd

    calls = []
    real = nd.make_validation_dataset

    def recording(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(nd, "make_validation_dataset", recording)
    recipe = tiny_recipe(dsb_root, tmp_path, train={"epochs": 1},
                         output={"finalize": False})
    history = train(recipe)["history"]
    assert len(calls) == 1 and calls[0]["tile_size"] == 64  # tiles of crop_size, every pixel
    # Deterministic: the same weights give the same validation loss.
    model = __import__("keras").models.load_model(tmp_path / "run" / "best.keras")
    val = real(data=calls[0]["data"], tile_size=64, batch_size=2, progress=False)
    assert model.evaluate(val, verbose=0) == pytest.approx(history["val_loss"][0], rel=1e-4)


def test_the_card_of_a_users_own_model_describes_that_model(dsb_root, tmp_path):
    import os
    import shutil

    # The user's data: a folder of their own (here three DSB images copied into it).
    for split, names in (("train", SMALL_VAL_IMAGES + ("0402a81e75262469925ea893b6706183832e"
                                                        "85324f7b1e08e634129f5d522cdd",)),
                         ("val", SMALL_VAL_IMAGES)):
        for sub in ("images", "labels"):
            (tmp_path / "my_data" / split / sub).mkdir(parents=True)
            for name in names:
                shutil.copy(dsb_root / "val" / sub / f"{name}.png",
                            tmp_path / "my_data" / split / sub)
    recipe = tiny_recipe(dsb_root, tmp_path, data={
        "train": str(tmp_path / "my_data" / "train"), "val": str(tmp_path / "my_data" / "val"),
        "max_images": 0}, train={"epochs": 1, "fine_tune_from": "dsb-3class"})
    recipe["name"] = "my-nuclei"
    recipe["model"]["args"] = {"depth": 4, "filters": 16, "batch_norm": True, "dropout": 0.1,
                               "upsampling": "transpose"}  # dsb-3class's, as the guide says
    train(recipe)
    card = (tmp_path / "run" / "model" / "README.md").read_text()
    assert "# my-nuclei" in card and "license: other" in card
    assert "fine-tuned from `dsb-3class`" in card
    assert "Started from a model trained on the 2018 Data Science Bowl images" in card
    assert "3 images from my_data/train/" in card  # its own data, counted
    assert "recipes/my-nuclei.toml" not in card  # it has no recipe file: a dict
    assert "given as a dict, kept in `record.json`" in card
    assert "val/ (2 images)" in card
    assert f"on a {os.cpu_count()}-core CPU" in card or " GPU" in card
    for claim in ("BBBC038", "498 DSB2018", "DSB test split", "similar to DSB2018"):
        assert claim not in card


def test_a_card_cites_dsb2018_for_models_trained_on_it_or_started_from_one():
    from nuclib.model_card import model_card

    dsb = model_card({"name": "dsb-x", "training": {
        "data": "DSB2018 stage-1 train, community-fixed masks (498 images, CC0)"}})
    assert "license: cc0-1.0" in dsb and "- BBBC038" in dsb
    assert "Trained on the 2018 Data Science Bowl images: Caicedo et al." in dsb
    tuned = model_card({"name": "mine", "training": {
        "data": "12 images from lab/train/", "fine_tuned_from": {"model": "dsb-3class"}}})
    assert "BBBC038" not in tuned and "Trained on 12 images from lab/train/" in tuned
    assert "Started from a model trained on the 2018 Data Science Bowl images" in tuned


def test_a_missing_start_fails_before_any_image_is_read(tmp_path):
    recipe = {"data": {"train": str(tmp_path / "not-there")},  # reading it would fail too
              "train": {"fine_tune_from": str(tmp_path / "runs" / "nope" / "best.keras")},
              "output": {"dir": str(tmp_path / "run")}}
    with pytest.raises(FileNotFoundError, match="fine_tune_from .*best.keras' does not exist"):
        train(recipe)


def test_training_leaves_the_global_dtype_policy_as_it_found_it(dsb_root, tmp_path,
                                                                 monkeypatch):
    import keras

    monkeypatch.setattr("nuclib.train.fit.bfloat16_is_native", lambda: True)
    recipe = tiny_recipe(dsb_root, tmp_path, train={"epochs": 1, "steps_per_epoch": 1,
                                                    "mixed_precision": True},
                         data={"val": None}, output={"finalize": False})
    train(recipe)
    assert keras.mixed_precision.global_policy().name == "float32"
