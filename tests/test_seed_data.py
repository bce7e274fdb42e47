"""What the seeds need from nuclib.data (issue 19): colour and binary label masks, radial
distortion, sharpening, discrete rotations, the elastic mappings, HSV, dataset-wide
standardization and train / val / test splits.

The shared properties of the new augmentation layers (images and labels stay aligned,
ids and dtype kept, seeds, ``tf.data``, serialization, ``.keras`` files in safe mode)
are checked with every other layer in ``tests/test_augment.py``; here are their known
answers.
"""

from __future__ import annotations

import colorsys

import keras
import numpy as np
import pytest
import tifffile
from PIL import Image
from scipy import ndimage as ndi
from skimage.color import rgb2hsv

from nuclib import data
from nuclib.data.augment import (JointAugment, RandomAffine, RandomDiscreteRotation,
                                 RandomElastic, RandomGridElastic, RandomRadialDistortion,
                                 RandomSharpen)
from nuclib.data.io import read_labels, write_image
from nuclib.data.normalize import dataset_stats, standardize, to_hsv
from nuclib.data.splits import split, split_sizes
from tests.without_tensorflow import OTHER_BACKENDS, run_without_tensorflow

# -- colour-coded instance masks -----------------------------------------------------------
RED, GREEN, BLUE, DARK = (255, 0, 0), (0, 255, 0), (0, 0, 255), (1, 0, 0)


def _colour_mask():
    """4 x 5 RGB mask: red, green, blue and a near-black object (1, 0, 0) on black."""
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[0, 2:4] = GREEN   # first in raster order: id 1
    rgb[1, 0] = RED       # id 2
    rgb[2, 0] = RED
    rgb[2, 3:] = BLUE     # id 3
    rgb[3, 4] = DARK      # id 4: not black, so an object
    rgb[3, 0] = GREEN     # the same colour as id 1 is the same object
    expected = np.array([[0, 0, 1, 1, 0],
                         [2, 0, 0, 0, 0],
                         [2, 0, 0, 3, 3],
                         [1, 0, 0, 0, 4]], np.int32)
    return rgb, expected


def test_rgb_instance_masks_map_each_colour_to_one_id(tmp_path):
    rgb, expected = _colour_mask()
    path = write_image(tmp_path / "cvat.png", rgb)
    labels = read_labels(path, encoding="colors")
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(labels, expected)
    # The same from a 16-bit TIFF, and from a PNG with an alpha channel.
    tifffile.imwrite(tmp_path / "c16.tif", rgb.astype(np.uint16) * 257, photometric="rgb")
    np.testing.assert_array_equal(read_labels(tmp_path / "c16.tif", encoding="colors"), expected)
    rgba = np.concatenate([rgb, np.full((4, 5, 1), 255, np.uint8)], -1)
    write_image(tmp_path / "rgba.png", rgba)
    np.testing.assert_array_equal(read_labels(tmp_path / "rgba.png", encoding="colors"), expected)


def test_colour_masks_are_refused_by_default_with_the_option_named(tmp_path):
    rgb, _ = _colour_mask()
    path = write_image(tmp_path / "cvat.png", rgb)
    with pytest.raises(ValueError, match="cvat.png has 3 differing channels.*encoding='colors'"):
        read_labels(path)


def test_palette_masks_read_by_colour_merge_indices_that_share_a_colour(tmp_path):
    indices = np.array([[0, 1, 1], [2, 3, 0]], np.uint8)
    im = Image.fromarray(indices, mode="P")
    im.putpalette([0, 0, 0, 200, 10, 10, 5, 5, 90, 200, 10, 10] + [0] * (256 * 3 - 12))
    im.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_labels(tmp_path / "p.png"), indices)  # ids: indices
    np.testing.assert_array_equal(read_labels(tmp_path / "p.png", encoding="colors"),
                                  [[0, 1, 1], [2, 1, 0]])


def test_colour_masks_in_jpeg_are_refused(tmp_path):
    rgb, _ = _colour_mask()
    path = write_image(tmp_path / "cvat.jpg", rgb)
    with pytest.raises(ValueError, match="cvat.jpg is a JPEG.*changes colours"):
        read_labels(path, encoding="colors")


def test_gray_files_by_colour_are_relabelled_sequentially(tmp_path):
    gray = np.array([[0, 70, 70], [9, 0, 255]], np.uint8)
    path = write_image(tmp_path / "g.png", gray)
    np.testing.assert_array_equal(read_labels(path, encoding="colors"), [[0, 1, 1], [2, 0, 3]])


