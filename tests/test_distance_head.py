"""The three-class + distance head: targets, loss, watershed post-processing, models."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from nuclib import losses, models
from nuclib.data.pipeline import labels_to_target_tf
from nuclib.data.targets import three_class, three_class_distance
from nuclib.metrics import matching
from nuclib.postprocess import distance_to_labels, optimize_thresholds


def _disk(labels, centre, radius, value):
    yy, xx = np.mgrid[:labels.shape[0], :labels.shape[1]]
    labels[(yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius ** 2] = value
    return labels


def _touching():
    labels = np.zeros((60, 80), np.int32)
    _disk(labels, (30, 25), 10, 1)
    _disk(labels, (30, 44), 10, 2)        # touches the first along a short seam
    _disk(labels, (12, 65), 6, 3)
    return labels


def _ideal_probs(labels, drop_boundary=False):
    t = three_class_distance(labels)
    classes = t[..., 0].astype(int)
    if drop_boundary:  # the model misses every boundary: interior everywhere inside
        classes[classes == 2] = 1
    return np.concatenate([np.eye(3, dtype=np.float32)[classes], t[..., 1:]], axis=-1)


def test_target_channels():
    labels = _touching()
    labels[0, :] = -1
    t = three_class_distance(labels)
    assert t.shape == (60, 80, 2) and t.dtype == np.float32
    np.testing.assert_array_equal(t[1:, :, 0], three_class(labels[1:], boundary="inner"))
    assert np.all(t[0, :, 0] == -1)
    for value in (1, 2, 3):  # 1 at each nucleus' most central pixel, high at its centre
        assert t[labels == value, 1].max() == pytest.approx(1.0)
    assert t[30, 44, 1] > 0.85
    assert t[labels == 0, 1].max() == 0


def test_tf_target_equals_numpy_target():
    labels = _touching()
    labels[:, -4:] = -1
    tf_target = np.asarray(labels_to_target_tf(labels[None, ..., None], "three_class_distance"))
    np.testing.assert_allclose(tf_target[0], three_class_distance(labels), atol=1e-6)


def test_watershed_separates_touching_nuclei_without_a_boundary():
    labels = _touching()
    out = distance_to_labels(_ideal_probs(labels, drop_boundary=True))
    result = matching(labels, out, thresh=0.8)
    assert result.tp == 3 and result.fp == 0, result


def test_min_size_thresholds_and_empty():
    labels = _touching()
    probs = _ideal_probs(labels)
    assert distance_to_labels(probs, min_size=150).max() == 2
    empty = np.zeros((10, 10, 4), np.float32)
    empty[..., 0] = 1
    assert distance_to_labels(empty).max() == 0
    with pytest.raises(ValueError, match="seed_threshold"):
        distance_to_labels(probs, seed_threshold=2)
    with pytest.raises(ValueError, match="three_class_to_labels"):
        distance_to_labels(probs[..., :3])
    with pytest.raises(ValueError, match="NaN"):
        distance_to_labels(np.full((4, 4, 4), np.nan, np.float32))


def test_threshold_search_runs_for_the_head():
    labels = _touching()
    tuned = optimize_thresholds([_ideal_probs(labels, drop_boundary=True)], [labels],
                                kind="three_class_distance")
    assert tuned["score"] == pytest.approx(1.0)
    assert set(tuned["params"]) == {"foreground_threshold", "seed_threshold", "min_size"}


def test_loss_matches_numpy_reference(rng):
    labels = _touching()
    labels[:, :5] = -1
    y_true = three_class_distance(labels)[None]
    raw = rng.uniform(0.05, 1, (1, 60, 80, 4)).astype(np.float32)
    y_pred = raw.copy()
    y_pred[..., :3] /= y_pred[..., :3].sum(-1, keepdims=True)
    weights = np.array([1.0, 2.0, 5.0])
    valid = y_true[0, ..., 0] >= 0
    classes = np.maximum(y_true[0, ..., 0], 0).astype(int)
    picked = np.take_along_axis(y_pred[0, ..., :3], classes[..., None], -1)[..., 0]
    cce = -(weights[classes] * np.log(picked))[valid].sum() / valid.sum()
    l1 = np.abs(y_true[0, ..., 1] - y_pred[0, ..., 3])[valid].mean()
    got = losses.three_class_distance_loss(y_true, y_pred, weights, 0.5)
    assert float(got[0]) == pytest.approx(cce + 0.5 * l1, rel=1e-5)
    loss = losses.ThreeClassDistanceLoss(weights, 0.5)
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(loss), safe_mode=True)
    assert float(restored(y_true, y_pred)) == pytest.approx(cce + 0.5 * l1, rel=1e-5)
    with pytest.raises(ValueError, match="expected"):
        losses.three_class_distance_loss(y_true, y_pred[..., :3])


@pytest.mark.parametrize("factory, kwargs", [("unet", {"depth": 2, "filters": 4}),
                                             ("attention_unet", {"depth": 2, "filters": 4}),
                                             ("multires_unet", {"depth": 2, "filters": 4}),
                                             ("mobilenet_unet", {"alpha": 0.35})])
def test_every_factory_has_the_head(factory, kwargs, tmp_path):
    model = models.FACTORIES[factory](head="three_class_distance", **kwargs)
    x = np.random.default_rng(1).random((1, 64, 64, 1)).astype(np.float32)
    y = np.asarray(model(x))
    assert y.shape == (1, 64, 64, 4)
    np.testing.assert_allclose(y[..., :3].sum(-1), 1.0, atol=1e-5)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(np.asarray(loaded(x)), y, atol=1e-5)


def test_segmenter_tiled_equals_untiled(rng):
    from nuclib.segmenter import Segmenter

    seg = Segmenter(models.unet(depth=2, filters=4, head="three_class_distance"),
                    {"head": "three_class_distance"})
    image = rng.random((130, 150)).astype(np.float32)
    whole = seg.predict(image, tile_size=256)
    tiled = seg.predict(image, tile_size=64)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    np.testing.assert_array_equal(seg.postprocess(tiled), seg.postprocess(whole))
