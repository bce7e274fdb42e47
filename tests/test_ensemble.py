"""Ensembles: the averaged network equals the mean of its members, and members must agree."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from nuclib import Segmenter
from nuclib.ensemble import average_models, ensemble
from nuclib.models import mobilenet_unet, unet


@pytest.fixture(scope="module")
def members():
    keras.utils.set_random_seed(0)
    a = Segmenter(unet(depth=2, filters=4, name="a"), {"name": "a", "diameter": 20,
                                                        "postprocess": {"min_size": 3}},
                  about={"architecture": "unet"})
    b = Segmenter(unet(depth=3, filters=6, name="b"), {"name": "b", "diameter": 20},
                  about={"architecture": "unet"})
    return a, b


@pytest.fixture
def image():
    return np.random.default_rng(1).integers(0, 255, (52, 60), dtype=np.uint8)


def test_the_ensemble_predicts_the_mean_of_its_members(members, image):
    both = ensemble(members, name="a+b")
    # At the members' common zoom (a given diameter) and on one tile.
    expected = np.mean([m.predict(image, diameter=10) for m in members], axis=0)
    np.testing.assert_allclose(both.predict(image, diameter=10), expected, atol=1e-5)
    assert both.name == "a+b" and both.config.diameter == 20.0
    assert both.config.postprocess == {"min_size": 3}  # the first member's
    assert both.about["members"] == ["a", "b"]
    assert both.about["member_architectures"] == ["unet", "unet"]
    # The network is flat: every layer named after its member, one mean at the end.
    names = [layer.name for layer in both.model.layers]
    assert names[-1] == "ensemble_mean" and len(names) == len(set(names))
    assert all(n.startswith(("member0_", "member1_", "ensemble_")) for n in names)
    assert both.inferencer().multiple == 8   # the deeper member's stride


def test_an_ensemble_saves_and_loads_safely(members, image, tmp_path):
    both = ensemble(members, postprocess={"min_size": 5})
    folder = both.save(tmp_path / "ensemble")
    again = Segmenter.from_directory(folder, engine="keras")
    assert again.config.postprocess == {"min_size": 5}
    assert again.about["members"] == ["a", "b"]
    np.testing.assert_array_equal(again.predict(image, diameter=12),
                                  both.predict(image, diameter=12))
    np.testing.assert_array_equal(again.segment(image, diameter=12),
                                  both.segment(image, diameter=12))


def test_members_must_share_what_goes_in_and_what_comes_out(members):
    a, b = members
    with pytest.raises(ValueError, match="at least two members, got 1"):
        ensemble([a])
    other_size = Segmenter(b.model, {"name": "c", "diameter": 15})
    with pytest.raises(ValueError, match="differ in 'diameter': a: 20.0, c: 15.0"):
        ensemble([a, other_size])
    binary = Segmenter(unet(depth=2, filters=4, head="binary", name="d"),
                       {"name": "d", "head": "binary", "diameter": 20})
    with pytest.raises(ValueError, match="differ in 'head'"):
        ensemble([a, binary])
    with pytest.raises(ValueError, match="needs a Keras model"):
        ensemble([a, Segmenter(np.tanh, {"diameter": 20})])


def test_average_models_checks_channels():
    with pytest.raises(ValueError, match="at least two models"):
        average_models([unet(depth=2, filters=4)])
    with pytest.raises(ValueError, match="differ in their input channels"):
        average_models([unet(depth=2, filters=4),
                        unet(input_shape=(None, None, 3), depth=2, filters=4, name="rgb")])
    with pytest.raises(ValueError, match="differ in their output channels"):
        average_models([unet(depth=2, filters=4),
                        unet(depth=2, filters=4, head="binary", name="bin")])
    mixed = average_models([unet(depth=2, filters=4),
                            mobilenet_unet(input_shape=(None, None, 1), alpha=0.35,
                                           decoder_filters=(16, 8, 8, 4), head="three_class")])
    x = np.random.default_rng(0).random((1, 64, 64, 1), np.float32)
    assert mixed.predict_on_batch(x).shape == (1, 64, 64, 3)
