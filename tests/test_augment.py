"""Joint image / label augmentation layers (nuclib.data.augment, geometric, intensity)."""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage as ndi
from skimage.measure import label as connected_components

from nuclib.data.augment import (JointAugment, JointLayer, RandomAffine, RandomCrop,
                                 RandomDiscreteRotation, RandomElastic, RandomFlipRotate90,
                                 RandomGamma, RandomGaussianBlur, RandomGaussianNoise,
                                 RandomGridElastic, RandomPoissonNoise, RandomRadialDistortion,
                                 RandomSharpen, default_augment, strong_augment)

SIZE = 128
CROP = 96
MARGIN = 8

LAYERS = {
    "flip_rotate90": lambda seed: RandomFlipRotate90(seed=seed),
    "affine": lambda seed: RandomAffine(rotation=180, scale=(0.8, 1.25), shear=10,
                                        translation=0.1, seed=seed),
    "grid_elastic": lambda seed: RandomGridElastic(points=16, distortion=5.0, seed=seed),
    "elastic": lambda seed: RandomElastic(alpha=(20.0, 40.0), sigma=5.0, seed=seed),
    "crop": lambda seed: RandomCrop(CROP, CROP, seed=seed),
    "discrete_rotation": lambda seed: RandomDiscreteRotation(angles=(0, 90, 180, 270, 30),
                                                             seed=seed),
    "radial_distortion": lambda seed: RandomRadialDistortion(k=(-0.2, 0.2), seed=seed),
    "sharpen": lambda seed: RandomSharpen(alpha=(0.2, 0.5), lightness=(0.9, 1.1), seed=seed),
    "gamma": lambda seed: RandomGamma(gamma=(0.7, 1.5), seed=seed),
    "blur": lambda seed: RandomGaussianBlur(sigma=(0.5, 1.5), seed=seed),
    "gaussian_noise": lambda seed: RandomGaussianNoise(stddev=(0.02, 0.05), seed=seed),
    "poisson_noise": lambda seed: RandomPoissonNoise(peak=(30.0, 1000.0), seed=seed),
    "keras_brightness": lambda seed: JointAugment([keras.layers.RandomBrightness(
        0.1, value_range=(0, 1), seed=seed, dtype="float32")]),
    "keras_contrast": lambda seed: JointAugment([keras.layers.RandomContrast(
        0.3, value_range=(0, 1), seed=seed, dtype="float32")]),
    "default_augment": default_augment,
    "strong_augment": strong_augment,
}
NUCLIB_LAYERS = ["flip_rotate90", "affine", "grid_elastic", "elastic", "crop", "gamma", "blur",
                 "gaussian_noise", "poisson_noise", "discrete_rotation", "radial_distortion",
                 "sharpen"]


def _blobs(centres, radii, size=SIZE):
    """Bright discs with soft (half-pixel) edges on a dark background, values in [0.1, 0.9]."""
    yy, xx = np.mgrid[:size, :size]
    image = np.zeros((size, size))
    for (cy, cx), r in zip(centres, radii):
        dist = np.hypot(yy - cy, xx - cx)
        image = np.maximum(image, 1.0 / (1.0 + np.exp(4.0 * (dist - r))))
    return (0.1 + 0.8 * image).astype(np.float32)[..., None]


@pytest.fixture(scope="module")
def batch():
    """Two blob images and the labels obtained by thresholding them (ids 1..6 and 1..5)."""
    # Radii off the pixel grid, so that no pixel sits exactly on the 0.5 level.
    a = _blobs([(28, 30), (30, 92), (66, 60), (100, 26), (102, 98), (62, 110)],
               [13.3, 11.3, 16.3, 12.3, 14.3, 8.3])
    b = _blobs([(38, 38), (38, 90), (90, 38), (90, 90), (64, 64)],
               [14.3, 12.3, 13.3, 15.3, 7.3])
    images = np.stack([a, b])
    labels = np.stack([connected_components(im[..., 0] > 0.5) for im in images])
    return images, labels[..., None].astype(np.int32)


def _agreement(images, labels, margin=MARGIN):
    """Fraction of pixels (away from the edges) where image > 0.5 agrees with labels > 0."""
    fg_image = np.asarray(images)[..., 0] > 0.5
    fg_labels = np.asarray(labels)[..., 0] > 0
    inner = (slice(None), slice(margin, -margin), slice(margin, -margin))
    return float(np.mean(fg_image[inner] == fg_labels[inner]))


def _ids_subset(after, before):
    for out, ref in zip(np.asarray(after), np.asarray(before)):
        assert set(np.unique(out)) <= set(np.unique(ref))


