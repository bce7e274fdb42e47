"""Nucleus size: measuring it and zooming images and labels to a diameter."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.draw import disk

from nuclib.data.scale import (median_diameter, rescale_image, rescale_labels, rescale_pair,
                               scale_for_diameter, scaled_shape)


def disks(shape, centres, radius):
    labels = np.zeros(shape, np.int32)
    for i, centre in enumerate(centres, start=1):
        labels[disk(centre, radius, shape=shape)] = i
    return labels


def test_median_diameter_of_squares_is_the_equal_area_circle():
    labels = np.zeros((40, 40), np.int32)
    labels[0:2, 0:2] = 1      # area 4
    labels[10:20, 10:20] = 2  # area 100 (the median of 4, 100, 400)
    labels[20:40, 20:40] = 3  # area 400
    assert median_diameter(labels) == pytest.approx(2 * math.sqrt(100 / math.pi))
    assert median_diameter(labels, min_area=5) == pytest.approx(2 * math.sqrt(250 / math.pi))


def test_median_diameter_of_disks_is_their_diameter():
    labels = disks((100, 100), [(20, 20), (20, 70), (70, 45)], radius=10)
    assert median_diameter(labels) == pytest.approx(20, rel=0.03)


def test_median_diameter_without_objects_is_nan():
    assert math.isnan(median_diameter(np.zeros((5, 5), np.int32)))


@pytest.mark.parametrize("labels, match", [
    (np.zeros((4, 4), np.float32), "integer"),
    (np.zeros((4, 4, 2), np.int32), "2-D"),
    (-np.ones((4, 4), np.int32), "negative"),
])
def test_median_diameter_rejects_bad_labels(labels, match):
    with pytest.raises(ValueError, match=match):
        median_diameter(labels)


@pytest.mark.parametrize("diameter, target, expected", [
    (10, 20, 2.0), (40, 20, 0.5), (20, 20, 1.0), (20.5, 20, 1.0),  # within 5 %: no zoom
    (1, 20, 4.0), (500, 20, 0.25),                                  # clipped
    (float("nan"), 20, 1.0), (None, 20, 1.0), (0, 20, 1.0), (10, None, 1.0),
])
def test_scale_for_diameter(diameter, target, expected):
    assert scale_for_diameter(diameter, target) == pytest.approx(expected)


def test_scaled_shape_rounds_and_keeps_one_pixel():
    assert scaled_shape((100, 51), 0.5) == (50, 26)
    assert scaled_shape((3, 3), 0.01) == (1, 1)


def test_zooming_labels_by_two_doubles_every_side_and_keeps_huge_ids():
    labels = np.array([[0, 2**30], [7, 7]], np.int64)
    out = rescale_labels(labels, 2.0)
    assert out.tolist() == [[0, 0, 2**30, 2**30], [0, 0, 2**30, 2**30],
                            [7, 7, 7, 7], [7, 7, 7, 7]]
    assert rescale_labels(out, shape=(2, 2)).tolist() == labels.tolist()


def test_zoom_changes_the_measured_diameter_by_the_factor():
    labels = disks((120, 120), [(30, 30), (30, 90), (90, 60)], radius=9)
    image = (labels > 0).astype(np.float32)[..., None]
    for factor in (0.5, 2.0, 2.5):
        zoomed_image, zoomed = rescale_pair(image, labels, factor)
        assert zoomed.shape == zoomed_image.shape[:2] == scaled_shape(labels.shape, factor)
        assert sorted(np.unique(zoomed)) == [0, 1, 2, 3]
        assert median_diameter(zoomed) == pytest.approx(factor * median_diameter(labels),
                                                        rel=0.06)


@pytest.mark.parametrize("channels", [None, 1, 3, 6])
def test_rescale_image_keeps_channels_and_constant_values(channels):
    shape = (30, 40) if channels is None else (30, 40, channels)
    image = np.full(shape, 0.25, np.float32)
    for factor in (0.3, 1.7):
        out = rescale_image(image, factor)
        assert out.shape == scaled_shape(shape, factor) + shape[2:]
        assert out.dtype == np.float32
        np.testing.assert_allclose(out, 0.25, atol=1e-6)


def test_shrinking_averages_instead_of_aliasing():
    stripes = np.tile(np.array([0.0, 1.0], np.float32), (8, 8))  # 8 x 16, period 2
    np.testing.assert_allclose(rescale_image(stripes, 0.5), 0.5, atol=1e-6)


def test_rescale_pair_checks_its_inputs():
    with pytest.raises(ValueError, match="differ in size"):
        rescale_pair(np.zeros((4, 4, 1)), np.zeros((4, 5), np.int32), 2.0)
    for factor in (0, -1, float("nan")):
        with pytest.raises(ValueError, match="positive"):
            rescale_pair(np.zeros((4, 4, 1)), np.zeros((4, 4), np.int32), factor)
