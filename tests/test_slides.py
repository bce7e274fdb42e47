"""Segmenter.segment_large: block by block, the whole image's labels.

The mosaic is made of 256x256 fluorescence images of ``val/``; blocks of 512
pixels cut it into 9 to 16 blocks, so many nuclei lie near block seams.
"""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

import nuclib
from nuclib.data.io import read_image
from nuclib.metrics import matching
from nuclib.slides import image_levels, zoom_taps

TILE = 256


@pytest.fixture(scope="module")
def seg():
    return nuclib.load_pretrained("dsb-3class")


def _mosaic(dsb_root, side: int) -> np.ndarray:
    with open(dsb_root / "manifest.csv") as file:
        ids = [r["id"] for r in csv.DictReader(file) if r["split"] == "val"
               and r["modality"] == "fluorescence" and (r["height"], r["width"]) == ("256", "256")]
    k = -(-side // TILE)
    tiles = [read_image(dsb_root / "val" / "images" / f"{i}.png", as_gray=True) for i in ids[:k * k]]
    rows = [np.concatenate(tiles[r * k:(r + 1) * k], axis=1) for r in range(k)]
    return np.ascontiguousarray(np.concatenate(rows)[:side, :side])


@pytest.fixture(scope="module")
def mosaic(dsb_root) -> np.ndarray:
    return _mosaic(dsb_root, 768)


def _assert_same(whole, blocks) -> None:
    assert blocks.dtype == np.uint32 and blocks.shape == whole.shape
    assert matching(whole, blocks, 0.9).accuracy >= 0.99
    np.testing.assert_array_equal(np.unique(blocks), np.arange(blocks.max() + 1))


def test_blocks_give_the_whole_image_labels_at_zoom_1_from_a_memmap(seg, mosaic, tmp_path):
    np.save(tmp_path / "slide.npy", mosaic)
    out = np.lib.format.open_memmap(tmp_path / "labels.npy", mode="w+", dtype=np.uint32,
                                    shape=mosaic.shape)
    result = seg.segment_large(np.load(tmp_path / "slide.npy", mmap_mode="r"), diameter=20,
                               block_size=640, min_overlap=40, context=24, out=out,
                               progress=False)
    assert result is out
    whole = seg.segment(mosaic, diameter=20, progress=False)
    assert whole.max() > 100
    _assert_same(whole, np.asarray(out))


def test_blocks_give_the_whole_image_labels_at_a_non_integer_zoom(seg, mosaic):
    diameter = 13.5  # zoom 20 / 13.5 = 1.48
    whole = seg.segment(mosaic, diameter=diameter, progress=False)
    blocks = seg.segment_large(mosaic, diameter=diameter, block_size=512, min_overlap=40,
                               context=24, progress=False)
    assert whole.max() > 100
    _assert_same(whole, blocks)


def test_a_shrinking_zoom_and_an_estimated_diameter_too(seg, dsb_root):
    # Nuclei 1.6 times larger: the model shrinks the image (area weights), and
    # the diameter is measured once, as segment measures it.
    big = cv2.resize(_mosaic(dsb_root, 512), (820, 820), interpolation=cv2.INTER_LINEAR)[:768, :768]
    whole = seg.segment(big, progress=False)
    blocks = seg.segment_large(big, block_size=900, min_overlap=48, context=24, progress=False)
    assert whole.max() > 30
    _assert_same(whole, blocks)


def test_a_block_too_small_for_the_context_is_refused_with_the_minimum(seg, mosaic):
    with pytest.raises(ValueError, match=r"block_size 256 is too small.*use block_size > \d+"):
        seg.segment_large(mosaic, diameter=20, block_size=256, progress=False)


@pytest.mark.parametrize("size, new_size", [(37, 61), (50, 85), (64, 128), (61, 37), (85, 50),
                                            (128, 64), (100, 33)])
def test_zoom_taps_compute_what_cv2_resize_computes(size, new_size, rng):
    image = rng.random((size, size + 3)).astype(np.float32)
    method = "area" if new_size < size else "linear"
    rows, cols = zoom_taps(size, new_size, method), zoom_taps(size + 3, new_size + 3, method)
    ours = np.zeros((new_size, new_size + 3), np.float32)
    horizontal = sum(image[:, cols[0][:, t]] * cols[1][:, t] for t in range(cols[0].shape[1]))
    ours = sum(horizontal[rows[0][:, t]] * rows[1][:, t, None] for t in range(rows[0].shape[1]))
    expected = cv2.resize(image, (new_size + 3, new_size), interpolation=(
        cv2.INTER_AREA if method == "area" else cv2.INTER_LINEAR))
    np.testing.assert_allclose(ours, expected, rtol=0, atol=2e-6)


def test_levels_of_a_small_image_are_its_own_percentiles(rng):
    image = rng.integers(0, 4000, (300, 200), dtype=np.uint16)
    levels = image_levels(image)
    assert levels.lo == (float(np.percentile(image.astype(np.float32), 1.0)),)
    assert levels.hi == (float(np.percentile(image.astype(np.float32), 99.8)),)


def test_levels_of_a_large_image_come_from_a_sample(rng):
    image = rng.normal(1000, 100, (3000, 2000)).astype(np.float32)
    levels = image_levels(image, max_samples=100_000)
    assert levels.lo[0] == pytest.approx(np.percentile(image, 1.0), rel=0.01)
    assert levels.hi[0] == pytest.approx(np.percentile(image, 99.8), rel=0.01)
    assert levels.invert is False
