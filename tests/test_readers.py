"""What the readers do with every pixel type and multi-frame format (issue 18).

Each kind of file NumPy, tifffile and Pillow can produce is either read as
nuclib interprets it (exact values) or refused with an error naming the file
and the problem; none is segmented as something else. The table in the Data
guide ("What the readers accept") lists the same cases.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from nuclib.data.io import read_image, read_labels, read_mask_folder
from nuclib.data.normalize import prepare_image

IDS = np.array([[0, 1, 1, 2], [0, 3, 3, 2], [4, 4, 0, 0]], np.uint8)


def _frames(tmp_path, suffix, n=3, **kwargs):
    frames = [Image.fromarray(IDS * (i + 1) * 10) for i in range(n)]
    path = tmp_path / f"anim{suffix}"
    frames[0].save(path, save_all=True, append_images=frames[1:], **kwargs)
    return path


# -- multi-frame files ---------------------------------------------------------------------
@pytest.mark.parametrize("suffix,kwargs", [(".gif", {}), (".png", {}),
                                           (".webp", {"lossless": True})])
def test_animations_are_refused_not_read_as_their_first_frame(tmp_path, suffix, kwargs):
    path = _frames(tmp_path, suffix, **kwargs)
    with pytest.raises(ValueError, match=rf"anim\{suffix} has 3 frames"):
        read_image(path)
    with pytest.raises(ValueError, match="3 frames"):
        read_labels(path)


def test_a_single_frame_gif_is_read(tmp_path):
    path = _frames(tmp_path, ".gif", n=1)
    np.testing.assert_array_equal(read_image(path, as_gray="auto"), IDS * 10)


def test_tiff_stacks_and_several_images_are_refused(tmp_path):
    stack = np.stack([IDS, IDS + 1])
    tifffile.imwrite(tmp_path / "tyx.tif", stack, imagej=True, metadata={"axes": "TYX"})
    with pytest.raises(ValueError, match="tyx.tif is a stack with axes 'TYX'"):
        read_image(tmp_path / "tyx.tif")
    # A plain 3-D array (last axis > 4, so tifffile does not store it as RGB): axes unknown.
    tifffile.imwrite(tmp_path / "qyx.tif", np.zeros((5, 6, 7), np.uint8))
    with pytest.raises(ValueError, match="qyx.tif is a stack"):
        read_image(tmp_path / "qyx.tif")
    # Two pages of the same size but different dtypes: two series, two images.
    tifffile.imwrite(tmp_path / "two.tif", IDS)
    tifffile.imwrite(tmp_path / "two.tif", IDS.astype(np.uint16), append=True)
    with pytest.raises(ValueError, match="two.tif holds 2 images of 3x4 pixels"):
        read_image(tmp_path / "two.tif")
    with pytest.raises(ValueError, match="holds 2 images"):
        read_labels(tmp_path / "two.tif")


def test_a_smaller_second_tiff_image_is_a_thumbnail_and_ignored(tmp_path):
    big = np.arange(48, dtype=np.uint16).reshape(6, 8)
    tifffile.imwrite(tmp_path / "thumb.tif", big)
    tifffile.imwrite(tmp_path / "thumb.tif", big[::2, ::2], append=True)
    np.testing.assert_array_equal(read_image(tmp_path / "thumb.tif"), big)


# -- pixel types ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_complex_pixels_are_refused(tmp_path, dtype):
    path = tmp_path / "fft.tif"
    tifffile.imwrite(path, (IDS + 1j * IDS).astype(dtype))
    with pytest.raises(ValueError, match=rf"fft.tif has complex pixels \({np.dtype(dtype)}\)"):
        read_image(path)
    with pytest.raises(ValueError, match="complex"):
        read_labels(path)
    with pytest.raises(ValueError, match="complex"):  # arrays given directly, too
        prepare_image((IDS + 1j).astype(dtype))


@pytest.mark.parametrize("memmap", [False, True])
def test_nan_and_infinite_pixels_are_refused_and_counted(tmp_path, memmap):
    image = np.ones((40, 30), np.float32)
    image[3, 4] = image[10, 11] = np.nan
    image[20, 0] = -np.inf
    path = tmp_path / "nan.tif"
    tifffile.imwrite(path, image)  # uncompressed: memmap=True maps it
    with pytest.raises(ValueError, match="nan.tif has 2 NaN and 1 infinite pixels"):
        read_image(path, memmap=memmap)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.uint64, np.int8,
                                   np.int16, np.int32, np.int64, np.float16, np.float32,
                                   np.float64])
def test_every_real_tiff_dtype_reads_back_exactly(tmp_path, dtype):
    image = (IDS.astype(np.int64) * 7 - 3 * np.issubdtype(dtype, np.signedinteger)).astype(dtype)
    tifffile.imwrite(tmp_path / "x.tif", image)
    back = read_image(tmp_path / "x.tif")
    assert back.dtype == image.dtype
    np.testing.assert_array_equal(back, image)


def test_big_endian_tiff_comes_back_native(tmp_path):
    image = (IDS.astype(np.uint16) * 1000).astype(">u2")
    tifffile.imwrite(tmp_path / "be.tif", image, byteorder=">")
    back = read_image(tmp_path / "be.tif")
    assert back.dtype == np.dtype("uint16") and back.dtype.isnative
    np.testing.assert_array_equal(back, image)


def test_bilevel_images_read_as_0_255_and_are_refused_as_labels(tmp_path):
    mask = IDS > 0
    tifffile.imwrite(tmp_path / "bits.tif", mask)
    Image.fromarray(mask).save(tmp_path / "bits.png")  # a 1-bit PNG
    for name in ("bits.tif", "bits.png"):
        back = read_image(tmp_path / name)
        assert back.dtype == np.uint8
        np.testing.assert_array_equal(back, mask.astype(np.uint8) * 255)
    with pytest.raises(ValueError, match="bits.tif is a boolean .binary. mask"):
        read_labels(tmp_path / "bits.tif")
    with pytest.raises(ValueError, match="bits.png is a 1-bit .binary. mask"):
        read_labels(tmp_path / "bits.png")
    # As per-object masks (the DSB layout) they are what is expected.
    folder = tmp_path / "masks"
    folder.mkdir()
    Image.fromarray(IDS == 1).save(folder / "a.png")
    tifffile.imwrite(folder / "b.tif", IDS == 3)
    np.testing.assert_array_equal(read_mask_folder(folder), np.where(IDS == 1, 1, 0)
                                  + np.where(IDS == 3, 2, 0))


# -- labels --------------------------------------------------------------------------------
def test_palette_png_labels_are_their_indices_even_with_repeated_colours(tmp_path):
    path = tmp_path / "pal.png"
    im = Image.fromarray(IDS, mode="P")
    im.putpalette([0, 0, 0] + [255, 0, 0] * 2 + [0, 255, 0] * 2)  # ids 1, 2 share a colour
    im.save(path)
    np.testing.assert_array_equal(read_labels(path), IDS)
    # As an image it is the colours it shows.
    rgb = read_image(path)
    assert rgb.shape == (3, 4, 3)
    assert rgb[0, 1].tolist() == [255, 0, 0] and rgb[2, 0].tolist() == [0, 255, 0]


def test_palette_tiff_reads_as_indices_like_imagej(tmp_path):
    colormap = np.zeros((3, 256), np.uint16)
    colormap[1] = np.arange(256) * 257  # a green LUT over the intensities
    tifffile.imwrite(tmp_path / "lut.tif", IDS, photometric="palette", colormap=colormap)
    np.testing.assert_array_equal(read_image(tmp_path / "lut.tif"), IDS)
    np.testing.assert_array_equal(read_labels(tmp_path / "lut.tif"), IDS)


def test_miniswhite_tiff_reads_as_stored(tmp_path):
    tifffile.imwrite(tmp_path / "mw.tif", IDS * 50, photometric="miniswhite")
    np.testing.assert_array_equal(read_image(tmp_path / "mw.tif"), IDS * 50)


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.int32, np.int64, np.uint64])
def test_integer_labels_of_any_width_within_int32(tmp_path, dtype):
    labels = IDS.astype(dtype) * 1000
    tifffile.imwrite(tmp_path / "lab.tif", labels)
    back = read_labels(tmp_path / "lab.tif")
    assert back.dtype == np.int32
    np.testing.assert_array_equal(back, labels)


@pytest.mark.parametrize("dtype", [np.int64, np.uint64])
def test_ids_beyond_int32_are_refused(tmp_path, dtype):
    labels = IDS.astype(dtype)
    labels[0, 1] = 2**31
    tifffile.imwrite(tmp_path / "huge.tif", labels)
    with pytest.raises(ValueError, match="huge.tif has ids up to 2147483648.*relabel"):
        read_labels(tmp_path / "huge.tif")


def test_whole_number_float_labels_are_ids_and_others_are_refused(tmp_path):
    tifffile.imwrite(tmp_path / "f.tif", IDS.astype(np.float32) * 100)  # ImageJ's 32-bit
    back = read_labels(tmp_path / "f.tif")
    assert back.dtype == np.int32
    np.testing.assert_array_equal(back, IDS.astype(np.int32) * 100)
    bad = IDS.astype(np.float64)
    bad[0, 0], bad[1, 1] = np.nan, 2.5
    tifffile.imwrite(tmp_path / "bad.tif", bad)
    with pytest.raises(ValueError, match="bad.tif has 2 pixels that are not whole numbers"):
        read_labels(tmp_path / "bad.tif")


def test_sixteen_bit_png_labels(tmp_path):
    import cv2

    labels = IDS.astype(np.uint16) * 20000
    cv2.imwrite(str(tmp_path / "l16.png"), labels)
    np.testing.assert_array_equal(read_labels(tmp_path / "l16.png"), labels)


# -- channels ------------------------------------------------------------------------------
def _rgba(alpha_value=7):
    rgb = np.stack([IDS * 10, IDS * 20, IDS * 30], -1).astype(np.uint8)
    return np.concatenate([rgb, np.full((3, 4, 1), alpha_value, np.uint8)], -1)


def test_alpha_is_dropped_only_where_the_file_marks_it(tmp_path):
    rgba = _rgba()
    tifffile.imwrite(tmp_path / "rgba.tif", rgba, photometric="rgb", extrasamples=["unassalpha"])
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.tif"), rgba[..., :3])
    # Gray plus alpha: one channel.
    la = np.stack([IDS * 9, np.full_like(IDS, 255)], -1)
    tifffile.imwrite(tmp_path / "la.tif", la, photometric="minisblack",
                     extrasamples=["unassalpha"])
    np.testing.assert_array_equal(read_image(tmp_path / "la.tif"), IDS * 9)
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_image(tmp_path / "la.png", as_gray="auto"), IDS * 9)
    # Four fluorescence channels are not RGBA: nothing is dropped, nuclib asks which.
    planes = np.stack([IDS * (c + 1) for c in range(4)]).astype(np.uint16)
    tifffile.imwrite(tmp_path / "c4.tif", planes, imagej=True, metadata={"axes": "CYX"})
    with pytest.raises(ValueError, match="c4.tif has 4 channels.*not gray or RGB.*channel=i"):
        read_image(tmp_path / "c4.tif")
    np.testing.assert_array_equal(read_image(tmp_path / "c4.tif", channel=3), planes[3])
    assert read_image(tmp_path / "c4.tif", channel="all").shape == (3, 4, 4)
    with pytest.raises(ValueError, match="channel 4 does not exist.*4 channel"):
        read_image(tmp_path / "c4.tif", channel=4)
    with pytest.raises(ValueError, match="as_gray=True needs a gray or RGB image"):
        read_image(tmp_path / "c4.tif", channel="all", as_gray=True)
    with pytest.raises(ValueError, match="channel must be None, an int or 'all'"):
        read_image(tmp_path / "c4.tif", channel="dapi")


def test_two_channel_tiff_is_refused_without_a_channel(tmp_path):
    two = np.stack([IDS, IDS * 2], -1)
    tifffile.imwrite(tmp_path / "yxs.tif", two, photometric="minisblack", planarconfig="contig")
    with pytest.raises(ValueError, match="yxs.tif has 2 channels"):
        read_image(tmp_path / "yxs.tif")
    np.testing.assert_array_equal(read_image(tmp_path / "yxs.tif", channel=1), IDS * 2)


def test_cmyk_is_refused(tmp_path):
    tifffile.imwrite(tmp_path / "cmyk.tif", _rgba(), photometric="separated")
    with pytest.raises(ValueError, match="cmyk.tif has photometric interpretation CMYK"):
        read_image(tmp_path / "cmyk.tif")
    Image.fromarray(_rgba()[..., :3]).convert("CMYK").save(tmp_path / "cmyk.jpg")
    with pytest.raises(ValueError, match="cmyk.jpg is a CMYK JPEG"):
        read_image(tmp_path / "cmyk.jpg")
