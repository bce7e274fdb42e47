"""tf.data pipelines (nuclib.data.pipeline)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import tensorflow as tf

from nuclib.data.augment import default_augment, strong_augment
from nuclib.data.io import folder_pairs, write_image, write_labels
from nuclib.data.pipeline import (labels_to_target_tf, load_pairs, make_dataset,
                                  make_validation_dataset, nucleus_centres, pad_to_multiple)
from nuclib.data.targets import three_class


@pytest.fixture(scope="module")
def dsb_pairs(dsb_root):
    return folder_pairs(dsb_root / "train")[:4]


@pytest.fixture(scope="module")
def dsb_data(dsb_pairs):
    return load_pairs(dsb_pairs)


def _touching_labels(rng, shape=(24, 30)):
    """Blocky instance labels with many touching objects and some background."""
    coarse = rng.integers(0, 7, (-(-shape[0] // 3), -(-shape[1] // 3)))
    return np.kron(coarse, np.ones((3, 3), int))[:shape[0], :shape[1]].astype(np.int32)


def _check_batch(images, targets, batch, size, channels=1):
    assert images.dtype == tf.float32 and targets.dtype == tf.int32
    assert tuple(images.shape) == (batch, size, size, channels)
    assert tuple(targets.shape) == (batch, size, size, 1)
    assert 0.0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 1.0
    assert set(np.unique(targets)) <= {-1, 0, 1, 2}


@pytest.mark.parametrize("augment", [None, default_augment, strong_augment])
def test_make_dataset_on_dsb_train_images(dsb_pairs, dsb_data, augment):
    ds = make_dataset(dsb_pairs, crop_size=64, batch_size=4, seed=0, data=dsb_data,
                      augment=None if augment is None else augment(0))
    seen = set()
    for images, targets in ds.take(3):
        _check_batch(images, targets, 4, 64)
        seen |= set(np.unique(targets).tolist())
    assert {0, 1, 2} <= seen  # background, interior and boundary all occur


def test_make_dataset_reads_files_and_three_channel_models(dsb_pairs):
    ds = make_dataset(dsb_pairs[:2], crop_size=32, batch_size=2, channels=3, seed=1)
    images, targets = next(iter(ds))
    _check_batch(images, targets, 2, 32, channels=3)


def test_targets_in_the_graph_equal_numpy_inner_three_class(rng):
    for _ in range(3):
        labels = _touching_labels(rng)
        tf_target = labels_to_target_tf(labels[None, ..., None], "three_class")[0, ..., 0]
        np.testing.assert_array_equal(tf_target, three_class(labels, boundary="inner"))
        binary_target = labels_to_target_tf(labels[None, ..., None], "binary")[0, ..., 0]
        np.testing.assert_array_equal(binary_target, (labels > 0).astype(np.int32))


def test_small_images_are_padded_with_ignored_pixels(rng):
    image = rng.random((10, 12, 1)).astype(np.float32)
    labels = _touching_labels(rng, (10, 12))
    ds = make_dataset(None, crop_size=16, batch_size=2, data=([image], [labels]), seed=0)
    images, targets = next(iter(ds))
    _check_batch(images, targets, 2, 16)
    ignored = (targets.numpy() == -1).sum(axis=(1, 2, 3))
    np.testing.assert_array_equal(ignored, [16 * 16 - 10 * 12] * 2)


def test_whole_images_are_padded_to_a_multiple(rng):
    image = rng.random((20, 30, 1)).astype(np.float32)
    labels = _touching_labels(rng, (20, 30))
    ds = make_dataset(None, crop_size=None, data=([image], [labels]), shuffle=False,
                      repeat=False, pad_multiple=16)
    (images, targets), = list(ds)
    assert tuple(images.shape) == (1, 32, 32, 1)
    np.testing.assert_array_equal(images[0, :20, :30], image)
    target = targets.numpy()[0, ..., 0]
    np.testing.assert_array_equal(target[:20, :30], three_class(labels, boundary="inner"))
    assert np.all(target[20:] == -1) and np.all(target[:, 30:] == -1)


def test_pad_to_multiple_known_answer():
    image = np.arange(6, dtype=np.float32).reshape(2, 3, 1)
    labels = np.ones((2, 3), np.int32)
    padded, padded_labels = pad_to_multiple(image, labels, 4)
    np.testing.assert_array_equal(padded[..., 0], [[0, 1, 2, 2], [3, 4, 5, 5],
                                                   [3, 4, 5, 5], [0, 1, 2, 2]])
    np.testing.assert_array_equal(padded_labels, [[1, 1, 1, -1], [1, 1, 1, -1],
                                                  [-1, -1, -1, -1], [-1, -1, -1, -1]])


def test_same_seed_same_batches_with_and_without_cache(dsb_pairs):
    def batches(**kwargs):
        ds = make_dataset(dsb_pairs[:3], crop_size=32, batch_size=2, seed=3, **kwargs)
        return [(x.numpy(), y.numpy()) for x, y in ds.take(3)]

    cached, uncached, again = batches(), batches(cache=False), batches()
    for (a, b), (c, d), (e, f) in zip(cached, uncached, again):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
        np.testing.assert_array_equal(a, e)


def test_finite_dataset_visits_each_image_once(rng):
    images = [rng.random((16, 16, 1)).astype(np.float32) * (i + 1) / 5 for i in range(5)]
    labels = [np.full((16, 16), i + 1, np.int32) for i in range(5)]
    ds = make_dataset(None, crop_size=16, batch_size=2, shuffle=False, repeat=False,
                      data=(images, labels))
    sizes = [int(x.shape[0]) for x, _ in ds]
    assert sizes == [2, 2, 1]
    firsts = [float(x[i, 0, 0, 0]) for x, _ in ds for i in range(x.shape[0])]
    np.testing.assert_allclose(firsts, [float(im[0, 0, 0]) for im in images])


def test_validation_tiles_cover_every_pixel_once(rng):
    sizes = [(20, 30), (16, 16), (7, 40)]
    images = [rng.random(s + (1,)).astype(np.float32) for s in sizes]
    labels = [_touching_labels(rng, s) for s in sizes]
    ds = make_validation_dataset(None, tile_size=16, batch_size=3, data=(images, labels))
    targets = np.concatenate([y.numpy() for _, y in ds])
    assert targets.shape[1:] == (16, 16, 1)
    assert targets.shape[0] == 2 * 2 + 1 + 1 * 3  # tiles per image: 4, 1, 3
    assert (targets >= 0).sum() == sum(h * w for h, w in sizes)
    assert (targets > 0).sum() == sum(int((lab > 0).sum()) for lab in labels)
    whole = make_validation_dataset(None, data=(images, labels), pad_multiple=8)
    shapes = [tuple(x.shape[1:3]) for x, _ in whole]
    assert shapes == [(24, 32), (16, 16), (8, 40)]


def test_validation_on_dsb_images(dsb_pairs, dsb_data):
    ds = make_validation_dataset(dsb_pairs, tile_size=128, batch_size=4, data=dsb_data)
    total = sum(int((y.numpy() >= 0).sum()) for _, y in ds)
    assert total == sum(lab.size for lab in dsb_data[1])


def _write_pair(folder, name, image_shape, label_shape):
    image = write_image(folder / f"{name}.png", np.zeros(image_shape, np.uint8))
    labels = write_labels(folder / f"{name}_labels.png", np.ones(label_shape, np.int32))
    return image, labels


def test_errors_name_the_files(tmp_path):
    pair = _write_pair(tmp_path, "mismatch", (8, 10), (8, 9))
    with pytest.raises(ValueError, match="mismatch.png is 8x10.*mismatch_labels.png"):
        make_dataset([pair], crop_size=8)
    good = _write_pair(tmp_path, "good", (8, 10), (8, 10))
    with pytest.raises(ValueError, match="good.png gave 2 channels; expected 1"):
        load_pairs([good, good], preprocess=_one_then_two_channels())
    with pytest.raises(ValueError, match="good.png gave NaN"):
        load_pairs([good], preprocess=lambda im: np.full(im.shape + (1,), np.nan, np.float32))
    with pytest.raises(ValueError, match="unknown target"):
        make_dataset([good], target="distance")
    with pytest.raises(ValueError, match="no .image, label. pairs"):
        make_dataset([])
    with pytest.raises(ValueError, match=r"or data=\(images, labels\)"):
        make_dataset()
    with pytest.raises(ValueError, match="crop_size"):
        make_dataset([good], crop_size=0)


def _one_then_two_channels():
    calls = itertools.count(1)
    return lambda im: np.zeros(im.shape[:2] + (next(calls),), np.float32)


def test_make_dataset_reads_the_dsb_per_object_layout(tmp_path):
    from nuclib.data.io import dsb_object_pairs

    for sample in ("a", "b"):
        write_image(tmp_path / sample / "images" / f"{sample}.png",
                    np.full((24, 20, 4), 90, np.uint8))
        for i, (y, x) in enumerate([(2, 2), (12, 8)]):
            mask = np.zeros((24, 20), np.uint8)
            mask[y:y + 8, x:x + 8] = 255
            write_image(tmp_path / sample / "masks" / f"{i}.png", mask)
    ds = make_dataset(dsb_object_pairs(tmp_path), crop_size=16, batch_size=2, seed=0)
    images, targets = next(iter(ds))
    _check_batch(images, targets, 2, 16)
    assert {1, 2} <= set(np.unique(targets))


# -- sampling crops around nuclei ---------------------------------------------------------------

def test_nucleus_centres_known_answer():
    labels = np.zeros((6, 8), np.int64)
    labels[0:3, 0:3] = 2**40          # a huge, sparse id
    labels[4, 5:8] = 7
    assert nucleus_centres(labels).tolist() == [[4, 6], [1, 1]]  # in id order
    assert nucleus_centres(np.zeros((3, 3), np.int32)).shape == (0, 2)
    assert nucleus_centres(-np.ones((3, 3), np.int32)).shape == (0, 2)


def one_nucleus_images(rng, n=4, shape=(300, 260)):
    images, labels = [], []
    for i in range(n):
        lab = np.zeros(shape, np.int32)
        y, x = rng.integers(0, shape[0] - 3), rng.integers(0, shape[1] - 3)
        lab[y:y + 3, x:x + 3] = 5
        labels.append(lab)
        images.append(np.full(shape + (1,), float(i), np.float32))
    return images, labels


def test_nucleus_crops_contain_their_nucleus(rng):
    data = one_nucleus_images(rng)
    ds = make_dataset(data=data, crop_size=32, batch_size=8, target="binary",
                      sampling="nucleus", uniform_fraction=0.0, seed=1)
    for _, targets in ds.take(10):
        # Every crop was drawn around the only nucleus of its image.
        assert (targets.numpy().reshape(8, -1) == 1).any(axis=1).all()


def test_nucleus_sampling_weighs_images_by_their_nuclei(rng):
    images, labels = one_nucleus_images(rng, n=2)
    many = np.zeros((300, 260), np.int32)
    for k in range(9):
        many[10 + 30 * k:14 + 30 * k, 100:104] = k + 1
    labels[1] = many                  # image 0: one nucleus, image 1: nine
    counts = np.zeros(2)
    ds = make_dataset(data=(images, labels), crop_size=32, batch_size=10,
                      sampling="nucleus", uniform_fraction=0.0, seed=0)
    for batch, _ in ds.take(40):
        counts += np.bincount(batch.numpy()[:, 0, 0, 0].astype(int), minlength=2)
    assert counts[1] / counts.sum() == pytest.approx(0.9, abs=0.05)   # 400 crops
    uniform = make_dataset(data=(images, labels), crop_size=32, batch_size=10,
                           sampling="nucleus", uniform_fraction=1.0, seed=0)
    counts[:] = 0
    for batch, _ in uniform.take(40):
        counts += np.bincount(batch.numpy()[:, 0, 0, 0].astype(int), minlength=2)
    assert counts[1] / counts.sum() == pytest.approx(0.5, abs=0.08)


def test_finite_nucleus_sampling_yields_one_crop_per_image(rng):
    data = one_nucleus_images(rng, n=3)
    ds = make_dataset(data=data, crop_size=32, batch_size=2, sampling="nucleus",
                      repeat=False, seed=0)
    assert sum(int(images.shape[0]) for images, _ in ds) == 3


@pytest.mark.parametrize("kwargs, match", [
    ({"sampling": "pixel"}, "unknown sampling 'pixel'"),
    ({"sampling": "nucleus", "uniform_fraction": 1.5}, "uniform_fraction"),
    ({"sampling": "nucleus", "crop_size": None}, "needs a crop_size"),
])
def test_bad_sampling_settings(rng, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_dataset(data=one_nucleus_images(rng, n=1), **kwargs)


@pytest.mark.parametrize("augment", [default_augment, strong_augment])
def test_same_seed_same_augmented_batches(dsb_pairs, augment):
    def batches():
        ds = make_dataset(dsb_pairs[:3], crop_size=48, batch_size=2, seed=5,
                          augment=augment(seed=5), sampling="nucleus")
        return [(x.numpy(), y.numpy()) for x, y in ds.take(4)]

    first, second = batches(), batches()
    for (a, b), (c, d) in zip(first, second):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)


@pytest.mark.parametrize("kwargs, batches", [
    ({"crop_size": 16, "batch_size": 2}, 3),
    ({"crop_size": 16, "batch_size": 2, "sampling": "nucleus"}, 3),
    ({"crop_size": None}, 5),
])
def test_finite_datasets_know_their_length(rng, kwargs, batches):
    # An unknown length makes Keras warn "Your input ran out of data" after every
    # validation pass, although every batch was used.
    images = [rng.random((16, 16, 1)).astype(np.float32) for _ in range(5)]
    labels = [np.full((16, 16), i + 1, np.int32) for i in range(5)]
    ds = make_dataset(None, shuffle=False, repeat=False, data=(images, labels), **kwargs)
    assert int(ds.cardinality()) == batches
    assert sum(1 for _ in ds) == batches
    tiles = make_validation_dataset(None, tile_size=8, batch_size=3, data=(images, labels))
    assert int(tiles.cardinality()) == 7  # 4 tiles per image, 20 in batches of 3
    assert sum(1 for _ in tiles) == 7
