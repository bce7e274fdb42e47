"""Intensity normalization (nuclib.data.normalize)."""

from __future__ import annotations

import numpy as np
import pytest

from nuclib.data.normalize import (is_color, minmax_normalize, percentile_normalize,
                                   prepare_image, standardize, to_grayscale)

RAMPS = {  # the same ramp in every dtype: min, quarter, half, max
    "uint8": np.array([[0, 50, 100, 200]], np.uint8),
    "uint16": np.array([[0, 15000, 30000, 60000]], np.uint16),
    "int32": np.array([[-100, -50, 0, 100]], np.int32),
    "float64": np.array([[-1.0, 0.0, 1.0, 3.0]], np.float64),
}


@pytest.mark.parametrize("dtype", RAMPS)
def test_every_dtype_gives_float32_with_known_values(dtype):
    ramp = RAMPS[dtype]
    expected = [[0.0, 0.25, 0.5, 1.0]]
    for fn in (lambda x: percentile_normalize(x, 0, 100), minmax_normalize):
        out = fn(ramp)
        assert out.dtype == np.float32 and out.shape == ramp.shape
        np.testing.assert_allclose(out, expected, atol=1e-6)
    z = standardize(ramp)
    assert z.dtype == np.float32
    assert abs(float(z.mean())) < 1e-6 and abs(float(z.std()) - 1.0) < 1e-5


def test_percentiles_are_the_defaults_and_configurable():
    x = np.arange(1001, dtype=np.uint16)[None]  # 0..1000
    # Percentile 1 of 0..1000 is 10, percentile 99.8 is 998.
    out = percentile_normalize(x)
    np.testing.assert_allclose(out[0, [10, 504, 998]], [0.0, 0.5, 1.0], atol=1e-6)
    assert out.min() < 0 and out.max() > 1  # not clipped unless asked
    clipped = percentile_normalize(x, 0.1, 99.9, clip=True)  # unet4nuclei's percentiles
    assert clipped.min() == 0.0 and clipped.max() == 1.0
    np.testing.assert_allclose(clipped[0, 500], (500 - 1.0) / (999.0 - 1.0), rtol=1e-6)
    with pytest.raises(ValueError, match="low < high"):
        percentile_normalize(x, 50, 50)


def test_per_channel_normalization_and_constant_channels():
    image = np.zeros((4, 4, 3), np.uint8)
    image[..., 0] = np.arange(16).reshape(4, 4)
    image[..., 1] = 7  # constant channel
    image[..., 2] = np.arange(16).reshape(4, 4) * 10
    for fn in (minmax_normalize, standardize):
        out = fn(image)
        assert out.shape == (4, 4, 3) and out.dtype == np.float32
        np.testing.assert_array_equal(out[..., 1], 0.0)
        np.testing.assert_allclose(out[..., 0], out[..., 2], atol=1e-6)  # scale-free
        assert np.all(np.isfinite(out))


@pytest.mark.parametrize("fn", [percentile_normalize, standardize, minmax_normalize])
def test_constant_images_give_zeros(fn):
    for value, dtype in ((0, np.uint8), (37, np.uint16), (-5, np.int32), (2.5, np.float64)):
        out = fn(np.full((5, 6), value, dtype))
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, 0.0)


@pytest.mark.parametrize("fn", [percentile_normalize, standardize, minmax_normalize,
                                to_grayscale, prepare_image])
def test_bad_images_raise(fn):
    nan = np.ones((4, 4))
    nan[1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        fn(nan)
    inf = np.ones((4, 4), np.float32)
    inf[0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        fn(inf)
    with pytest.raises(ValueError, match="dtype bool"):
        fn(np.ones((4, 4), bool))
    with pytest.raises(ValueError, match="empty"):
        fn(np.ones((0, 4)))


def test_float64_beyond_float32_is_an_error():
    with pytest.raises(ValueError, match="overflow float32"):
        minmax_normalize(np.array([[0.0, 1e300]]))


def test_grayscale_and_colour_detection():
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[...] = (100, 200, 50)
    # 0.299 * 100 + 0.587 * 200 + 0.114 * 50 = 153
    np.testing.assert_allclose(to_grayscale(rgb), 153.0, rtol=1e-6)
    rgba = np.concatenate([rgb, np.full((2, 2, 1), 9, np.uint8)], -1)
    np.testing.assert_allclose(to_grayscale(rgba), 153.0, rtol=1e-6)
    assert to_grayscale(np.ones((3, 4, 1), np.uint16)).shape == (3, 4)
    assert is_color(rgb) and is_color(rgba)
    assert not is_color(np.repeat(np.arange(4).reshape(2, 2, 1), 3, axis=2))
    assert not is_color(np.ones((2, 2)))
    with pytest.raises(ValueError, match="expected HxW or HxWxC"):
        to_grayscale(np.ones((2, 2, 5)))


def test_prepare_image_numbers_are_pinned():
    # A model is trained with these settings: percentiles 1 / 99.8, clip to [0, 1].
    image = np.arange(100, dtype=np.uint8).reshape(10, 10)
    out = prepare_image(image)
    assert out.shape == (10, 10, 1) and out.dtype == np.float32
    # Percentile 1 of 0..99 is 0.99, percentile 99.8 is 98.802.
    np.testing.assert_allclose(out[5, 0, 0], (50 - 0.99) / (98.802 - 0.99), rtol=1e-5)
    assert out[0, 0, 0] == 0.0 and out[9, 9, 0] == 1.0


def test_prepare_image_inverts_brightfield_and_histology():
    dark_background = np.zeros((8, 8), np.uint8)
    dark_background[2:4, 2:4] = 200  # bright nucleus
    light_background = 255 - dark_background  # dark nucleus on a light background
    fluo = prepare_image(dark_background)
    bright = prepare_image(light_background)
    assert fluo[3, 3, 0] == 1.0 and fluo[0, 0, 0] == 0.0
    assert bright[3, 3, 0] == 1.0 and bright[0, 0, 0] == 0.0  # inverted: nucleus bright
    assert prepare_image(light_background, invert=False)[3, 3, 0] == 0.0
    he = np.zeros((8, 8, 3), np.uint8)
    he[...] = (230, 200, 220)
    he[2:4, 2:4] = (80, 40, 120)  # dark purple nucleus
    out = prepare_image(he)
    assert out.shape == (8, 8, 1) and out[3, 3, 0] > out[0, 0, 0]
    rgb = prepare_image(he, channels=3)
    assert rgb.shape == (8, 8, 3) and rgb.dtype == np.float32
    assert prepare_image(dark_background, channels=3).shape == (8, 8, 3)


def test_prepare_image_rejects_bad_arguments():
    with pytest.raises(ValueError, match="expected HxW or HxWxC"):
        prepare_image(np.zeros((1, 8, 8, 1)))
    with pytest.raises(ValueError, match="channels must be 1 or 3"):
        prepare_image(np.zeros((8, 8)), channels=2)
    with pytest.raises(ValueError, match="invert"):
        prepare_image(np.zeros((8, 8)), invert="sometimes")