def test_blob_fixture_is_consistent(batch):
    images, labels = batch
    assert [labels[i].max() for i in range(2)] == [6, 5]
    assert _agreement(images, labels) == 1.0


def test_agreement_detects_misaligned_labels(batch):
    # The alignment criterion below must catch labels one pixel off, and a
    # transform applied to the image only.
    images, labels = batch
    assert _agreement(images[:, 1:], labels[:, :-1]) < 0.98
    assert _agreement(np.rot90(images, axes=(1, 2)), labels) < 0.9


@pytest.mark.parametrize("name", LAYERS)
def test_image_and_labels_stay_aligned(name, batch):
    images, labels = batch
    layer = LAYERS[name](3)
    for _ in range(2):  # two draws
        out = layer({"images": images, "labels": labels})
        assert out["labels"].dtype == tf.int32
        assert out["images"].dtype == tf.float32
        assert _agreement(out["images"], out["labels"]) >= 0.98
        _ids_subset(out["labels"], labels)


@pytest.mark.parametrize("name", LAYERS)
def test_same_seed_same_output_and_draws_change(name, batch):
    images, labels = batch
    first, second = LAYERS[name](11), LAYERS[name](11)
    a = first({"images": images, "labels": labels})
    b = second({"images": images, "labels": labels})
    np.testing.assert_array_equal(a["images"], b["images"])
    np.testing.assert_array_equal(a["labels"], b["labels"])
    again = first({"images": images, "labels": labels})
    assert not np.array_equal(again["images"], a["images"])


@pytest.mark.parametrize("name", LAYERS)
def test_works_under_tf_data_map(name, batch):
    images, labels = batch
    layer = LAYERS[name](5)
    elements = tf.data.Dataset.from_tensor_slices({"images": images, "labels": labels})
    unbatched = next(iter(elements.map(layer).batch(2)))
    batched = next(iter(elements.batch(2).map(layer)))
    for out in (unbatched, batched):
        assert out["images"].shape[0] == 2 and out["images"].shape[-1] == 1
        assert out["labels"].dtype == tf.int32
        assert out["labels"].shape[:3] == out["images"].shape[:3]
        assert _agreement(out["images"], out["labels"]) >= 0.98
        _ids_subset(out["labels"], labels)


@pytest.mark.parametrize("name", LAYERS)
def test_config_round_trip_reproduces_the_layer(name, batch):
    images, labels = batch
    layer = LAYERS[name](9)
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(clone) is type(layer)
    assert clone.get_config() == layer.get_config()
    a = layer({"images": images, "labels": labels})
    b = clone({"images": images, "labels": labels})
    np.testing.assert_array_equal(a["images"], b["images"])
    np.testing.assert_array_equal(a["labels"], b["labels"])


@pytest.mark.parametrize("name", NUCLIB_LAYERS)
def test_layer_survives_keras_file_with_safe_mode(name, tmp_path):
    layer = LAYERS[name](2)
    inputs = keras.Input((SIZE, SIZE, 1))
    model = keras.Model(inputs, layer(inputs))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert type(loaded.layers[-1]) is type(layer)
    assert loaded.layers[-1].get_config() == layer.get_config()


@pytest.mark.parametrize("name", NUCLIB_LAYERS)
def test_unbatched_inputs_and_label_shapes(name, batch):
    images, labels = batch
    layer = LAYERS[name](4)
    out = layer({"images": images[0], "labels": labels[0, ..., 0]})
    expected = (CROP, CROP) if name == "crop" else (SIZE, SIZE)
    assert tuple(out["images"].shape) == expected + (1,)
    assert tuple(out["labels"].shape) == expected
    two_d = layer({"images": images[0, ..., 0], "segmentation_masks": labels[0]})
    assert tuple(two_d["images"].shape) == expected
    assert tuple(two_d["segmentation_masks"].shape) == expected + (1,)
    alone = layer(images)  # a bare image batch comes back as a tensor
    assert tuple(alone.shape) == (2,) + expected + (1,)


@pytest.mark.parametrize("name", NUCLIB_LAYERS)
def test_training_false_leaves_inputs_alone(name, batch):
    images, labels = batch
    out = LAYERS[name](1)({"images": images, "labels": labels}, training=False)
    if name == "crop":  # inference crops the centre
        np.testing.assert_array_equal(out["images"], images[:, 16:112, 16:112])
        np.testing.assert_array_equal(out["labels"], labels[:, 16:112, 16:112])
    else:
        np.testing.assert_array_equal(out["images"], images)
        np.testing.assert_array_equal(out["labels"], labels)