# -- binary masks --------------------------------------------------------------------------
def _two_disks(shape=(64, 80)):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    first = np.hypot(yy - 20, xx - 22) < 11.5
    second = np.hypot(yy - 40, xx - 55) < 14.5
    return first, second


def test_binary_masks_become_their_connected_components(tmp_path):
    first, second = _two_disks()
    expected = np.where(first, 1, 0) + np.where(second, 2, 0)
    mask = first | second
    write_image(tmp_path / "m255.png", mask.astype(np.uint8) * 255)
    write_image(tmp_path / "m01.png", mask.astype(np.uint8))        # 0 / 1
    write_image(tmp_path / "m16.tif", mask.astype(np.uint16) * 65535)
    Image.fromarray(mask).save(tmp_path / "bits.png")                 # 1-bit
    tifffile.imwrite(tmp_path / "bool.tif", mask)
    write_image(tmp_path / "red.png", np.stack([mask * 255, mask * 0, mask * 0], -1)
                .astype(np.uint8))                                    # red on black
    for name in ("m255.png", "m01.png", "m16.tif", "bits.png", "bool.tif", "red.png"):
        labels = read_labels(tmp_path / name, encoding="binary")
        assert labels.dtype == np.int32
        np.testing.assert_array_equal(labels, expected, err_msg=name)


def test_binary_is_refused_by_default_with_the_option_named(tmp_path):
    first, second = _two_disks()
    Image.fromarray(first | second).save(tmp_path / "bits.png")
    tifffile.imwrite(tmp_path / "bool.tif", first | second)
    with pytest.raises(ValueError, match="bits.png is a 1-bit .binary. mask.*encoding='binary'"):
        read_labels(tmp_path / "bits.png")
    with pytest.raises(ValueError, match="bool.tif is a boolean .binary. mask.*encoding='binary'"):
        read_labels(tmp_path / "bool.tif")


def _speckled_disks():
    """0 / 255 disks plus four one-pixel specks outside and a pinhole in each disk."""
    first, second = _two_disks()
    image = ((first | second) * 255).astype(np.uint8)
    for y, x in [(5, 60), (55, 10), (60, 75), (8, 40)]:
        image[y, x] = 255
    image[20, 22] = image[40, 55] = 0
    return image, np.where(first, 1, 0) + np.where(second, 2, 0)


@pytest.mark.parametrize("quality", [95, 50])
def test_jpeg_masks_give_the_same_objects_without_speckles(tmp_path, quality):
    image, expected = _speckled_disks()
    path = write_image(tmp_path / "mask.jpg", image, quality=quality)
    assert not np.array_equal(data.read_image(path), image)  # lossy indeed
    # Default for JPEG: regions under JPEG_MIN_SIZE pixels are flipped.
    np.testing.assert_array_equal(read_labels(path, encoding="binary"), expected)
    kept = read_labels(path, encoding="binary", min_size=0)
    assert kept.max() == 6  # the two disks and the four specks
    assert (kept[20, 22], kept[40, 55]) == (0, 0)  # pinholes left open


def test_lossless_binary_masks_keep_everything_unless_asked(tmp_path):
    image, expected = _speckled_disks()
    path = write_image(tmp_path / "mask.png", image)
    assert read_labels(path, encoding="binary").max() == 6
    np.testing.assert_array_equal(read_labels(path, encoding="binary", min_size=9), expected)


def test_binary_threshold_is_the_foreground_level(tmp_path):
    gray = np.array([[0, 100, 0, 200], [0, 100, 0, 200]], np.uint8)
    path = write_image(tmp_path / "levels.png", gray)
    np.testing.assert_array_equal(read_labels(path, encoding="binary"), [[0, 0, 0, 1]] * 2)
    np.testing.assert_array_equal(read_labels(path, encoding="binary", threshold=99),
                                  [[0, 1, 0, 2]] * 2)
    np.testing.assert_array_equal(read_labels(path, encoding="binary", threshold=100),
                                  [[0, 0, 0, 1]] * 2)  # strictly above the level


