"""Segmenter: any 2-D image in, probabilities and instance labels out."""

from __future__ import annotations

import numpy as np
import pytest

from nuclib.models import unet
from nuclib.segmenter import Segmenter


@pytest.fixture(scope="module")
def seg():
    return Segmenter(unet(depth=2, filters=4), {"name": "t", "tiling": {"tile_size": 64}})


@pytest.mark.parametrize("shape,dtype", [((30, 41), np.uint8), ((70, 130), np.uint16),
                                         ((33, 65, 3), np.uint8), ((20, 20, 4), np.uint8),
                                         ((50, 40), np.float64)])
def test_any_image_gives_probabilities_and_labels(seg, shape, dtype, rng):
    image = (rng.random(shape) * 200).astype(dtype)
    probs = seg.predict(image)
    assert probs.shape == shape[:2] + (3,)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-4)
    labels = seg.segment(image)
    assert labels.shape == shape[:2] and labels.dtype == np.uint32


@pytest.mark.parametrize("bad,match", [
    (np.zeros((2, 8, 8, 1)), "dimensions"),
    (np.zeros(10), "dimensions"),
    (np.zeros((0, 5)), "empty"),
    (np.full((8, 8), np.nan), "NaN"),
    (np.zeros((8, 8, 5)), "C in"),
])
def test_unusable_images_name_the_problem(seg, bad, match):
    with pytest.raises(ValueError, match=match):
        seg.segment(bad)


def test_segment_many_accepts_a_folder(seg, tmp_path, rng):
    from nuclib.data.io import write_image

    for i in range(3):
        write_image(tmp_path / f"im{i}.png", (rng.random((24, 30)) * 255).astype(np.uint8))
    out = seg.segment_many(tmp_path, progress=False)
    assert len(out) == 3 and all(o.shape == (24, 30) for o in out)


def test_segment_many_equals_segment_image_by_image(sample_dir):
    """segment_many post-processes one image while the network predicts the next: the
    labels must be segment's, in input order, and a bad file in the middle is named."""
    import nuclib
    from nuclib.data.io import read_image

    seg = nuclib.load_pretrained("dsb-3class")
    paths = [sample_dir / f"{name}.png" for name in ("fluorescence", "histology", "brightfield")]
    many = seg.segment_many(paths + [read_image(paths[0])[:64, :80]], progress=False)
    one_by_one = [seg.segment(read_image(p), progress=False) for p in paths]
    one_by_one.append(seg.segment(read_image(paths[0])[:64, :80], progress=False))
    assert [int(m.max()) for m in many] == [int(o.max()) for o in one_by_one]
    assert all(m.max() > 0 for m in many[:3])
    for m, o in zip(many, one_by_one):
        np.testing.assert_array_equal(m, o)
    with pytest.raises(ValueError, match="min_szie"):
        seg.segment_many(paths, progress=False, min_szie=10)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        seg.segment_many([paths[0], sample_dir / "missing.png", paths[1]], progress=False)


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="head"):
        Segmenter(None, {"head": "four_class"})
    with pytest.raises(ValueError, match="input_channels"):
        Segmenter(None, {"input_channels": 2})


def test_bright_background_images_are_inverted(seg):
    dark = np.zeros((16, 16), np.uint8)
    dark[4:8, 4:8] = 200
    x_dark = seg.preprocess(dark)
    x_bright = seg.preprocess(255 - dark)
    np.testing.assert_allclose(x_dark, x_bright, atol=1e-6)


def test_models_with_bilinear_upsampling_segment_images_of_several_sizes():
    # Keras 3.15 cannot re-trace bilinear UpSampling2D for a second input shape;
    # the tiled inferencer falls back to the eager call.
    from nuclib.models import attention_unet

    seg = Segmenter(attention_unet(depth=2, filters=4), {"tiling": {"tile_size": 256}})
    for shape in [(64, 64), (40, 50), (100, 30)]:
        assert seg.segment(np.random.default_rng(1).random(shape)).shape == shape


# -- models trained at one nucleus size ------------------------------------------------------

def threshold_model(batch):
    """A stand-in network: bright pixels are nucleus interior, the rest background."""
    inside = (np.asarray(batch)[..., :1] > 0.5).astype(np.float32)
    return np.concatenate([1 - inside, inside, np.zeros_like(inside)], axis=-1)