@pytest.mark.parametrize("name", ["gamma", "blur", "gaussian_noise", "poisson_noise",
                                  "sharpen", "keras_brightness", "keras_contrast"])
def test_intensity_layers_never_touch_labels(name, batch):
    images, labels = batch
    odd = labels * 1000 + 7 * (labels > 0)  # ids that would not survive a float round trip
    out = LAYERS[name](0)({"images": images, "labels": odd})
    np.testing.assert_array_equal(out["labels"], odd)
    assert 0.0 <= float(tf.reduce_min(out["images"])) <= float(tf.reduce_max(out["images"])) <= 1.0


def _dihedral(x):
    """The 8 flips / 90-degree rotations of an (H, W, ...) array."""
    out = []
    for k in range(4):
        r = np.rot90(x, k)
        out += [r, r[::-1]]
    return out


def test_flip_rotate90_is_an_exact_square_symmetry_and_draws_all_eight():
    rng = np.random.default_rng(0)
    images = rng.random((64, 5, 5, 1)).astype(np.float32)
    images[:, 0, 0] = 0.0  # the same picture in all samples would do; differ to be sure
    labels = rng.integers(0, 100, (64, 5, 5, 1)).astype(np.int32)
    out = RandomFlipRotate90(seed=0)({"images": images, "labels": labels})
    seen = set()
    for i in range(64):
        matches = [j for j, (im, lab) in enumerate(zip(_dihedral(images[i]),
                                                       _dihedral(labels[i])))
                   if np.array_equal(out["images"][i], im)
                   and np.array_equal(out["labels"][i], lab)]
        assert matches, f"sample {i} is not a flip/rotation of its input"
        seen.add(matches[0])
    assert seen == set(range(8))


def test_flip_rotate90_keeps_non_square_shape():
    rng = np.random.default_rng(1)
    images = rng.random((32, 4, 6, 1)).astype(np.float32)
    out = RandomFlipRotate90(seed=0)(images).numpy()
    allowed = lambda x: [x, x[::-1], x[:, ::-1], x[::-1, ::-1]]  # noqa: E731
    seen = set()
    for i in range(32):
        hits = [j for j, cand in enumerate(allowed(images[i])) if np.array_equal(out[i], cand)]
        assert hits
        seen.add(hits[0])
    assert seen == {0, 1, 2, 3}


def test_affine_quarter_turn_equals_rot90():
    rng = np.random.default_rng(2)
    images = rng.random((1, 33, 33, 2)).astype(np.float32)
    labels = rng.integers(0, 9, (1, 33, 33, 1)).astype(np.int32)
    out = RandomAffine(rotation=(90, 90), scale=1.0, seed=0)({"images": images, "labels": labels})
    np.testing.assert_allclose(out["images"][0], np.rot90(images[0]), atol=1e-4)
    np.testing.assert_array_equal(out["labels"][0], np.rot90(labels[0]))


def test_affine_translation_and_scale_known_answers():
    rng = np.random.default_rng(3)
    images = rng.random((1, 32, 40, 1)).astype(np.float32)
    shifted = RandomAffine(rotation=0, scale=1.0, translation=(0.25, 0.25), seed=0)(images)
    # A shift of a quarter of the size: 8 rows down, 10 columns right.
    np.testing.assert_allclose(shifted[0, 8:, 10:], images[0, :-8, :-10], atol=1e-6)
    zoomed = RandomAffine(rotation=0, scale=2.0, interpolation="nearest", seed=0)(images)
    # Doubling about the centre (15.5, 19.5): output row y shows input row 15.5 + (y - 15.5) / 2.
    np.testing.assert_array_equal(zoomed[0, 14:18:2, 18:22:2], images[0, 15:17, 19:21])


def test_affine_constant_fill_uses_label_fill_value():
    images = np.ones((1, 16, 16, 1), np.float32)
    labels = np.ones((1, 16, 16, 1), np.int32)
    layer = RandomAffine(rotation=(45, 45), scale=1.0, fill_mode="constant", fill_value=0.0,
                         label_fill_value=-1, seed=0)
    out = layer({"images": images, "labels": labels})
    corner_image, corner_label = float(out["images"][0, 0, 0, 0]), int(out["labels"][0, 0, 0, 0])
    assert (corner_image, corner_label) == (0.0, -1)
    assert set(np.unique(out["labels"])) == {-1, 1}