def test_label_encoding_errors(tmp_path):
    path = write_image(tmp_path / "l.png", np.zeros((3, 3), np.uint8))
    with pytest.raises(ValueError, match="unknown label encoding 'rgb'.*'colors'"):
        read_labels(path, encoding="rgb")
    with pytest.raises(ValueError, match="threshold and min_size apply to encoding='binary'"):
        read_labels(path, threshold=3)
    with pytest.raises(ValueError, match="min_size must be an int >= 0"):
        read_labels(path, encoding="binary", min_size=-1)
    with pytest.raises(ValueError, match="threshold must be a finite number"):
        read_labels(path, encoding="binary", threshold=float("nan"))
    (tmp_path / "masks").mkdir()
    with pytest.raises(ValueError, match="is a folder.*encoding='colors'"):
        read_labels(tmp_path / "masks", encoding="colors")
    with pytest.raises(FileNotFoundError, match="missing.png"):
        read_labels(tmp_path / "missing.png", encoding="colors")


# -- augmentation: known answers -----------------------------------------------------------
def _random_batch(shape=(3, 17, 17, 2), seed=0):
    rng = np.random.default_rng(seed)
    images = rng.random(shape).astype(np.float32)
    labels = rng.integers(0, 50, shape[:3] + (1,)).astype(np.int32)
    return images, labels


def test_discrete_rotation_quarter_turns_are_exact_and_every_angle_is_drawn():
    images, labels = _random_batch((48, 9, 9, 2))
    out = RandomDiscreteRotation(angles=(0, 90, 180, 270), seed=0)(
        {"images": images, "labels": labels})
    seen = set()
    for i in range(len(images)):
        hits = [k for k in range(4)
                if np.array_equal(out["images"][i], np.rot90(images[i], k))
                and np.array_equal(out["labels"][i], np.rot90(labels[i], k))]
        assert len(hits) == 1, f"sample {i} is not an exact quarter turn of its input"
        seen.add(hits[0])
    assert seen == {0, 1, 2, 3}
    assert out["labels"].dtype == "int32"


def test_discrete_rotation_half_turn_of_non_square_images_is_exact():
    images, labels = _random_batch((2, 6, 11, 1))
    out = RandomDiscreteRotation(angles=(180, -180, 540), seed=0)(
        {"images": images, "labels": labels[..., 0].astype(np.uint16)})
    np.testing.assert_array_equal(out["images"], images[:, ::-1, ::-1])
    np.testing.assert_array_equal(out["labels"], labels[:, ::-1, ::-1, 0])
    assert out["labels"].dtype == "uint16"


def test_discrete_rotation_other_angles_equal_the_affine_rotation():
    images, labels = _random_batch()
    out = RandomDiscreteRotation(angles=(30,), seed=0)({"images": images, "labels": labels})
    ref = RandomAffine(rotation=(30, 30), scale=1.0, seed=0)({"images": images, "labels": labels})
    np.testing.assert_allclose(out["images"], ref["images"], atol=1e-5)
    np.testing.assert_array_equal(out["labels"], ref["labels"])


def test_radial_distortion_known_answers():
    images, labels = _random_batch((2, 21, 25, 1))
    identity = RandomRadialDistortion(k=(0.0, 0.0), seed=0)({"images": images, "labels": labels})
    np.testing.assert_array_equal(identity["images"], images)
    np.testing.assert_array_equal(identity["labels"], labels)
    # Pincushion samples inside the image only: compare with SciPy's bilinear resampling.
    k = -0.2
    yy, xx = np.mgrid[:21, :25].astype(np.float64)
    cy, cx = 10.0, 12.0
    factor = 1 + k * ((yy - cy) ** 2 + (xx - cx) ** 2) / (cy ** 2 + cx ** 2)
    ys, xs = cy + (yy - cy) * factor, cx + (xx - cx) * factor
    out = RandomRadialDistortion(k=(k, k), seed=0)(images).numpy()
    for i in range(2):
        expected = ndi.map_coordinates(images[i, ..., 0], [ys, xs], order=1)
        np.testing.assert_allclose(out[i, ..., 0], expected, atol=1e-5)


def test_barrel_shrinks_a_centred_disk_and_pincushion_grows_it():
    yy, xx = np.mgrid[:65, :65]
    disk = (np.hypot(yy - 32, xx - 32) < 20).astype(np.float32)[None, ..., None]
    labels = disk.astype(np.int32)
    area = {}
    for name, k in (("barrel", 0.3), ("pincushion", -0.3)):
        out = RandomRadialDistortion(k=(k, k), seed=0)({"images": disk, "labels": labels})
        area[name] = int(np.sum(out["labels"]))
    assert area["barrel"] < int(labels.sum()) < area["pincushion"]


