"""Training targets from instance labels (nuclib.data.targets), on hand-made label arrays."""

from __future__ import annotations

import numpy as np
import pytest

from nuclib.data.targets import (binary, boundaries, expand_labels, remove_small,
                                 three_class)

# Two touching 3x3 squares (ids 1 and 2) in a 5x8 image.
SQUARES = np.array([[0, 0, 0, 0, 0, 0, 0, 0],
                    [0, 1, 1, 1, 2, 2, 2, 0],
                    [0, 1, 1, 1, 2, 2, 2, 0],
                    [0, 1, 1, 1, 2, 2, 2, 0],
                    [0, 0, 0, 0, 0, 0, 0, 0]], np.int32)

SQUARES_EXPECTED = {
    # Boundary = object pixels with a 4-neighbour of another id: the rings of
    # both squares, so columns 3 and 4 separate them; only the centres stay interior.
    "inner": [[0, 0, 0, 0, 0, 0, 0, 0],
              [0, 2, 2, 2, 2, 2, 2, 0],
              [0, 2, 1, 2, 2, 1, 2, 0],
              [0, 2, 2, 2, 2, 2, 2, 0],
              [0, 0, 0, 0, 0, 0, 0, 0]],
    # Both sides of every label change: the inner rings plus the background ring.
    "thick": [[0, 2, 2, 2, 2, 2, 2, 0],
              [2, 2, 2, 2, 2, 2, 2, 2],
              [2, 2, 1, 2, 2, 1, 2, 2],
              [2, 2, 2, 2, 2, 2, 2, 2],
              [0, 2, 2, 2, 2, 2, 2, 0]],
    # The background ring, plus the object pixels that touch the other object.
    "outer": [[0, 2, 2, 2, 2, 2, 2, 0],
              [2, 1, 1, 2, 2, 1, 1, 2],
              [2, 1, 1, 2, 2, 1, 1, 2],
              [2, 1, 1, 2, 2, 1, 1, 2],
              [0, 2, 2, 2, 2, 2, 2, 0]],
}

DOT = np.zeros((5, 5), np.int32)
DOT[2, 2] = 1
CROSS = np.array([[0, 0, 0, 0, 0],
                  [0, 0, 2, 0, 0],
                  [0, 2, 2, 2, 0],
                  [0, 0, 2, 0, 0],
                  [0, 0, 0, 0, 0]])
DOT_EXPECTED = {
    "inner": np.where(DOT > 0, 2, 0),   # a one-pixel nucleus is all boundary
    "thick": CROSS,                     # ... plus its four background neighbours
    "outer": np.where(DOT > 0, 1, CROSS),  # the ring only; the pixel stays interior
}


@pytest.mark.parametrize("mode", ["inner", "thick", "outer"])
@pytest.mark.parametrize("dtype", [np.int32, np.uint16, np.int64])
def test_two_touching_squares(mode, dtype):
    out = three_class(SQUARES.astype(dtype), boundary=mode)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, SQUARES_EXPECTED[mode])
    # Touching nuclei are separated: no interior pixel of 1 touches one of 2.
    interior = np.where(out == 1, SQUARES, 0)
    assert not np.any((interior[:, :-1] > 0) & (interior[:, 1:] > 0)
                      & (interior[:, :-1] != interior[:, 1:]))


@pytest.mark.parametrize("mode", ["inner", "thick", "outer"])
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_one_pixel_object(mode, dtype):
    np.testing.assert_array_equal(three_class(DOT.astype(dtype), boundary=mode), DOT_EXPECTED[mode])


@pytest.mark.parametrize("mode", ["inner", "thick", "outer"])
def test_empty_image(mode):
    empty = np.zeros((4, 6), np.int32)
    np.testing.assert_array_equal(three_class(empty, boundary=mode), 0)
    one_hot = three_class(empty, boundary=mode, one_hot=True)
    assert one_hot.shape == (4, 6, 3) and one_hot.dtype == np.float32
    np.testing.assert_array_equal(one_hot.reshape(-1, 3), [[1, 0, 0]] * 24)
    np.testing.assert_array_equal(binary(empty), 0)


