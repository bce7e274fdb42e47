"""The typed recipe, its data sources and metrics, the target's shape options, the sample
pictures of every epoch, and the one manifest reader."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nuclib.recipe import Recipe, build_metrics, load_recipe, read_pairs

SMALL = {"name": "tiny-run", "seed": 3,
         "model": {"factory": "unet", "args": {"depth": 2, "filters": 4}},
         "train": {"epochs": 1, "steps_per_epoch": 2, "progress": False}}


def test_a_recipe_is_typed_and_reachable_by_key():
    recipe = load_recipe({"data": {"train": "d/train", "crop_size": 128}})
    assert isinstance(recipe, Recipe)
    assert recipe.data.crop_size == recipe["data"]["crop_size"] == 128
    assert recipe.optimizer.schedule == "cosine" and recipe.data.boundary == "inner"
    recipe["data"]["batch_size"] = 4
    assert recipe.data.batch_size == 4
    recipe.model = {"factory": "attention_unet"}  # a dict updates the table
    assert recipe.model.factory == "attention_unet" and recipe.model.input_channels == 1
    assert {**recipe["model"]}["factory"] == "attention_unet"  # mapping protocol


def test_a_refused_value_leaves_the_recipe_as_it_was():
    recipe = load_recipe({"data": {"train": "d/train"}})
    with pytest.raises(ValueError, match=r"\[data\] crop_size must be a whole number >= 1, "
                                         r"got 0"):
        recipe.data.crop_size = 0
    assert recipe.data.crop_size == 256
    with pytest.raises(ValueError, match="both clipnorm and clipvalue"):
        recipe.optimizer.update(clipnorm=1.0, clipvalue=0.5)
    assert (recipe.optimizer.clipnorm, recipe.optimizer.clipvalue) == (0.0, 0.0)
    # switching from one clipping to the other is one change, checked once
    recipe.optimizer.clipnorm = 1.0
    recipe.optimizer.update(clipnorm=0.0, clipvalue=0.5)
    assert recipe.optimizer.clipvalue == 0.5
    with pytest.raises(KeyError, match="'crop' is not a key of recipe section \\[data\\]"):
        recipe["data"]["crop"] = 3
    with pytest.raises(ValueError, match="seed_treshold: not a post-processing parameter"):
        recipe.postprocess = {"seed_treshold": 0.4}
    assert recipe.postprocess == {}


@pytest.mark.parametrize("data, match", [
    ({"boundary": "double"}, r"unknown \[data\] boundary 'double'; expected one of "
                             r"\('outer', 'inner', 'thick'\)"),
    ({"boundary_width": 0}, r"\[data\] boundary_width must be a whole number >= 1"),
    ({"normalize": [99, 1]}, r"\[data\] normalize must be \[low, high\] percentiles"),
    ({"target": "polygons"}, "polygons"),
    ({"diameter": -2}, r"\[data\] diameter must be the nucleus diameter"),
    ({"val": [["only-an-image.png"]]}, r"\[data\] val lists \['.*only-an-image.png'\]; "
                                       r"expected \[image, label\] path pairs"),
])
def test_bad_data_values_fail_when_the_recipe_is_loaded(data, match):
    with pytest.raises(ValueError, match=match):
        load_recipe({"data": {"train": "d/train", **data}})


def test_a_recipe_survives_json_and_loading_again(tmp_path):
    recipe = load_recipe({**SMALL, "data": {"train": "d/train", "boundary": "thick",
                                            "expand": 1},
                          "train": {"metrics": ["JaccardIndex"]},
                          "postprocess": {"min_size": 5}})
    again = load_recipe(json.loads(json.dumps(recipe.to_dict())))
    assert again == recipe
    assert load_recipe(recipe) == recipe and load_recipe(recipe) is not recipe


def test_the_recipe_maps_onto_the_segmenter_settings_in_one_place():
    recipe = load_recipe({"name": "mine", "data": {"train": "d", "target": "binary",
                                                   "normalize": [2, 99], "diameter": 18},
                          "model": {"input_channels": 3},
                          "postprocess": {"min_size": 7}})
    settings = recipe.segmenter_config()
    assert (settings.name, settings.head, settings.input_channels) == ("mine", "binary", 3)
    assert (settings.normalize.low, settings.normalize.high, settings.diameter) == (2, 99, 18)
    assert settings.postprocess["min_size"] == 7


def test_data_may_be_a_folder_a_pair_list_file_or_a_list(dsb_root, tmp_path):
    from nuclib.data.io import folder_pairs

    folder = folder_pairs(dsb_root / "val")[:2]
    listing = tmp_path / "lists" / "val.txt"
    listing.parent.mkdir()
    rows = [f"{image} {label}" for image, label in folder]
    listing.write_text("# image label\n" + rows[0] + "\n\n" + rows[1].replace(" ", ", ") + "\n")
    assert read_pairs(listing) == [(a.resolve(), b.resolve()) for a, b in folder]
    assert read_pairs([[str(a), str(b)] for a, b in folder]) == folder
    # relative entries are relative to the list file; a TOML recipe's list to the recipe
    (tmp_path / "lists" / "rel.txt").write_text(
        f"{folder[0][0].name} {folder[0][1].name}\n")
    with pytest.raises(FileNotFoundError, match=r"rel.txt:1: .*does not exist"):
        read_pairs(tmp_path / "lists" / "rel.txt")
    (tmp_path / "lists" / "bad.txt").write_text("a.png b.png c.png\n")
    with pytest.raises(ValueError, match=r"bad.txt:1: 'a.png b.png c.png' is not an image "
                                         "and a label path"):
        read_pairs(tmp_path / "lists" / "bad.txt")
    with pytest.raises(FileNotFoundError, match="training data not found"):
        read_pairs(tmp_path / "nothing")
    recipe = load_recipe({"data": {"train": str(listing), "val": str(listing),
                                   "max_images": 1}})
    assert recipe.pairs("train") == read_pairs(listing)[:1]


def test_metrics_are_found_by_name_among_nuclibs_and_keras():
    recipe = load_recipe({"data": {"train": "d"}, "train": {"metrics": [
        "DiceCoefficient", {"name": "DiceCoefficient", "args": {"class_id": 2}}, "accuracy"]}})
    metrics = build_metrics(recipe)
    assert [type(m).__name__ for m in metrics[:2]] == ["DiceCoefficient"] * 2
    assert metrics[1].class_id == 2
    assert len(metrics) == 3
    recipe.train.metrics = ["jacard"]
    with pytest.raises(ValueError, match="unknown \\[train\\] metrics entry 'jacard'; "
                                         "expected one of nuclib's .*DiceCoefficient"):
        build_metrics(recipe)
    with pytest.raises(ValueError, match=r"\[train\] metrics must be a list"):
        recipe.train.metrics = "DiceCoefficient"


@pytest.mark.parametrize("loader", ["tf.data", "pydataset"])
def test_the_three_class_target_takes_its_shape_from_the_options(loader):
    from nuclib.data.pipeline import make_validation_dataset
    from nuclib.data.targets import three_class

    labels = np.zeros((16, 16), np.int32)
    labels[2:8, 2:8] = 1
    labels[2:8, 8:14] = 2  # touching the first
    labels[11:13, 11:13] = 3  # 4 pixels
    image = np.random.default_rng(0).random((16, 16, 1)).astype(np.float32)
    for options, expected in [
            ({}, three_class(labels, boundary="inner")),
            ({"boundary": "thick", "boundary_width": 2},
             three_class(labels, boundary="thick", width=2)),
            ({"boundary": "outer", "min_size": 5}, three_class(labels, boundary="outer",
                                                               min_size=5)),
            ({"expand": 1}, three_class(labels, boundary="inner", expand=1))]:
        ds = make_validation_dataset(data=([image], [labels]), tile_size=16, batch_size=1,
                                     progress=False, loader=loader, **options)
        _, target = next(iter(ds)) if loader == "tf.data" else ds[0]
        np.testing.assert_array_equal(np.asarray(target)[0, ..., 0], expected)
    with pytest.raises(ValueError, match="unknown boundary 'double'"):
        make_validation_dataset(data=([image], [labels]), tile_size=16, boundary="double")


def test_padding_stays_ignored_under_every_target_shape():
    from nuclib.data.pipeline import labels_to_target_np, labels_to_target_tf, target_options

    labels = np.array([[[[0], [3], [3], [3], [-1]]]])
    options = target_options(boundary="outer")
    expected = [2, 1, 1, 1, -1]  # outer: the background ring is boundary; padding ignored
    assert labels_to_target_np(labels, "three_class", options=options).ravel().tolist() == \
        expected
    assert np.asarray(labels_to_target_tf(labels, "three_class", options=options)).ravel()\
        .tolist() == expected
    binary = labels_to_target_np(labels, "binary", options=target_options(min_size=4))
    assert binary.ravel().tolist() == [0, 0, 0, 0, -1]


def test_deprecated_names_still_answer_and_warn():
    import importlib
    import sys

    import nuclib.data.pipeline as pipeline
    from nuclib.heads import HEADS

    with pytest.warns(DeprecationWarning, match="use nuclib.heads.HEADS"):
        assert pipeline.TARGET_KINDS == HEADS
    with pytest.warns(DeprecationWarning, match="use nuclib.labels.IGNORE_LABEL"):
        assert pipeline.IGNORE == -1
    for old, name in [("nuclib.finalize", "finalize_model"),
                      ("nuclib.training_callbacks", "SamplePrediction")]:
        sys.modules.pop(old, None)
        with pytest.warns(DeprecationWarning, match=f"{old} is deprecated"):
            module = importlib.import_module(old)
        assert getattr(module, name) is getattr(importlib.import_module("nuclib.train"), name)


def test_sample_pictures_show_every_image_and_may_be_tiled(tmp_path):
    from nuclib.data.io import read_image, write_image
    from nuclib.models import unet
    from nuclib.train.callbacks import SamplePrediction

    write_image(tmp_path / "small.png", np.full((40, 50), 100, np.uint8))
    write_image(tmp_path / "large.png", (np.arange(96 * 120) % 251).astype(np.uint8)
                .reshape(96, 120))
    model = unet(depth=2, filters=4, head="three_class")
    paths = [tmp_path / "small.png", tmp_path / "large.png"]
    whole = SamplePrediction(paths, tmp_path / "whole", preprocess=lambda im: im[..., None] / 255)
    whole.set_model(model)
    whole.on_epoch_end(0)
    # rows: 40 x 48 cropped to the stride (4) and 96 x 120; each input | probabilities
    assert read_image(tmp_path / "whole" / "epoch_001.png").shape == (136, 240, 3)
    tiled = SamplePrediction(paths, tmp_path / "tiled", preprocess=lambda im: im[..., None] / 255,
                             tile_size=64)
    tiled.set_model(model)
    tiled.on_epoch_end(4)
    picture = read_image(tmp_path / "tiled" / "epoch_005.png")
    assert picture.shape == (136, 240, 3)  # nothing cropped: the tiler pads
    # tiled equals untiled: the tiler's overlap covers the receptive field
    np.testing.assert_allclose(picture[40:, 120:].astype(int),
                               read_image(tmp_path / "whole" / "epoch_001.png")[40:, 120:]
                               .astype(int), atol=1)
    with pytest.raises(ValueError, match="tile_size must be 0 .whole images. or a tile side"):
        SamplePrediction(paths, tmp_path, preprocess=lambda im: im, tile_size=-1)
    with pytest.raises(ValueError, match="no sample image given"):
        SamplePrediction([], tmp_path, preprocess=lambda im: im)


def test_a_recipe_trains_from_a_pair_list_with_metrics_and_a_thick_boundary(dsb_root,
                                                                             tmp_path):
    from nuclib.data.io import folder_pairs
    from nuclib.train import train

    pairs = folder_pairs(dsb_root / "train")[:2]
    listing = tmp_path / "train.txt"
    listing.write_text("".join(f"{a} {b}\n" for a, b in pairs))
    recipe = {**SMALL,
              "data": {"train": str(listing), "crop_size": 64, "batch_size": 2,
                       "boundary": "thick", "min_size": 10},
              "train": {**SMALL["train"], "metrics": [
                  {"name": "DiceCoefficient", "args": {"class_id": 1}}]},
              "output": {"dir": str(tmp_path / "run"), "finalize": False,
                         "sample_image": [str(pairs[0][0]), str(pairs[1][0])],
                         "sample_tile_size": 64}}
    result = train(recipe)
    assert "dice_coefficient" in result["history"]
    assert (tmp_path / "run" / "epochs" / "epoch_001.png").is_file()
    saved = json.loads((tmp_path / "run" / "recipe.json").read_text())
    assert saved["data"]["boundary"] == "thick" and saved["data"]["train"] == str(listing)


def test_one_manifest_reader(dsb_root, tmp_path):
    from nuclib.evaluation import read_manifest, read_modalities

    fluorescence = read_manifest(dsb_root, split="val", modality="fluorescence")
    assert len(fluorescence) == 54
    assert read_modalities(dsb_root / "val") == read_modalities(dsb_root)
    assert sum(m == "histology" for i, m in read_modalities(dsb_root).items()
               if i in {r["id"] for r in read_manifest(dsb_root, split="val")}) == 11
    with pytest.raises(ValueError, match="has no column 'stain'"):
        read_manifest(dsb_root, stain="H&E")
    assert read_manifest(tmp_path) == [] and read_modalities(tmp_path / "val") == {}