def test_sharpen_matches_imgaugs_kernel():
    images, labels = _random_batch((2, 12, 13, 3))
    images = 0.25 + 0.5 * images  # leave room, so that clipping does not hide differences
    alpha, lightness = 0.4, 1.1
    out = RandomSharpen(alpha=(alpha, alpha), lightness=(lightness, lightness), seed=0)(
        {"images": images, "labels": labels})
    kernel = np.full((3, 3), -1.0)
    kernel[1, 1] = 8 + lightness
    kernel = (1 - alpha) * np.pad([[1.0]], 1) + alpha * kernel
    for i in range(2):
        for c in range(3):
            expected = np.clip(ndi.convolve(images[i, ..., c].astype(np.float64), kernel,
                                            mode="reflect"), 0, 1)
            np.testing.assert_allclose(out["images"][i, ..., c], expected, atol=1e-5)
    np.testing.assert_array_equal(out["labels"], labels)
    flat = RandomSharpen(alpha=(0.0, 0.0), seed=0)(images)
    np.testing.assert_allclose(flat, images, atol=1e-6)
    ranged = RandomSharpen(alpha=(1.0, 1.0), lightness=(2.0, 2.0), value_range=(0, 255), seed=0)(
        np.full((1, 8, 8, 1), 51.0, np.float32))  # a flat image: times lightness, in range
    np.testing.assert_allclose(ranged, 102.0, rtol=1e-5)


def test_new_layers_reject_bad_arguments():
    with pytest.raises(ValueError, match="k must stay above -1/3"):
        RandomRadialDistortion(k=(-0.4, 0.1))
    with pytest.raises(ValueError, match="min <= max"):
        RandomRadialDistortion(k=(0.3, 0.1))
    with pytest.raises(ValueError, match="probability"):
        RandomRadialDistortion(probability=2)
    with pytest.raises(ValueError, match="angles must be one or more finite numbers"):
        RandomDiscreteRotation(angles=())
    with pytest.raises(ValueError, match="angles must be a sequence of numbers"):
        RandomDiscreteRotation(angles=("right",))
    with pytest.raises(ValueError, match="finite"):
        RandomDiscreteRotation(angles=(0, float("inf")))
    with pytest.raises(ValueError, match="fill_mode"):
        RandomDiscreteRotation(fill_mode="mirror")
    with pytest.raises(ValueError, match=r"alpha must lie within \[0, 1\]"):
        RandomSharpen(alpha=(0.0, 1.5))
    with pytest.raises(ValueError, match="lightness must be >= 0"):
        RandomSharpen(lightness=(-1.0, 1.0))


def test_new_layers_in_a_chain_survive_a_keras_file(tmp_path):
    chain = JointAugment([RandomDiscreteRotation(angles=(0, 90, 45), seed=1),
                          RandomRadialDistortion(k=0.1, seed=2), RandomSharpen(seed=3)])
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(chain))
    images, labels = _random_batch((2, 16, 16, 1))
    a = chain({"images": images, "labels": labels})
    b = clone({"images": images, "labels": labels})
    np.testing.assert_array_equal(a["images"], b["images"])
    np.testing.assert_array_equal(a["labels"], b["labels"])


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_new_layers_run_without_tensorflow(backend):
    out = run_without_tensorflow('''
        import sys
        import numpy as np
        from nuclib.data import augment as A
        rng = np.random.default_rng(0)
        labels = np.kron(rng.integers(0, 7, (2, 8, 8)), np.ones((5, 5), int)).astype(np.int32)
        images = (labels[..., None] / 10.0).astype(np.float32)  # the image shows the ids
        layers = {
            "rotation": A.RandomDiscreteRotation(seed=1),
            "radial": A.RandomRadialDistortion(k=0.2, interpolation="nearest", seed=2),
            "sharpen": A.RandomSharpen(alpha=(0.5, 1.0), seed=3),
        }
        report = {}
        for name, layer in layers.items():
            first = layer({"images": images, "labels": labels})
            again = layer.__class__.from_config(layer.get_config())(
                {"images": images, "labels": labels})
            im, lab = (np.asarray(first[k]) for k in ("images", "labels"))
            report[name] = {
                "dtypes": [str(im.dtype), str(lab.dtype)],
                "ids_kept": bool(set(np.unique(lab)) <= set(np.unique(labels))),
                "aligned": bool(np.allclose(im[..., 0], lab / 10.0)),
                "labels_untouched": bool(np.array_equal(lab, labels)),
                "reproducible": bool(np.array_equal(np.asarray(again["images"]), im)),
            }
        turned = A.RandomDiscreteRotation(angles=(90,), seed=0)(images)
        report["rot90_exact"] = bool(np.array_equal(np.asarray(turned),
                                                    np.rot90(images, axes=(1, 2))))
        print(json.dumps({"layers": report, "tensorflow": "tensorflow" in sys.modules}))
    ''', backend=backend)
    assert not out["tensorflow"]
    layers = out["layers"]
    assert layers.pop("rot90_exact")
    for name, r in layers.items():
        assert r["dtypes"] == ["float32", "int32"] and r["ids_kept"] and r["reproducible"], name
    assert layers["rotation"]["aligned"] and layers["radial"]["aligned"]
    assert layers["sharpen"]["labels_untouched"]