def disk_image(radius, shape=(160, 200), spacing=None):
    """Bright disks of ``radius`` on a grid; returns the image and the disk count."""
    from skimage.draw import disk

    spacing = spacing or 3 * radius
    image = np.zeros(shape, np.uint8)
    count = 0
    for y in range(spacing // 2 + radius, shape[0] - radius - 1, spacing):
        for x in range(spacing // 2 + radius, shape[1] - radius - 1, spacing):
            image[disk((y, x), radius, shape=shape)] = 200
            count += 1
    return image, count


@pytest.fixture()
def sized():
    return Segmenter(threshold_model, {"diameter": 20, "tiling": {"tile_size": 128, "overlap": 0},
                                       "postprocess": {"min_size": 4}})


@pytest.mark.parametrize("radius", [3, 5, 12])
def test_the_nucleus_size_is_measured_at_any_scale(sized, radius):
    image, count = disk_image(radius, shape=(240, 240))
    assert sized.estimate_diameter(image) == pytest.approx(2 * radius, rel=0.12)
    labels = sized.segment(image)
    assert labels.shape == image.shape and labels.dtype == np.uint32
    assert labels.max() == count


def test_a_known_diameter_sets_the_zoom(sized):
    image, count = disk_image(5)
    pred = sized.predict_scaled(image, diameter=10)
    assert pred.factor == 2.0 and pred.diameter == 10.0
    assert pred.probs.shape[:2] == (320, 400) and pred.shape == (160, 200)
    assert sized.predict(image, diameter=10).shape == (160, 200, 3)
    assert sized.segment(image, diameter=10).max() == count


def test_the_training_diameter_means_no_zoom(sized):
    image, _ = disk_image(10)
    native = Segmenter(threshold_model, {"tiling": {"tile_size": 128, "overlap": 0},
                                         "postprocess": {"min_size": 4}})
    np.testing.assert_array_equal(sized.segment(image, diameter=20), native.segment(image))
    np.testing.assert_array_equal(sized.predict(image, diameter=20), native.predict(image))


def test_the_estimates_last_pass_is_post_processed_once(sized, monkeypatch):
    image, count = disk_image(5)
    from nuclib.postprocess.thresholds import KINDS

    calls = []
    real = KINDS["three_class"]
    monkeypatch.setitem(KINDS, "three_class", lambda probs, **kw: calls.append(kw) or
                        real(probs, **kw))
    pred = sized.predict_scaled(image)
    passes = len(calls)  # one per estimation pass; the last one is the prediction
    assert pred.factor == pytest.approx(2.0, rel=0.1) and passes >= 2
    labels = sized.labels_from(pred)
    assert len(calls) == passes and labels.max() == count  # reused, not redone
    np.testing.assert_array_equal(labels, sized.labels_from(
        type(pred)(pred.probs, pred.factor, pred.shape, pred.diameter)))
    # Other parameters, or settings changed since: post-processed again.
    assert sized.labels_from(pred, min_size=10**6).max() == 0
    sized.config["postprocess"]["min_size"] = 10**6
    assert sized.labels_from(pred).max() == 0


def test_an_image_without_nuclei_is_not_zoomed(sized):
    pred = sized.predict_scaled(np.zeros((50, 60), np.uint8))
    assert pred.factor == 1.0 and np.isnan(pred.diameter)
    assert sized.segment(np.zeros((50, 60), np.uint8)).max() == 0


def test_the_size_estimate_uses_a_central_window():
    seg = Segmenter(threshold_model, {"diameter": 20, "estimate_side": 64,
                                      "tiling": {"tile_size": 128, "overlap": 0},
                                      "postprocess": {"min_size": 4}})
    image, _ = disk_image(4, shape=(300, 300))
    image[:, :100] = 0  # big nuclei would mislead a whole-image estimate; the window misses them
    image[20:80, 20:80] = 200
    assert seg.estimate_diameter(image) == pytest.approx(8, rel=0.15)


@pytest.mark.parametrize("diameter", [0, -3, float("nan"), "10"])
def test_bad_diameters_are_rejected(sized, diameter):
    with pytest.raises(ValueError, match="diameter"):
        sized.segment(np.zeros((20, 20), np.uint8), diameter=diameter)


def test_a_diameter_needs_a_model_trained_at_one_size(seg):
    with pytest.raises(ValueError, match="own scale"):
        seg.segment(np.zeros((20, 20), np.uint8), diameter=12)
    with pytest.raises(ValueError, match="training diameter"):
        seg.estimate_diameter(np.zeros((20, 20), np.uint8))
    with pytest.raises(ValueError, match="diameter"):
        Segmenter(None, {"diameter": -5})


def test_test_time_augmentation_maps_every_view_back():
    # An equivariant stand-in model gives the same answer in every view, so the
    # average equals the plain prediction only if each view is mapped back correctly.
    seg = Segmenter(threshold_model, {"tiling": {"tile_size": 128, "overlap": 0}})
    image = np.zeros((50, 70), np.uint8)
    image[5:12, 40:61] = 200
    image[30:45, 3:9] = 150
    np.testing.assert_allclose(seg.predict(image, tta=True), seg.predict(image), atol=1e-6)


def test_test_time_augmentation_averages_the_views():
    def shifted(batch):  # sees every nucleus one pixel to the right: not equivariant
        return threshold_model(np.roll(batch, 1, axis=2))

    plain = Segmenter(shifted, {"tiling": {"tile_size": 128, "overlap": 0}})
    averaged = Segmenter(shifted, {"tta": True, "tiling": {"tile_size": 128, "overlap": 0}})
    image = np.zeros((40, 40), np.uint8)
    image[10:20, 10:20] = 200
    interior = averaged.predict(image)[..., 1]
    assert not np.allclose(interior, plain.predict(image)[..., 1])
    # The one-pixel shifts in four directions cancel: the square's centre is certain,
    # its rim is shared between views.
    assert interior[15, 15] == 1.0 and 0 < interior[10, 15] < 1
    np.testing.assert_allclose(interior, interior.T, atol=1e-6)