def test_elastic_layers_without_strength_are_the_identity(batch):
    images, labels = batch
    for layer in (RandomGridElastic(distortion=0.0, seed=0), RandomElastic(alpha=0.0, seed=0)):
        out = layer({"images": images, "labels": labels})
        np.testing.assert_array_equal(out["images"], images)
        np.testing.assert_array_equal(out["labels"], labels)


def test_grid_elastic_displacements_follow_unet4nuclei_scale():
    # normal() * uniform(0, 5) per control point: a mean absolute shift near
    # E|N| * E[U] = 0.80 * 2.5 = 2 pixels at the control points, less between them.
    rows = np.broadcast_to(np.arange(SIZE, dtype=np.float32)[None, :, None, None],
                           (16, SIZE, SIZE, 1))  # each pixel holds its row number
    out = RandomGridElastic(points=16, distortion=5.0, seed=0)(np.ascontiguousarray(rows))
    shift = np.abs(np.asarray(out)[:, 10:-10, 10:-10, 0] - np.arange(SIZE)[10:-10, None])
    assert 0.8 < shift.mean() < 2.2
    assert shift.max() < 25


def test_probability_zero_changes_nothing(batch):
    images, labels = batch
    for layer in (RandomGridElastic(probability=0.0, seed=1), RandomGamma(probability=0.0, seed=1)):
        out = layer({"images": images, "labels": labels})
        np.testing.assert_array_equal(out["images"], images)


def test_crop_is_a_window_of_the_input(batch):
    images, labels = batch
    out = RandomCrop(40, 50, seed=0)({"images": images, "labels": labels})
    for i in range(2):
        found = [(y, x) for y, x in itertools.product(range(SIZE - 40 + 1), range(SIZE - 50 + 1))
                 if np.array_equal(out["images"][i], images[i, y:y + 40, x:x + 50])]
        assert found
        y, x = found[0]
        np.testing.assert_array_equal(out["labels"][i], labels[i, y:y + 40, x:x + 50])


def test_crop_pads_small_inputs_with_ignored_labels():
    image = np.arange(12, dtype=np.float32).reshape(3, 4, 1)
    labels = np.ones((3, 4), np.int32)
    out = RandomCrop(5, 6, seed=0)({"images": image, "labels": labels})
    np.testing.assert_array_equal(out["labels"][:3, :4], labels)
    assert np.all(out["labels"].numpy()[3:] == -1) and np.all(out["labels"].numpy()[:, 4:] == -1)
    # Symmetric reflection: row 3 repeats row 2, column 4 repeats column 3.
    np.testing.assert_array_equal(out["images"][3, :4, 0], image[2, :, 0])
    np.testing.assert_array_equal(out["images"][:3, 4, 0], image[:, 3, 0])
    with pytest.raises(ValueError, match="label_pad_value"):
        RandomCrop(5, 6)({"images": image, "labels": labels.astype(np.uint16)})


def test_gamma_blur_and_noise_known_answers():
    flat = np.full((1, 20, 20, 1), 0.5, np.float32)
    out = RandomGamma(gamma=(2.0, 2.0), seed=0)(flat)
    np.testing.assert_allclose(out, 0.25, rtol=1e-6)
    ranged = RandomGamma(gamma=(2.0, 2.0), value_range=(0, 255), seed=0)(flat * 255)
    np.testing.assert_allclose(ranged, 63.75, rtol=1e-5)

    rng = np.random.default_rng(4)
    images = rng.random((2, 24, 24, 2)).astype(np.float32)
    blurred = RandomGaussianBlur(sigma=(1.3, 1.3), seed=0)(images).numpy()
    expected = ndi.gaussian_filter(images, sigma=(0, 1.3, 1.3, 0), mode="reflect")
    np.testing.assert_allclose(blurred, expected, atol=1e-5)

    grey = np.full((4, 64, 64, 1), 0.5, np.float32)
    noisy = RandomGaussianNoise(stddev=(0.05, 0.05), seed=0)(grey).numpy()
    assert abs(noisy.mean() - 0.5) < 0.005 and abs(noisy.std() - 0.05) < 0.003
    shot = RandomPoissonNoise(peak=(100.0, 100.0), seed=0)(grey).numpy()
    # Poisson(50) / 100: mean 0.5, standard deviation sqrt(50) / 100, values on a 1/100 grid.
    assert abs(shot.mean() - 0.5) < 0.005 and abs(shot.std() - np.sqrt(50) / 100) < 0.004
    np.testing.assert_allclose(shot * 100, np.round(shot * 100), atol=1e-3)