# -- the seeds' distortion parameters ------------------------------------------------------
def test_grid_distortion_mapping_keeps_grid_and_local_stretch():
    layer = RandomGridElastic.from_grid_distortion(num_steps=5, distort_limit=0.3,
                                                   image_size=256, probability=0.5, seed=4)
    assert layer.points == 6 and layer.probability == 0.5 and layer.seed == 4
    # A cell of 51.2 px changing by uniform(-0.3, 0.3): RMS 51.2 * 0.3 / sqrt(3) px. Two
    # independent control points of RMS distortion / sqrt(3) change it by as much.
    cell_rms = 51.2 * 0.3 / np.sqrt(3)
    assert np.isclose(np.sqrt(2) * layer.distortion / np.sqrt(3), cell_rms)
    asymmetric = RandomGridElastic.from_grid_distortion(4, (0.0, 0.3), image_size=128)
    assert np.isclose(asymmetric.distortion, 32 * np.sqrt(0.03) * np.sqrt(1.5))
    with pytest.raises(ValueError, match="num_steps must be >= 1"):
        RandomGridElastic.from_grid_distortion(0, 0.3, image_size=64)
    with pytest.raises(ValueError, match="distort_limit must stay above -1"):
        RandomGridElastic.from_grid_distortion(5, (-1.0, 0.3), image_size=64)
    with pytest.raises(ValueError, match="image_size must be > 0"):
        RandomGridElastic.from_grid_distortion(5, 0.3, image_size=0)


def test_grid_distortion_mapping_measured_stretch():
    # Measured: the RMS change of the horizontal distance between neighbouring control
    # points equals GridDistortion's RMS change of a cell's width.
    size, steps, limit = 100, 4, 0.3
    layer = RandomGridElastic.from_grid_distortion(steps, limit, image_size=size, seed=0)
    cols = np.broadcast_to(np.arange(size, dtype=np.float32)[None, None, :, None],
                           (256, size, size, 1))
    out = np.asarray(layer(np.ascontiguousarray(cols)))[..., 0]
    step = size // steps
    rows, left = np.array([25, 50, 75]), np.array([25, 50])  # control points away from edges
    widths = out[:, rows][:, :, left + step] - out[:, rows][:, :, left]
    measured = np.sqrt(np.mean((widths - step) ** 2))
    assert abs(measured / (step * limit / np.sqrt(3)) - 1) < 0.1


def test_elastic_transform_mapping_is_the_same_field():
    layer = RandomElastic.from_elastic_transform(alpha=34, sigma=4, probability=0.3, seed=2,
                                                 name="e")
    same = RandomElastic(alpha=34, sigma=4, probability=0.3, seed=2, name="e")
    assert layer.get_config() == same.get_config()
    images = np.random.default_rng(0).random((2, 32, 32, 1)).astype(np.float32)
    np.testing.assert_array_equal(layer(images), same(images))
    assert RandomElastic.from_elastic_transform((10, 40), 5).alpha == (10.0, 40.0)
    with pytest.raises(ValueError, match="sigma must be one number"):
        RandomElastic.from_elastic_transform(alpha=34, sigma=(3, 5))


