"""The star head: targets, loss, polygon NMS, post-processing, models and the Segmenter."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from nuclib import losses, models
from nuclib.data.io import read_labels
from nuclib.data.targets import object_probability, star, star_distances
from nuclib.metrics import matching
from nuclib.postprocess.star import (check_star_maps, polygon_nms, rays_from_view,
                                     star_polygons, star_to_labels)
from nuclib.postprocess._star_nms import intersection_area, polygon_area


def _disk(shape, centre, radius, value=1, out=None):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    out = np.zeros(shape, np.int32) if out is None else out
    out[(yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius ** 2] = value
    return out


def _ellipse(shape, centre, ry, rx, value=1, out=None):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    out = np.zeros(shape, np.int32) if out is None else out
    out[((yy - centre[0]) / ry) ** 2 + ((xx - centre[1]) / rx) ** 2 <= 1] = value
    return out


def _clean_maps(labels, n_rays=32):
    """Star maps of ideal predictions: the targets, probability clipped to [0, 1]."""
    maps = star(labels, n_rays=n_rays)
    maps[..., 0] = np.clip(maps[..., 0], 0, 1)
    return maps


# -- targets ----------------------------------------------------------------

@pytest.mark.parametrize("radius", [4, 7.5, 12, 20])
def test_disk_centre_distances_equal_radius(radius):
    labels = _disk((61, 61), (30, 30), radius)
    d = star_distances(labels, 32)[30, 30]
    # StarDist's marching stops half a pixel past the last object pixel along the
    # ray's dominant axis: within 0.5 px on the axes, half a pixel diagonal elsewhere.
    assert np.all(np.abs(d[::8] - radius) <= 0.5 + 1e-6), d
    assert np.all(np.abs(d - radius) <= 0.5 * np.sqrt(2) + 1e-6), d


def test_ellipse_axes_distances():
    labels = _ellipse((61, 81), (30, 40), 8, 20)
    d = star_distances(labels, 32)[30, 40]
    # Ray 0 runs along +columns (cos 0 = 1), ray 8 along +rows (sin π/2 = 1).
    assert abs(d[0] - 20) <= 0.5 and abs(d[16] - 20) <= 0.5
    assert abs(d[8] - 8) <= 0.5 and abs(d[24] - 8) <= 0.5


def test_star_distances_match_stardist(dsb_root):
    from stardist.geometry import star_dist

    labels = read_labels(_first_val_labels(dsb_root))
    ours = star_distances(labels.astype(np.int32), 32)
    theirs = star_dist(labels.astype(np.int32), 32, mode="cpp")
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_rays_stop_at_neighbours_and_border():
    labels = np.zeros((5, 8), np.int32)
    labels[2, 0:4] = 1
    labels[2, 4:8] = 2
    d = star_distances(labels, 4)
    # Pixel (2, 1): 2.5 px to the right (its neighbour), 1.5 px to the border on the left.
    assert d[2, 1].tolist() == pytest.approx([2.5, 0.5, 1.5, 0.5])
    assert d[0, 0].tolist() == [0, 0, 0, 0]


def test_object_probability_and_ignore():
    labels = _disk((31, 31), (15, 15), 8)
    labels[0, :] = -1
    target = star(labels, n_rays=16)
    assert target.shape == (31, 31, 17)
    assert target[15, 15, 0] == pytest.approx(1.0)
    assert np.all(target[0, :, 0] == -1)
    assert np.all(target[labels == 0, 0] == 0)
    assert 0 < object_probability(labels)[15, 8] < 0.2


@pytest.mark.parametrize("n_rays", [2, 0, 2.5, True])
def test_bad_n_rays(n_rays):
    with pytest.raises(ValueError, match="n_rays"):
        star_distances(np.ones((3, 3), np.int32), n_rays)


# -- geometry and NMS -------------------------------------------------------

def test_intersection_area_of_offset_diamonds():
    # A 4-ray star with all rays 2 is the diamond |x| + |y| <= 2 (area 8).
    xs, ys = star_polygons(np.array([[0.0, 0.0]]), np.full((1, 4), 2.0))
    px, py = xs[0], ys[0]
    assert polygon_area(px, py) == pytest.approx(8.0)
    # Shifted by 2 along x, two diamonds share a diamond of half their size (area 2).
    assert intersection_area(px, py, 0, 0, px + 2, py, 2, 0) == pytest.approx(2.0)
    assert intersection_area(px, py, 0, 0, px + 5, py, 5, 0) == pytest.approx(0.0)
    # One inside the other: the smaller one's area.
    assert intersection_area(px, py, 0, 0, px / 2, py / 2, 0, 0) == pytest.approx(2.0)


def test_intersection_area_matches_rasterized(rng):
    from skimage.draw import polygon as draw

    scale = 16
    for _ in range(10):
        c1, c2 = rng.uniform(20, 30, (2, 1, 2))
        x1, y1 = star_polygons(c1, rng.uniform(2, 8, (1, 16)))
        x2, y2 = star_polygons(c2, rng.uniform(2, 8, (1, 16)))
        m1 = np.zeros((50 * scale, 50 * scale), bool)
        m2 = m1.copy()
        m1[draw(y1[0] * scale, x1[0] * scale, m1.shape)] = True
        m2[draw(y2[0] * scale, x2[0] * scale, m2.shape)] = True
        raster = (m1 & m2).sum() / scale ** 2
        area = intersection_area(x1[0], y1[0], c1[0, 1], c1[0, 0], x2[0], y2[0], c2[0, 1], c2[0, 0])
        assert area == pytest.approx(raster, abs=0.5)


def test_nms_keeps_the_more_probable_of_two_overlapping():
    points = np.array([[20, 20], [21, 21]])
    dist = np.full((2, 16), 6.0)
    assert polygon_nms(points, dist, np.array([0.6, 0.9])).tolist() == [1]
    assert polygon_nms(points, dist, np.array([0.9, 0.6])).tolist() == [0]


def test_nms_keeps_disjoint_and_respects_threshold():
    points = np.array([[10, 10], [10, 40], [40, 10], [10, 15]])
    dist = np.full((4, 16), 5.0)
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    # Two disks of radius 5, centres 5 apart: IoU ~0.24.
    assert polygon_nms(points, dist, scores, nms_threshold=0.4).tolist() == [0, 1, 2, 3]
    assert polygon_nms(points, dist, scores, nms_threshold=0.1).tolist() == [0, 1, 2]


def test_nms_agrees_with_stardist(rng, dsb_root):
    from stardist import nms

    labels = read_labels(_first_val_labels(dsb_root)).astype(np.int32)
    maps = _clean_maps(labels)
    maps[..., 0] = np.clip(maps[..., 0] + rng.normal(0, 0.05, labels.shape), 0, 1)
    ours = star_to_labels(maps, prob_threshold=0.5, nms_threshold=0.4)
    _, _, theirs_n = _stardist_count(nms, maps)
    assert abs(int(ours.max()) - theirs_n) <= max(2, theirs_n // 50)


def _stardist_count(nms, maps):
    points, probs, dist = nms.non_maximum_suppression(
        maps[..., 1:], maps[..., 0], grid=(1, 1), b=0, prob_thresh=0.5, nms_thresh=0.4,
        verbose=False)
    return points, probs, len(points)


def _first_val_labels(root):
    return sorted((root / "val" / "labels").glob("*.png"))[0]


# -- post-processing --------------------------------------------------------

def test_empty_maps_give_no_objects():
    assert star_to_labels(np.zeros((16, 16, 9), np.float32)).max() == 0


def test_round_trip_recovers_star_convex_objects():
    labels = _disk((80, 90), (20, 20), 9)
    _disk((80, 90), (20, 38), 8, value=2, out=labels)         # touching the first
    _ellipse((80, 90), (55, 50), 7, 15, value=3, out=labels)
    _disk((80, 90), (60, 15), 5, value=4, out=labels)
    out = star_to_labels(_clean_maps(labels), prob_threshold=0.5)
    result = matching(labels, out, thresh=0.9)
    assert result.tp == 4 and result.fp == 0, result


def test_grid_and_min_size():
    labels = _disk((60, 60), (20, 20), 9)
    _disk((60, 60), (44, 44), 2, value=2, out=labels)  # its centre on the grid
    maps = _clean_maps(labels)
    assert star_to_labels(maps, grid=2).max() == 2
    assert star_to_labels(maps, min_size=30).max() == 1


@pytest.mark.parametrize("maps, match", [
    (np.zeros((8, 8, 3), np.float32), "three_class_to_labels"),
    (np.zeros((8, 8, 3), np.float32)[None], "expected HxWx"),
    (np.zeros((8, 8, 4), np.int32), "dtype"),
    (np.full((8, 8, 5), np.nan, np.float32), "NaN"),
    (np.full((8, 8, 5), 3.0, np.float32), "from_logits"),
])
def test_bad_maps(maps, match):
    with pytest.raises(ValueError, match=match):
        star_to_labels(maps)


@pytest.mark.parametrize("kwargs", [{"prob_threshold": 1.5}, {"nms_threshold": -0.1},
                                    {"grid": 0}, {"min_size": -1}])
def test_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        star_to_labels(np.zeros((8, 8, 5), np.float32), **kwargs)


def test_logits_are_squashed():
    maps = np.zeros((8, 8, 5), np.float32)
    maps[..., 0] = 3.0
    assert check_star_maps(maps, from_logits=True)[0, 0, 0] == pytest.approx(1 / (1 + np.exp(-3)))


def test_rays_follow_rotations_and_mirrors():
    labels = _ellipse((40, 50), (18, 20), 6, 12)
    _disk((40, 50), (28, 38), 7, value=2, out=labels)
    target = star(labels, n_rays=16)
    for turns in range(4):
        for mirror in (False, True):
            view = np.rot90(labels, turns)
            view = np.ascontiguousarray(view[:, ::-1] if mirror else view)
            back = rays_from_view(star(view, n_rays=16), turns, mirror)
            back = np.rot90(back[:, ::-1] if mirror else back, -turns)
            np.testing.assert_allclose(back, target, atol=1e-4)
    with pytest.raises(ValueError, match="divisible by 4"):
        rays_from_view(np.zeros((2, 2, 7)), 1, False)


# -- loss -------------------------------------------------------------------

def _loss_reference(y_true, y_pred, dw=0.2, bw=1e-4, eps=1e-7):
    out = []
    for t, p in zip(y_true, y_pred):
        valid = t[..., 0] >= 0
        pt = np.clip(t[..., 0], 0, 1)
        pp = np.clip(p[..., 0], eps, 1 - eps)
        bce = -(pt * np.log(pp) + (1 - pt) * np.log(1 - pp))
        err = np.abs(t[..., 1:] - p[..., 1:]).mean(-1)
        w = pt * valid
        dist = (err * w).sum() / max(w.sum(), 1e-6)
        bg = (pt <= 0) & valid
        reg = np.abs(p[..., 1:]).mean(-1)[bg].sum() / max(bg.sum(), 1)
        out.append(bce[valid].sum() / max(valid.sum(), 1) + dw * dist + bw * reg)
    return np.array(out)


def test_star_loss_matches_numpy_reference(rng):
    labels = _disk((24, 24), (10, 12), 6)
    labels[:, -3:] = -1
    y_true = np.stack([star(labels, n_rays=8), star(np.zeros_like(labels), n_rays=8)])
    y_pred = np.concatenate([rng.uniform(0.01, 0.99, (2, 24, 24, 1)),
                             rng.uniform(0, 8, (2, 24, 24, 8))], axis=-1).astype(np.float32)
    got = np.asarray(losses.star_loss(y_true, y_pred, 0.3, 0.01))
    np.testing.assert_allclose(got, _loss_reference(y_true, y_pred, 0.3, 0.01), rtol=1e-5)
    assert float(losses.StarLoss(0.3, 0.01)(y_true, y_pred)) == pytest.approx(
        _loss_reference(y_true, y_pred, 0.3, 0.01).mean(), rel=1e-5)


def test_star_loss_perfect_prediction_and_logits():
    labels = _disk((24, 24), (12, 12), 6)
    y_true = star(labels, n_rays=8)[None]
    perfect = y_true.copy()
    loss = losses.star_loss(y_true, perfect)
    bce_floor = losses.star_loss(y_true, perfect, distance_weight=0.0, background_weight=0.0)
    assert float(loss[0]) == pytest.approx(float(bce_floor[0]), abs=1e-6)
    logits = perfect.copy()
    p = np.clip(perfect[..., 0], 1e-4, 1 - 1e-4)
    logits[..., 0] = np.log(p / (1 - p))
    np.testing.assert_allclose(losses.star_loss(y_true, logits, from_logits=True),
                               losses.star_loss(y_true, np.where(
                                   np.arange(9) == 0, p[..., None], perfect)), rtol=1e-4)


def test_star_loss_shape_errors_and_config():
    with pytest.raises(ValueError, match="1 \\+ n_rays"):
        losses.star_loss(np.zeros((1, 4, 4, 3)), np.zeros((1, 4, 4, 3)))
    with pytest.raises(ValueError, match="distance_weight"):
        losses.StarLoss(distance_weight=-1)
    loss = losses.StarLoss(distance_weight=0.5, from_logits=True)
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(loss), safe_mode=True)
    assert restored.get_config() == loss.get_config()


# -- models -----------------------------------------------------------------

@pytest.mark.parametrize("factory, kwargs", [
    ("unet", {"depth": 2, "filters": 4}),
    ("attention_unet", {"depth": 2, "filters": 4}),
    ("multires_unet", {"depth": 2, "filters": 4}),
    ("mobilenet_unet", {"alpha": 0.35}),
])
def test_every_factory_has_a_star_head_that_survives_keras_files(factory, kwargs, tmp_path):
    model = models.FACTORIES[factory](head="star", n_rays=12, **kwargs)
    assert model.output_shape[-1] == 13
    x = np.random.default_rng(0).random((1, 64, 64, 1)).astype(np.float32)
    y = np.asarray(model(x))
    assert np.all((y[..., 0] >= 0) & (y[..., 0] <= 1))
    model.compile(optimizer="adam", loss=losses.StarLoss())
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(np.asarray(loaded(x)), y, atol=1e-5)
    assert isinstance(loaded.loss, losses.StarLoss)


def test_star_head_bad_n_rays():
    with pytest.raises(ValueError, match="n_rays"):
        models.unet(depth=2, filters=4, head="star", n_rays=2)


def test_copy_backbone_moves_everything_but_the_head():
    source = models.unet(depth=2, filters=4, name="a")
    target = models.unet(depth=2, filters=4, head="star", name="b")
    models.copy_backbone(source, target)
    np.testing.assert_array_equal(source.get_layer("a_enc0_1_conv").get_weights()[0],
                                  target.get_layer("b_enc0_1_conv").get_weights()[0])
    with pytest.raises(ValueError, match="backbone"):
        models.copy_backbone(models.unet(depth=3, filters=4), target)


# -- Segmenter, tiling ------------------------------------------------------

def _star_segmenter(**config):
    from nuclib.segmenter import Segmenter

    model = models.unet(depth=2, filters=4, head="star", n_rays=8)
    return Segmenter(model, {"head": "star", "postprocess": {"prob_threshold": 0.3},
                             **config})


def test_segmenter_star_tiled_equals_untiled(rng):
    seg = _star_segmenter()
    image = rng.random((150, 170)).astype(np.float32)
    whole = seg.predict(image, tile_size=256)
    tiled = seg.predict(image, tile_size=64)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    np.testing.assert_array_equal(seg.postprocess(tiled), seg.postprocess(whole))


def test_segmenter_star_zoom_scales_distances(rng):
    seg = _star_segmenter(diameter=20)
    image = rng.random((40, 48)).astype(np.float32)
    pred = seg.predict_scaled(image, diameter=10)
    probs = seg.predict(image, diameter=10)
    assert pred.factor == 2.0 and probs.shape == (40, 48, 9)
    # The distances come back in the original image's pixels: half the model-space values.
    assert float(probs[..., 1:].mean()) == pytest.approx(float(pred.probs[..., 1:].mean()) / 2,
                                                         rel=0.05)
    labels = seg.segment(image, diameter=10)
    assert labels.shape == (40, 48) and labels.dtype == np.uint32


def test_segmenter_star_tta_runs_and_keeps_shape(rng):
    seg = _star_segmenter()
    image = rng.random((32, 48)).astype(np.float32)
    assert seg.predict(image, tta=True).shape == (32, 48, 9)


def test_segment_large_stitches_star_objects_across_blocks():
    # An ideal "star model" per block: the block's star maps, post-processed by NMS.
    from skimage.measure import label

    from nuclib.postprocess.tiling import segment_large

    rng = np.random.default_rng(3)
    image = np.zeros((300, 340), np.uint8)
    for _ in range(60):
        cy, cx, r = rng.integers(8, 292), rng.integers(8, 332), rng.integers(4, 8)
        yy, xx = np.ogrid[:300, :340]
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 200

    def star_segment(block):
        return star_to_labels(_clean_maps(label(block > 100).astype(np.int32), n_rays=16))

    whole = star_segment(image)
    blocks = np.asarray(segment_large(image, star_segment, block_size=128, min_overlap=32,
                                      progress=False))
    assert int(blocks.max()) == int(whole.max())
    assert matching(whole, blocks, thresh=0.9).f1 == 1.0


def test_star_segmenter_survives_save_and_load(tmp_path, rng):
    from nuclib.segmenter import Segmenter

    seg = _star_segmenter()
    seg.save(tmp_path / "star-model")
    loaded = Segmenter.from_directory(tmp_path / "star-model")
    assert loaded.head == "star" and loaded.config["postprocess"] == {"prob_threshold": 0.3}
    image = rng.random((48, 64)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(image), seg.predict(image), atol=1e-6)
    card = (tmp_path / "star-model" / "README.md").read_text()
    assert "star-convex polygons" in card


def test_wrong_head_for_the_maps_is_a_clear_error():
    from nuclib.segmenter import Segmenter

    seg = Segmenter(None, {"head": "star"})
    with pytest.raises(ValueError, match="three_class_to_labels"):
        seg.postprocess(np.full((8, 8, 3), 1 / 3, np.float32))
