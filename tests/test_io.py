"""Image / label files and dataset discovery (nuclib.data.io)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import tifffile

from nuclib.data.io import (dsb_object_pairs, file_list_pairs, folder_pairs, list_images,
                            read_dsb_objects, read_image, read_labels, read_mask_folder,
                            read_pair, write_image, write_labels)


def _image(rng, dtype, channels):
    top = np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else 1.0
    shape = (13, 17) if channels == 1 else (13, 17, channels)
    return (rng.random(shape) * top).astype(dtype)


LOSSLESS = [(".png", np.uint8, 1), (".png", np.uint8, 3), (".png", np.uint16, 1),
            (".png", np.uint16, 3), (".bmp", np.uint8, 1), (".bmp", np.uint8, 3),
            (".tif", np.uint8, 1), (".tif", np.uint8, 3), (".tif", np.uint16, 1),
            (".tif", np.uint16, 3), (".tiff", np.uint32, 1), (".tif", np.float32, 1),
            (".tif", np.float32, 3)]


@pytest.mark.parametrize("suffix,dtype,channels", LOSSLESS)
def test_lossless_round_trip_every_format_and_depth(tmp_path, rng, suffix, dtype, channels):
    image = _image(rng, dtype, channels)
    path = write_image(tmp_path / f"x{suffix}", image)
    back = read_image(path)
    assert back.dtype == image.dtype and back.shape == image.shape
    np.testing.assert_array_equal(back, image)


@pytest.mark.parametrize("channels", [1, 3])
def test_jpeg_round_trip_is_close(tmp_path, channels):
    yy, xx = np.mgrid[:32, :40]
    smooth = (100 + 50 * np.sin(yy / 6.0) * np.cos(xx / 7.0)).astype(np.uint8)
    image = smooth if channels == 1 else np.stack([smooth, smooth // 2, 255 - smooth], -1)
    back = read_image(write_image(tmp_path / "x.jpg", image))
    assert back.shape == image.shape and back.dtype == np.uint8
    assert np.abs(back.astype(int) - image).mean() < 2.0


def test_channels_come_back_in_rgb_order(tmp_path):
    image = np.zeros((4, 4, 3), np.uint8)
    image[..., 0] = 200  # pure red
    for suffix in (".png", ".bmp", ".tif"):
        back = read_image(write_image(tmp_path / f"red{suffix}", image))
        assert back[0, 0].tolist() == [200, 0, 0], suffix
    # A file written by another program in OpenCV's BGR order reads as RGB too.
    cv2.imwrite(str(tmp_path / "bgr.png"), image[..., ::-1])
    assert read_image(tmp_path / "bgr.png")[0, 0].tolist() == [200, 0, 0]


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_rgba_loses_alpha(tmp_path, rng, suffix):
    rgba = _image(rng, np.uint8, 4)
    back = read_image(write_image(tmp_path / f"a{suffix}", rgba))
    np.testing.assert_array_equal(back, rgba[..., :3])


def test_gray_stored_as_rgb_becomes_one_channel_when_asked(tmp_path, rng):
    gray = _image(rng, np.uint16, 1)
    path = write_image(tmp_path / "g.png", np.stack([gray] * 3, -1))
    assert read_image(path).shape == (13, 17, 3)
    np.testing.assert_array_equal(read_image(path, as_gray="auto"), gray)
    np.testing.assert_array_equal(read_image(path, as_gray=True), gray)
    color = np.zeros((2, 2, 3), np.uint8)
    color[..., 0], color[..., 1], color[..., 2] = 100, 200, 50
    cpath = write_image(tmp_path / "c.png", color)
    assert read_image(cpath, as_gray="auto").shape == (2, 2, 3)
    # 0.299 * 100 + 0.587 * 200 + 0.114 * 50 = 153.0
    np.testing.assert_array_equal(read_image(cpath, as_gray=True), np.full((2, 2), 153, np.uint8))
    with pytest.raises(ValueError, match="as_gray"):
        read_image(cpath, as_gray="yes")


def test_memmap_for_uncompressed_tiff_and_fallback_for_compressed(tmp_path, rng):
    image = _image(rng, np.uint16, 1)
    raw = write_image(tmp_path / "raw.tif", image, compression=None)
    zipped = write_image(tmp_path / "zip.tif", image)
    mapped = read_image(raw, memmap=True)
    assert isinstance(mapped, np.memmap)
    np.testing.assert_array_equal(mapped, image)
    loaded = read_image(zipped, memmap=True)
    assert not isinstance(loaded, np.memmap)
    np.testing.assert_array_equal(loaded, image)
    rgb = _image(rng, np.uint8, 3)
    np.testing.assert_array_equal(
        read_image(write_image(tmp_path / "rgb.tif", rgb, compression=None), memmap=True), rgb)


def test_tiff_axes_channels_first_and_stacks(tmp_path, rng):
    planes = _image(rng, np.uint16, 1)[None].repeat(2, 0)
    planes[1] //= 2
    tifffile.imwrite(tmp_path / "cyx.tif", planes, imagej=True, metadata={"axes": "CYX"})
    # Two fluorescence channels are not a colour image: nuclib asks which to read.
    with pytest.raises(ValueError, match="cyx.tif has 2 channels.*channel=i"):
        read_image(tmp_path / "cyx.tif")
    back = read_image(tmp_path / "cyx.tif", channel="all")
    assert back.shape == (13, 17, 2)
    np.testing.assert_array_equal(back[..., 1], planes[1])
    np.testing.assert_array_equal(read_image(tmp_path / "cyx.tif", channel=1), planes[1])
    tifffile.imwrite(tmp_path / "zyx.tif", planes, imagej=True, metadata={"axes": "ZYX"})
    with pytest.raises(ValueError, match="zyx.tif.*stack"):
        read_image(tmp_path / "zyx.tif")
    single = planes[:1]  # a singleton axis is dropped
    tifffile.imwrite(tmp_path / "one.tif", single, imagej=True, metadata={"axes": "ZYX"})
    assert read_image(tmp_path / "one.tif").shape == (13, 17)


@pytest.mark.parametrize("suffix,top", [(".png", 65535), (".tif", 2**31 - 1)])
def test_write_labels_is_lossless_at_16_and_32_bit(tmp_path, suffix, top):
    labels = np.zeros((9, 11), np.int64)
    labels[2:5, 3:7] = top
    labels[6:8, 1:3] = 1
    path = write_labels(tmp_path / f"l{suffix}", labels)
    back = read_labels(path)
    assert back.dtype == np.int32
    np.testing.assert_array_equal(back, labels)
    stored = read_image(path).dtype
    assert stored == (np.uint16 if suffix == ".png" else np.uint32)


def test_write_labels_is_atomic_and_rejects_what_it_cannot_store(tmp_path):
    path = tmp_path / "l.png"
    original = np.arange(12, dtype=np.int32).reshape(3, 4)
    write_labels(path, original)
    with pytest.raises(ValueError, match="16-bit PNG"):
        write_labels(path, np.full((3, 4), 70000))
    np.testing.assert_array_equal(read_labels(path), original)  # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.png"]  # no temporary files
    with pytest.raises(ValueError, match="negative"):
        write_labels(tmp_path / "n.tif", -original)
    with pytest.raises(ValueError, match="integer"):
        write_labels(tmp_path / "f.tif", original.astype(np.float32))
    with pytest.raises(ValueError, match="lossless"):
        write_labels(tmp_path / "l.jpg", original)
    with pytest.raises(ValueError, match="uint8"):
        write_image(tmp_path / "x.jpg", original.astype(np.uint16))


def test_label_errors_name_the_file(tmp_path):
    floats = tmp_path / "float_labels.tif"
    tifffile.imwrite(floats, np.full((4, 4), 0.5, np.float32))
    with pytest.raises(ValueError, match="float_labels.tif.*16 pixels.*float32"):
        read_labels(floats)
    color = write_image(tmp_path / "color_labels.png", np.eye(3, dtype=np.uint8)[None] * 9)
    with pytest.raises(ValueError, match="color_labels.png.*differing channels"):
        read_labels(color)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    with pytest.raises(ValueError, match="corrupt.png"):
        read_labels(corrupt)
    bad_tiff = tmp_path / "broken.tif"
    bad_tiff.write_bytes(b"II*\x00garbage")
    with pytest.raises(ValueError, match="broken.tif"):
        read_image(bad_tiff)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        read_image(tmp_path / "missing.png")


def test_gray_labels_saved_as_rgb_are_accepted(tmp_path):
    labels = np.array([[0, 1], [2, 3]], np.uint8)
    path = write_image(tmp_path / "rgb_labels.png", np.stack([labels] * 3, -1))
    np.testing.assert_array_equal(read_labels(path), labels)


def _dataset(root, names, label_names=None, size=(8, 10)):
    for name in names:
        write_image(root / "images" / f"{name}.png", np.zeros(size, np.uint8))
    for name in (names if label_names is None else label_names):
        write_labels(root / "labels" / f"{name}.tif", np.ones(size, np.int32))
    return root


def test_folder_pairs_match_by_stem(tmp_path):
    root = _dataset(tmp_path, ["b", "a", "c"])
    pairs = folder_pairs(root)
    assert [(i.name, lab.name) for i, lab in pairs] == [("a.png", "a.tif"), ("b.png", "b.tif"),
                                                         ("c.png", "c.tif")]


def test_folder_pairs_errors_name_the_files(tmp_path):
    root = _dataset(tmp_path / "one", ["a", "lonely"], label_names=["a"])
    with pytest.raises(ValueError, match="images without a label.*lonely.png"):
        folder_pairs(root)
    root = _dataset(tmp_path / "two", ["a"], label_names=["a", "orphan"])
    with pytest.raises(ValueError, match="without an image.*orphan.tif"):
        folder_pairs(root)
    empty = tmp_path / "empty"
    (empty / "images").mkdir(parents=True)
    (empty / "labels").mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        folder_pairs(empty)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        folder_pairs(tmp_path / "nowhere")
    root = _dataset(tmp_path / "dup", ["a"])
    write_image(root / "images" / "a.tif", np.zeros((8, 10), np.uint8))
    with pytest.raises(ValueError, match="same name"):
        folder_pairs(root)


def test_read_pair_checks_sizes(tmp_path):
    image = write_image(tmp_path / "img.png", np.zeros((8, 10), np.uint8))
    labels = write_labels(tmp_path / "lab.png", np.zeros((8, 9), np.int32))
    with pytest.raises(ValueError, match="img.png is 8x10.*lab.png are 8x9"):
        read_pair(image, labels)


def test_file_list_pairs_unet4nuclei_style(tmp_path):
    root = _dataset(tmp_path, ["img_01", "img_02", "img_03"])
    listing = tmp_path / "training.txt"
    listing.write_text("img_02.png\n\n# a comment\nimg_01\n")
    pairs = file_list_pairs(listing, root / "images", root / "labels")
    assert [(i.name, lab.name) for i, lab in pairs] == [("img_02.png", "img_02.tif"),
                                                         ("img_01.png", "img_01.tif")]
    listing.write_text("img_01.png\nimg_09.png\n")
    with pytest.raises(ValueError, match="training.txt line 2.*img_09.png"):
        file_list_pairs(listing, root / "images", root / "labels")
    (root / "labels" / "img_03.tif").unlink()
    listing.write_text("img_03.png\n")
    with pytest.raises(ValueError, match="img_03.png has no label"):
        file_list_pairs(listing, root / "images", root / "labels")
    listing.write_text("\n# nothing\n")
    with pytest.raises(ValueError, match="names no images"):
        file_list_pairs(listing, root / "images", root / "labels")


def _dsb_sample(root, sample_id, masks, size=(6, 7)):
    write_image(root / sample_id / "images" / f"{sample_id}.png",
                np.full(size + (4,), 50, np.uint8))  # DSB images are RGBA
    for i, mask in enumerate(masks):
        write_image(root / sample_id / "masks" / f"m{i}.png", mask.astype(np.uint8) * 255)


def test_dsb_per_object_layout_merges_masks_later_masks_win(tmp_path):
    first = np.zeros((6, 7), bool)
    first[0:3, 0:4] = True
    second = np.zeros((6, 7), bool)
    second[2:5, 3:6] = True  # overlaps the first at (2, 3)
    hidden = np.zeros((6, 7), bool)
    hidden[4, 4] = True  # completely covered by the last mask
    last = np.zeros((6, 7), bool)
    last[4:6, 4:7] = True
    _dsb_sample(tmp_path, "s1", [first, second, hidden, last])
    _dsb_sample(tmp_path, "s0", [first])
    pairs = dsb_object_pairs(tmp_path)
    assert [p[0].name for p in pairs] == ["s0.png", "s1.png"]
    assert pairs[1][1] == tmp_path / "s1" / "masks"
    image, labels = read_dsb_objects(tmp_path / "s1")
    assert image.shape == (6, 7, 3)
    expected = np.array([[1, 1, 1, 1, 0, 0, 0],
                         [1, 1, 1, 1, 0, 0, 0],
                         [1, 1, 1, 2, 2, 2, 0],
                         [0, 0, 0, 2, 2, 2, 0],
                         [0, 0, 0, 2, 3, 3, 3],
                         [0, 0, 0, 0, 3, 3, 3]])
    np.testing.assert_array_equal(labels, expected)
    np.testing.assert_array_equal(read_labels(pairs[1][1]), expected)  # same via read_labels
    np.testing.assert_array_equal(read_mask_folder(tmp_path / "s1" / "masks"), expected)


def test_dsb_layout_errors_name_the_files(tmp_path):
    with pytest.raises(ValueError, match="holds no samples"):
        dsb_object_pairs(tmp_path)
    _dsb_sample(tmp_path, "ok", [np.ones((6, 7), bool)])
    write_image(tmp_path / "ok" / "masks" / "zz.png", np.zeros((5, 7), np.uint8))
    with pytest.raises(ValueError, match="zz.png is"):
        read_dsb_objects(tmp_path / "ok")
    write_image(tmp_path / "nomask" / "images" / "nomask.png", np.zeros((6, 7), np.uint8))
    with pytest.raises(ValueError, match="nomask.png has no masks"):
        dsb_object_pairs(tmp_path)


def test_list_images_skips_hidden_and_other_files(tmp_path):
    write_image(tmp_path / "b.png", np.zeros((2, 2), np.uint8))
    write_image(tmp_path / ".hidden.png", np.zeros((2, 2), np.uint8))
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in list_images(tmp_path)] == ["b.png"]


def test_reads_the_shared_dsb_files(dsb_root):
    image_path, label_path = folder_pairs(dsb_root / "val")[0]
    image, labels = read_pair(image_path, label_path)
    assert image.dtype == np.uint8 and image.ndim in (2, 3)
    assert labels.dtype == np.int32 and labels.shape == image.shape[:2] and labels.max() > 0
