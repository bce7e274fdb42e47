"""Property-based tests (hypothesis): readers, matching, tiling, stitching, post-processing.

Each test states a property that must hold for every input, and hypothesis
searches small random inputs for a counter-example (and shrinks the one it
finds). Settings stay small (a few dozen examples, no deadline) so the file
runs in well under a minute.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image
from scipy import ndimage

from nuclib.data.io import read_image, read_labels
from nuclib.metrics.matching import matching
from nuclib.postprocess.distance import distance_to_labels
from nuclib.postprocess.instances import (binary_to_labels, otsu_labels, remove_small_instances,
                                          three_class_to_labels)
from nuclib.postprocess.star import star_to_labels
from nuclib.postprocess.stitching import segment_large

SMALL = settings(max_examples=30, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _sequential(labels: np.ndarray) -> bool:
    """Ids are exactly 1..N (0 is background)."""
    ids = np.unique(labels)
    ids = ids[ids != 0]
    return np.array_equal(ids, np.arange(1, len(ids) + 1))


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """The same objects, whatever their ids: background equal and ids paired one-to-one."""
    if not np.array_equal(a > 0, b > 0):
        return False
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]), axis=1)
    return len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1]))


@st.composite
def label_images(draw, max_side=24, max_ids=6, shape=None):
    """Blocky label images (3x3 cells) with touching objects and gaps in the ids."""
    if shape is None:
        shape = (draw(st.integers(3, max_side)), draw(st.integers(3, max_side)))
    coarse_shape = (-(-shape[0] // 3), -(-shape[1] // 3))
    coarse = draw(arrays(np.int32, coarse_shape, elements=st.integers(0, max_ids)))
    return np.kron(coarse, np.ones((3, 3), np.int32))[:shape[0], :shape[1]]


# -- readers ---------------------------------------------------------------------------------
IMAGE_DTYPES = ["uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64",
                "float16", "float32", "float64", "bool"]
FORMATS = {  # suffix → dtypes its writer stores losslessly
    ".tif": IMAGE_DTYPES, ".png": ["uint8", "uint16"], ".bmp": ["uint8"]}


@st.composite
def stored_images(draw):
    suffix = draw(st.sampled_from(sorted(FORMATS)))
    dtype = np.dtype(draw(st.sampled_from(FORMATS[suffix])))
    channels = draw(st.sampled_from([1, 3] if suffix == ".bmp" else [1, 3, 4]))
    if dtype == bool:
        channels = 1
    shape = (draw(st.integers(1, 12)), draw(st.integers(1, 12)))
    shape += (channels,) if channels > 1 else ()
    if dtype == bool:
        elements = st.booleans()
    elif dtype.kind == "f":
        elements = st.floats(-1e4, 1e4, width=min(dtype.itemsize * 8, 64))
    else:
        info = np.iinfo(dtype)
        elements = st.integers(int(info.min), int(info.max))
    return suffix, draw(arrays(dtype, shape, elements=elements))


def _write_independently(path: Path, image: np.ndarray) -> None:
    """Write with the libraries themselves (not nuclib's writer), RGB(A) as RGB(A)."""
    if path.suffix == ".tif":
        if image.ndim == 3:
            extra = ["unassalpha"] if image.shape[2] == 4 else []
            tifffile.imwrite(path, image, photometric="rgb", extrasamples=extra)
        else:
            tifffile.imwrite(path, image, photometric="minisblack")
        return
    out = image
    if image.ndim == 3:
        out = cv2.cvtColor(image, cv2.COLOR_RGB2BGR if image.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
    assert cv2.imwrite(str(path), out)


@SMALL
@given(stored_images())
def test_reader_returns_every_stored_value_of_every_dtype(case):
    suffix, image = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"x{suffix}"
        _write_independently(path, image)
        back = read_image(path)
    expected = image[..., :3] if image.ndim == 3 else image  # alpha dropped
    if image.dtype == bool:  # bilevel → 0 / 255
        expected = expected.astype(np.uint8) * 255
    assert back.dtype == expected.dtype and back.dtype.isnative
    np.testing.assert_array_equal(back, expected)


@st.composite
def unreadable_images(draw):
    """Files nuclib cannot interpret, and the words its error must contain."""
    kind = draw(st.sampled_from(["complex", "nan", "channels", "stack", "frames", "series"]))
    h, w = draw(st.integers(2, 10)), draw(st.integers(2, 10))
    if kind == "complex":
        dtype = draw(st.sampled_from(["complex64", "complex128"]))
        return kind, ".tif", np.ones((h, w), dtype) * 1j, "complex pixels"
    if kind == "nan":
        image = np.zeros((h, w), draw(st.sampled_from(["float16", "float32", "float64"])))
        image.flat[draw(st.integers(0, h * w - 1))] = draw(st.sampled_from([np.nan, np.inf]))
        return kind, ".tif", image, "NaN and .* infinite pixels"
    if kind == "channels":
        c = draw(st.sampled_from([2, 4, 5]))
        return kind, ".tif", np.zeros((h, w, c), np.uint16), f"has {c} channels"
    if kind == "stack":
        return kind, ".tif", np.zeros((draw(st.integers(2, 4)), h, w), np.uint8), "stack"
    if kind == "frames":
        return kind, draw(st.sampled_from([".gif", ".png"])), draw(st.integers(2, 4)), "frames"
    return kind, ".tif", np.zeros((h, w), np.uint8), "holds 2 images"


@SMALL
@given(unreadable_images())
def test_reader_refuses_what_it_cannot_interpret_and_names_it(case):
    kind, suffix, data, words = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"bad{suffix}"
        if kind == "frames":
            frames = [Image.fromarray(np.full((5, 6), 40 * i, np.uint8)) for i in range(data)]
            frames[0].save(path, save_all=True, append_images=frames[1:])
        elif kind == "channels":
            tifffile.imwrite(path, np.moveaxis(data, -1, 0), imagej=True,
                             metadata={"axes": "CYX"})
        elif kind == "stack":
            tifffile.imwrite(path, data, imagej=True, metadata={"axes": "ZYX"})
        elif kind == "series":
            tifffile.imwrite(path, data)
            tifffile.imwrite(path, data.astype(np.uint16), append=True)
        else:
            tifffile.imwrite(path, data)
        with pytest.raises(ValueError, match=f"bad{suffix}.*{words}"):
            read_image(path)


@SMALL
@given(labels=label_images(max_side=12, max_ids=9),
       dtype=st.sampled_from(["uint8", "uint16", "uint32", "int32", "int64", "uint64",
                              "float32"]),
       scale=st.sampled_from([1, 1000, 2**20]), suffix=st.sampled_from([".tif", ".png"]))
def test_labels_of_any_integer_width_read_back_as_int32(labels, dtype, scale, suffix):
    ids = labels.astype(np.int64) * scale
    info_max = np.iinfo(dtype).max if np.dtype(dtype).kind in "iu" else 2**24
    assume(ids.max() <= info_max)  # what the dtype (or float32, exactly) can hold
    if suffix == ".png":
        assume(dtype in ("uint8", "uint16"))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"lab{suffix}"
        stored = ids.astype(dtype)
        if suffix == ".png":
            assert cv2.imwrite(str(path), stored)
        else:
            tifffile.imwrite(path, stored)
        back = read_labels(path)
    assert back.dtype == np.int32
    np.testing.assert_array_equal(back, ids)


# -- matching --------------------------------------------------------------------------------
FIELDS = ("tp", "fp", "fn", "n_true", "n_pred")
SCORES = ("precision", "recall", "accuracy", "f1", "mean_true_score", "mean_matched_score",
          "panoptic_quality")


def _relabel(labels: np.ndarray, new_ids) -> np.ndarray:
    ids = np.unique(labels[labels > 0])
    lut = dict(zip(ids.tolist(), new_ids[:len(ids)]))
    out = np.zeros(labels.shape, np.int64)
    for old, new in lut.items():
        out[labels == old] = new
    return out


@SMALL
@given(data=st.data(), thresh=st.sampled_from([0.1, 0.3, 0.5, 0.75, 0.9]))
def test_matching_is_invariant_under_relabelling(data, thresh):
    shape = (data.draw(st.integers(3, 20)), data.draw(st.integers(3, 20)))
    y_true = data.draw(label_images(shape=shape))
    y_pred = data.draw(label_images(shape=shape))
    distinct = st.lists(st.integers(1, 2**31 - 1), min_size=7, max_size=7, unique=True)
    a = matching(y_true, y_pred, thresh=thresh)
    b = matching(_relabel(y_true, data.draw(distinct)), _relabel(y_pred, data.draw(distinct)),
                 thresh=thresh)
    for field in FIELDS:
        assert getattr(a, field) == getattr(b, field), field
    for field in SCORES:
        assert getattr(a, field) == pytest.approx(getattr(b, field), rel=1e-6, abs=1e-7), field


@SMALL
@given(data=st.data(), thresh=st.sampled_from([0.1, 0.3, 0.5, 0.75, 0.9]))
def test_matching_is_symmetric(data, thresh):
    shape = (data.draw(st.integers(3, 20)), data.draw(st.integers(3, 20)))
    y_true = data.draw(label_images(shape=shape))
    y_pred = data.draw(label_images(shape=shape))
    ab, ba = matching(y_true, y_pred, thresh=thresh), matching(y_pred, y_true, thresh=thresh)
    assert (ab.tp, ab.fp, ab.fn) == (ba.tp, ba.fn, ba.fp)
    assert (ab.n_true, ab.n_pred) == (ba.n_pred, ba.n_true)
    assert ab.precision == pytest.approx(ba.recall)
    for field in ("accuracy", "f1", "mean_matched_score", "panoptic_quality"):
        assert getattr(ab, field) == pytest.approx(getattr(ba, field), rel=1e-6, abs=1e-7)
    assert matching(y_true, y_true, thresh=thresh).accuracy == (1.0 if y_true.any() else 0.0)


# -- tiling ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_unet():
    from nuclib.models import unet

    return unet(input_shape=(None, None, 1), depth=2, filters=2)  # radius 23, stride 4


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(height=st.integers(8, 140), width=st.integers(8, 140),
       tile=st.integers(13, 36).map(lambda k: 4 * k), batch_size=st.sampled_from([1, 3]),
       seed=st.integers(0, 2**16))
def test_tiled_prediction_equals_untiled(tiny_unet, height, width, tile, batch_size, seed):
    from nuclib.postprocess.tiling import TiledInferencer

    image = np.random.default_rng(seed).random((height, width, 1), dtype=np.float32)
    inferencer = TiledInferencer(tiny_unet, tile_size=tile, batch_size=batch_size,
                                 progress=False)
    tiled = inferencer.predict(image)
    pad = [(0, -height % 4), (0, -width % 4), (0, 0)]
    whole = np.asarray(tiny_unet(np.pad(image, pad, mode="symmetric" if min(height, width) < 2
                                        else "reflect")[None], training=False))[0]
    assert tiled.shape == (height, width, 3)
    np.testing.assert_allclose(tiled, whole[:height, :width], atol=1e-5)


# -- stitching -------------------------------------------------------------------------------
@st.composite
def sparse_masks(draw):
    """Binary images of random rectangles, some touching or crossing block borders."""
    h, w = draw(st.integers(10, 160)), draw(st.integers(10, 160))
    mask = np.zeros((h, w), bool)
    for _ in range(draw(st.integers(0, 14))):
        y, x = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
        mask[y:y + draw(st.integers(1, 12)), x:x + draw(st.integers(1, 12))] = True
    return mask


@SMALL
@given(mask=sparse_masks(), min_overlap=st.integers(12, 30), core=st.integers(1, 60))
def test_stitching_neither_loses_nor_duplicates_objects(mask, min_overlap, core):
    whole, n = ndimage.label(mask)
    extents = [max(s.stop - s.start for s in sl) for sl in ndimage.find_objects(whole)]
    assume(max(extents, default=0) <= min_overlap)  # what the stitching guarantees
    blocks = segment_large(mask, lambda b: ndimage.label(b)[0], block_size=core + 2 * min_overlap,
                           min_overlap=min_overlap, on_large="raise", progress=False)
    assert int(blocks.max()) == n and _sequential(blocks)
    assert _same_partition(whole, blocks)


# -- post-processing -------------------------------------------------------------------------
@st.composite
def smooth_maps(draw, channels, shape=None):
    """``(H, W, channels)`` maps in [0, 1] that vary over a few pixels, as networks give."""
    h, w = shape or (draw(st.integers(4, 40)), draw(st.integers(4, 40)))
    cell = draw(st.sampled_from([2, 3, 5]))
    coarse = draw(arrays(np.float32, (-(-h // cell), -(-w // cell), channels),
                         elements=st.floats(0, 1, width=32)))
    maps = np.kron(coarse, np.ones((cell, cell, 1), np.float32))[:h, :w]
    return ndimage.uniform_filter(maps, size=(3, 3, 1)).astype(np.float32)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(4 * (x - x.max(axis=-1, keepdims=True)))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def _check_labels(labels, shape):
    assert labels.dtype == np.uint32 and labels.shape == shape
    assert _sequential(labels)


@SMALL
@given(maps=smooth_maps(3), min_size=st.integers(0, 20), dilation=st.integers(-1, 1),
       split=st.sampled_from([0.0, 1.0]), keep_unseeded=st.booleans())
def test_three_class_labels_are_sequential_uint32(maps, min_size, dilation, split,
                                                  keep_unseeded):
    labels = three_class_to_labels(_softmax(maps), min_size=min_size, dilation=dilation,
                                   seed_split_height=split, keep_unseeded=keep_unseeded)
    _check_labels(labels, maps.shape[:2])


@SMALL
@given(maps=smooth_maps(1), min_size=st.integers(0, 20), split=st.booleans())
def test_binary_and_otsu_labels_are_sequential_uint32(maps, min_size, split):
    _check_labels(binary_to_labels(maps[..., 0], min_size=min_size, split=split),
                  maps.shape[:2])
    _check_labels(otsu_labels(maps[..., 0], min_size=min_size, split=split), maps.shape[:2])


@SMALL
@given(maps=smooth_maps(4), min_size=st.integers(0, 20))
def test_distance_labels_are_sequential_uint32(maps, min_size):
    probs = np.concatenate([_softmax(maps[..., :3]), maps[..., 3:]], axis=-1)
    _check_labels(distance_to_labels(probs, min_size=min_size), maps.shape[:2])


@SMALL
@given(data=st.data(), min_size=st.integers(0, 10), grid=st.sampled_from([1, 2]))
def test_star_labels_are_sequential_uint32(data, min_size, grid):
    shape = (data.draw(st.integers(4, 32)), data.draw(st.integers(4, 32)))
    prob = data.draw(smooth_maps(1, shape))
    rays = data.draw(smooth_maps(8, shape)) * 6.0
    labels = star_to_labels(np.concatenate([prob, rays], axis=-1), min_size=min_size, grid=grid)
    _check_labels(labels, shape)


@SMALL
@given(labels=label_images(max_ids=9), min_size=st.integers(0, 30))
def test_removing_small_instances_renumbers_sequentially(labels, min_size):
    out = remove_small_instances(labels * 1000, min_size)
    _check_labels(out, labels.shape)
    sizes = np.bincount(out.ravel())[1:]
    assert (sizes >= min_size).all()