# -- HSV -----------------------------------------------------------------------------------
def test_to_hsv_known_values_and_skimage_parity():
    pixels = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]],
                       [[0, 0, 0], [255, 255, 255], [128, 64, 192], [10, 200, 200]]], np.uint8)
    hsv = to_hsv(pixels)
    assert hsv.dtype == np.float32 and hsv.shape == (2, 4, 3)
    expected = [[colorsys.rgb_to_hsv(*(pixels[i, j] / 255.0)) for j in range(4)]
                for i in range(2)]
    np.testing.assert_allclose(hsv, expected, atol=1e-6)
    np.testing.assert_allclose(hsv[0, :4, 0], [0.0, 1 / 3, 2 / 3, 1 / 6], atol=1e-6)
    rng = np.random.default_rng(0)
    for image in (rng.integers(0, 256, (20, 30, 3)).astype(np.uint8),
                  rng.integers(0, 65536, (20, 30, 3)).astype(np.uint16),
                  rng.random((20, 30, 3))):
        np.testing.assert_allclose(to_hsv(image), rgb2hsv(image), atol=1e-6)
    rgba = np.concatenate([pixels, np.full((2, 4, 1), 7, np.uint8)], -1)
    np.testing.assert_array_equal(to_hsv(rgba), hsv)
    assert hasattr(data, "to_hsv")


def test_to_hsv_refuses_what_is_not_rgb():
    with pytest.raises(ValueError, match=r"shape \(4, 4\); expected RGB"):
        to_hsv(np.zeros((4, 4)))
    with pytest.raises(ValueError, match=r"expected RGB in \[0, 1\]"):
        to_hsv(np.full((2, 2, 3), 2.0))
    with pytest.raises(ValueError, match="negative"):
        to_hsv(np.full((2, 2, 3), -1, np.int16))


# -- dataset-wide standardization ----------------------------------------------------------
def test_dataset_stats_equal_the_pooled_pixels():
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 4000, (h, w, 2)).astype(np.uint16)
              for h, w in [(5, 7), (12, 3), (1, 1), (30, 20)]]
    pooled = np.concatenate([im.reshape(-1, 2) for im in images]).astype(np.float64)
    mean, std = dataset_stats(iter(images))  # a one-pass iterator is enough
    np.testing.assert_allclose(mean, pooled.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(std, pooled.std(axis=0), rtol=1e-10)
    mean1, std1 = dataset_stats(images, per_channel=False)
    assert mean1.shape == std1.shape == (1,)
    np.testing.assert_allclose([mean1[0], std1[0]], [pooled.mean(), pooled.std()], rtol=1e-10)


def test_dataset_stats_exact_small_values():
    mean, std = dataset_stats([np.array([[1, 3]]), np.array([[5], [7]], np.uint8)])
    assert mean.tolist() == [4.0] and std.tolist() == [np.sqrt(5.0)]
    x = standardize(np.array([[4, 6]]), mean=mean, std=std)
    np.testing.assert_allclose(x, [[0.0, 2 / np.sqrt(5)]], rtol=1e-6)


def test_standardize_with_given_statistics():
    image = np.array([[[1.0, 10.0], [3.0, 30.0]]])
    out = standardize(image, mean=[2.0, 20.0], std=[1.0, 10.0])
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[[-1.0, -1.0], [1.0, 1.0]]])
    np.testing.assert_array_equal(standardize(image, mean=1.0, std=2.0),
                                  [[[0.0, 4.5], [1.0, 14.5]]])
    # Without statistics, the old behaviour: the image's own, per channel.
    np.testing.assert_allclose(standardize(image).std(axis=(0, 1)), [1.0, 1.0], rtol=1e-6)


def test_standardization_errors():
    with pytest.raises(ValueError, match="both mean and std, or neither"):
        standardize(np.ones((2, 2)), mean=1.0)
    with pytest.raises(ValueError, match="mean has 3 values.*2 channel"):
        standardize(np.ones((2, 2, 2)), mean=[0, 0, 0], std=1.0)
    with pytest.raises(ValueError, match="std must be > 0"):
        standardize(np.ones((2, 2)), mean=0.0, std=0.0)
    with pytest.raises(ValueError, match="got no images"):
        dataset_stats([])
    with pytest.raises(ValueError, match="image 1 of the dataset has 3 channel"):
        dataset_stats([np.ones((2, 2)), np.ones((2, 2, 3))])
    with pytest.raises(ValueError, match="image 0 of the dataset: image contains NaN"):
        dataset_stats([np.array([[np.nan]])])