def test_one_hot_matches_classes():
    classes = three_class(SQUARES, boundary="inner")
    one_hot = three_class(SQUARES, boundary="inner", one_hot=True)
    np.testing.assert_array_equal(one_hot.argmax(-1), classes)
    np.testing.assert_array_equal(one_hot.sum(-1), 1.0)


def test_width_two_inner_boundary_stays_inside():
    labels = np.zeros((7, 7), np.int32)
    labels[1:6, 1:6] = 4
    out = three_class(labels, boundary="inner", width=2)
    expected = np.zeros((7, 7), np.uint8)
    expected[1:6, 1:6] = 2   # two rings of a 5x5 square ...
    expected[3, 3] = 1       # ... leave only the centre as interior
    np.testing.assert_array_equal(out, expected)
    thick = boundaries(labels, mode="thick", width=2)
    # The thick boundary grows both ways: here everything but the centre.
    np.testing.assert_array_equal(thick, expected != 1)


def test_expand_before_boundary_joins_nuclei_across_a_gap():
    labels = np.array([[0, 0, 0, 0, 0, 0, 0, 0],
                       [0, 1, 1, 0, 0, 2, 2, 0],
                       [0, 1, 1, 0, 0, 2, 2, 0],
                       [0, 0, 0, 0, 0, 0, 0, 0]], np.int32)
    np.testing.assert_array_equal(expand_labels(labels, 1),
                                  [[0, 1, 1, 0, 0, 2, 2, 0],
                                   [1, 1, 1, 1, 2, 2, 2, 2],
                                   [1, 1, 1, 1, 2, 2, 2, 2],
                                   [0, 1, 1, 0, 0, 2, 2, 0]])
    np.testing.assert_array_equal(three_class(labels, boundary="inner"),
                                  np.where(labels > 0, 2, 0))  # 2x2 objects: all boundary
    np.testing.assert_array_equal(three_class(labels, boundary="inner", expand=1),
                                  [[0, 2, 2, 0, 0, 2, 2, 0],
                                   [2, 1, 1, 2, 2, 1, 1, 2],
                                   [2, 1, 1, 2, 2, 1, 1, 2],
                                   [0, 2, 2, 0, 0, 2, 2, 0]])
    np.testing.assert_array_equal(expand_labels(labels, 0), labels)


def test_min_size_drops_tiny_objects_first():
    labels = SQUARES.copy()
    labels[0, 7] = 5  # a one-pixel speck
    np.testing.assert_array_equal(remove_small(labels, 2), SQUARES)
    np.testing.assert_array_equal(three_class(labels, boundary="inner", min_size=2),
                                  SQUARES_EXPECTED["inner"])
    np.testing.assert_array_equal(binary(labels, min_size=2), (SQUARES > 0).astype(np.uint8))
    assert binary(labels)[0, 7] == 1
    with_ignore = np.array([[-1, 0, 3, 3, 7]])
    np.testing.assert_array_equal(remove_small(with_ignore, 2), [[-1, 0, 3, 3, 0]])


def test_boundaries_are_invariant_to_relabelling():
    shuffled = np.select([SQUARES == 1, SQUARES == 2], [900, 17], 0)
    for mode in ("inner", "thick", "outer"):
        np.testing.assert_array_equal(boundaries(shuffled, mode=mode),
                                      boundaries(SQUARES, mode=mode))


def test_bad_labels_and_arguments_raise():
    with pytest.raises(ValueError, match="expected an HxW"):
        three_class(np.zeros((2, 4, 4), np.int32))
    with pytest.raises(ValueError, match="dtype float"):
        three_class(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="unknown boundary mode"):
        three_class(SQUARES, boundary="subpixel")
    with pytest.raises(ValueError, match="width"):
        three_class(SQUARES, width=0)
    with pytest.raises(ValueError, match="expand"):
        three_class(SQUARES, expand=-1)
    assert three_class(SQUARES[..., None], boundary="inner").shape == SQUARES.shape