def test_labels_keep_ids_and_dtype_under_mixed_precision(batch):
    images, _ = batch
    ids = [4097, 1000, 1001, 1002, 1003, 4099]  # neighbours that bfloat16 would merge
    labels = np.zeros((2, SIZE, SIZE, 1), np.uint16)
    for i, value in enumerate(ids):
        labels[:, :, i * 22:(i + 1) * 22] = value  # vertical bands covering the image
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        for make in (default_augment, strong_augment):
            out = make(0)({"images": images, "labels": labels})
            assert out["labels"].dtype == tf.uint16
            assert out["images"].dtype == tf.float32
            found = set(np.unique(out["labels"]).tolist())
            assert found <= set(ids) and {1001, 1002, 1003} <= found
        with pytest.raises(ValueError, match="dtype='float32'"):
            JointAugment([keras.layers.RandomFlip(seed=0)])
    finally:
        keras.mixed_precision.set_global_policy(previous)


def test_default_augment_composition_is_pinned():
    # A model is trained with this exact recipe; changing it changes results.
    aug = default_augment(seed=42)
    kinds = [type(t).__name__ for t in aug.transforms]
    assert kinds == ["RandomFlip", "RandomRotation", "RandomZoom", "RandomContrast",
                     "RandomBrightness"]
    flip, rotation, zoom, contrast, brightness = (t.get_config() for t in aug.transforms)
    assert flip["mode"] == "horizontal_and_vertical" and flip["seed"] == 43
    assert tuple(rotation["factor"]) == (-0.5, 0.5) and rotation["fill_mode"] == "reflect"
    assert tuple(zoom["height_factor"]) == (-0.3, 0.3) and zoom["width_factor"] is None
    assert zoom["fill_mode"] == "reflect" and zoom["interpolation"] == "bilinear"
    # Keras stores RandomContrast(0.3) as the factor (0, 0.3).
    assert tuple(contrast["factor"]) == (0, 0.3) and tuple(contrast["value_range"]) == (0, 1)
    assert tuple(brightness["factor"]) == (-0.1, 0.1) and brightness["seed"] == 47


def test_strong_augment_contains_elastic_noise_gamma_blur():
    kinds = {type(t) for t in strong_augment(0).transforms}
    assert {RandomGridElastic, RandomGaussianNoise, RandomPoissonNoise, RandomGamma,
            RandomGaussianBlur, RandomAffine, RandomFlipRotate90} <= kinds
    transforms = strong_augment(0).transforms
    assert all(isinstance(t, (JointLayer, keras.layers.Layer)) for t in transforms)


def test_bad_inputs_and_arguments_raise_clear_errors(batch):
    images, labels = batch
    with pytest.raises(ValueError, match="'images'"):
        RandomGamma()({"labels": labels})
    with pytest.raises(ValueError, match="same height and width"):
        RandomAffine()({"images": images, "labels": labels[:, :50]})
    with pytest.raises(ValueError, match="not both"):
        RandomAffine()({"images": images, "labels": labels, "segmentation_masks": labels})
    with pytest.raises(ValueError, match="expected"):
        RandomGamma()(np.zeros((1, 1, 8, 8, 1), np.float32))
    with pytest.raises(ValueError, match="fill_mode"):
        RandomAffine(fill_mode="mirror")
    with pytest.raises(ValueError, match="min <= max"):
        RandomGaussianNoise(stddev=(0.1, 0.0))
    with pytest.raises(ValueError, match="probability"):
        RandomGaussianBlur(probability=1.5)
    with pytest.raises(ValueError, match="points"):
        RandomGridElastic(points=1)


def test_chains_accept_unbatched_images_with_plain_label_images(batch):
    images, labels = batch
    for make in (default_augment, strong_augment):
        out = make(1)({"images": images[0], "labels": labels[0, ..., 0]})
        assert tuple(out["images"].shape) == (SIZE, SIZE, 1)
        assert tuple(out["labels"].shape) == (SIZE, SIZE)
        assert _agreement(out["images"][None], out["labels"][None, ..., None]) >= 0.98


def test_integer_images_are_accepted_and_come_back_as_float32():
    image = (np.arange(36, dtype=np.uint16) * 1000).reshape(1, 6, 6, 1)
    out = RandomFlipRotate90(seed=0)(image)
    assert out.dtype == tf.float32
    assert sorted(np.asarray(out).ravel().tolist()) == list(range(0, 36000, 1000))
    gamma = RandomGamma(gamma=(2.0, 2.0), value_range=(0, 35000), seed=0)(image)
    np.testing.assert_allclose(gamma[0, 0, 1, 0], 35000 * (1000 / 35000) ** 2, rtol=1e-5)