# -- splits --------------------------------------------------------------------------------
def _check_partition(parts, items):
    flat = [x for part in parts for x in part]
    assert sorted(flat) == sorted(items)  # exhaustive and disjoint
    for part in parts:  # each in the order of items
        assert part == sorted(part, key=items.index)


@pytest.mark.parametrize("n,fractions,sizes", [
    (10, (0.8, 0.1, 0.1), [8, 1, 1]),
    (7, (0.8, 0.1, 0.1), [5, 1, 1]),
    (3, (0.8, 0.1, 0.1), [3, 0, 0]),
    (100, (0.71, 0.29), [71, 29]),
    (5, (0.5, 0.5), [3, 2]),       # a tie goes to the earlier split
    (0, (0.5, 0.5), [0, 0]),
    (9, (1.0,), [9]),
])
def test_split_sizes_round_by_largest_remainder(n, fractions, sizes):
    assert split_sizes(n, fractions) == sizes


def test_split_is_deterministic_disjoint_and_exhaustive():
    items = [f"img_{i:02d}" for i in range(23)]
    parts = split(items, (0.7, 0.2, 0.1), seed=3)
    assert [len(p) for p in parts] == [16, 5, 2]
    _check_partition(parts, items)
    assert split(items, (0.7, 0.2, 0.1), seed=3) == parts
    assert split(items, (0.7, 0.2, 0.1), seed=4) != parts
    assert data.split is split


def test_split_keeps_groups_together():
    # Tiles of 8 source images, 1 to 4 tiles each: 20 tiles.
    counts = [4, 3, 1, 2, 4, 1, 3, 2]
    items = [(source, tile) for source, n in enumerate(counts) for tile in range(n)]
    for seed in range(5):
        train, val, test = split(items, (0.6, 0.2, 0.2), seed=seed, groups=lambda it: it[0])
        _check_partition([train, val, test], items)
        sources = [{s for s, _ in part} for part in (train, val, test)]
        assert not (sources[0] & sources[1] or sources[0] & sources[2] or sources[1] & sources[2])
        # Whole groups overshoot a target by less than the largest group (4).
        for part, target in zip((train, val, test), split_sizes(20, (0.6, 0.2, 0.2))):
            assert abs(len(part) - target) < 4
    # Keys as a sequence do the same.
    keys = [s for s, _ in items]
    assert split(items, (0.6, 0.2, 0.2), seed=1, groups=keys) == split(
        items, (0.6, 0.2, 0.2), seed=1, groups=lambda it: it[0])


def test_split_with_unit_groups_gives_exact_sizes():
    items = list(range(30))
    parts = split(items, (0.5, 0.3, 0.2), seed=0, groups=items)
    assert [len(p) for p in parts] == [15, 9, 6]


def test_split_stratified_gives_each_split_its_share_of_each_stratum():
    items = [("fluo", i) for i in range(10)] + [("he", i) for i in range(20)]
    train, val, test = split(items, (0.6, 0.2, 0.2), seed=0, stratify=lambda it: it[0])
    _check_partition([train, val, test], items)
    count = lambda part, kind: sum(1 for k, _ in part if k == kind)  # noqa: E731
    assert [count(p, "fluo") for p in (train, val, test)] == [6, 2, 2]
    assert [count(p, "he") for p in (train, val, test)] == [12, 4, 4]


def test_split_groups_within_strata_and_errors():
    items = ["a1", "a2", "b1", "c1"]
    with pytest.raises(ValueError, match="group 'x' has items in strata 'p' and 'q'"):
        split(items, (0.5, 0.5), groups=["x", "x", "y", "z"], stratify=["p", "q", "p", "q"])
    with pytest.raises(ValueError, match="fractions must add up to 1"):
        split(items, (0.8, 0.1))
    with pytest.raises(ValueError, match="fractions must be one or more finite numbers >= 0"):
        split(items, (1.2, -0.2))
    with pytest.raises(ValueError, match="no items"):
        split([], (1.0,))
    with pytest.raises(ValueError, match="groups has 2 keys for 4 items"):
        split(items, (0.5, 0.5), groups=[1, 2])
    with pytest.raises(ValueError, match="seed must be an int"):
        split(items, (0.5, 0.5), seed=None)
    with pytest.raises(ValueError, match="n must be an int >= 0"):
        split_sizes(-1, (1.0,))
