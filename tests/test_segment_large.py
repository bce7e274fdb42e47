"""Block-wise segmentation of large images: every object found once, stitched exactly."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import ndimage
from skimage.draw import disk
from skimage.measure import label

from nuclib.postprocess.tiling import segment_dask, segment_large

N_DISKS = 300
SHAPE = (600, 700)
BLOCK, OVERLAP = 128, 32  # cores of 64 px: dozens of blocks, many disks cut by them


def _threshold_label(block: np.ndarray) -> np.ndarray:
    return label(block > 100)


@pytest.fixture(scope="module")
def disks() -> np.ndarray:
    """SHAPE uint8 image of N_DISKS separate disks (radius 3..11, 200 on 0)."""
    rng = np.random.default_rng(7)
    image = np.zeros(SHAPE, np.uint8)
    taken = np.zeros(SHAPE, bool)
    drawn = 0
    while drawn < N_DISKS:
        r, cy, cx = rng.integers(3, 12), rng.integers(0, SHAPE[0]), rng.integers(0, SHAPE[1])
        if taken[disk((cy, cx), r + 2, shape=SHAPE)].any():  # keep a gap: no touching disks
            continue
        taken[disk((cy, cx), r + 2, shape=SHAPE)] = True
        image[disk((cy, cx), r, shape=SHAPE)] = 200
        drawn += 1
    return image


def _best_iou(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """For each object of ``truth`` (1..n), the IoU with its best-overlapping ``pred`` object."""
    n_true, n_pred = int(truth.max()), int(pred.max())
    both = (truth > 0) & (pred > 0)
    pairs = np.bincount(truth[both].astype(np.int64) * (n_pred + 1) + pred[both],
                        minlength=(n_true + 1) * (n_pred + 1)).reshape(n_true + 1, n_pred + 1)
    area_true = np.bincount(truth.ravel(), minlength=n_true + 1)
    area_pred = np.bincount(pred.ravel(), minlength=n_pred + 1)
    iou = pairs / (area_true[:, None] + area_pred[None, :] - pairs)
    return iou[1:, 1:].max(axis=1)


def _assert_same_objects(truth: np.ndarray, pred: np.ndarray) -> None:
    assert pred.dtype == np.uint32
    assert int(truth.max()) == N_DISKS
    ids = np.unique(pred)
    np.testing.assert_array_equal(ids, np.arange(N_DISKS + 1))  # sequential 1..N, no extras
    assert np.all(_best_iou(truth, pred) >= 0.99)


def test_disks_straddle_block_borders(disks):
    # The test is only meaningful if many objects are cut by the 64 px cores.
    core = BLOCK - 2 * OVERLAP
    objects = ndimage.find_objects(label(disks > 100))
    cut = [s for s in objects if any(a.start // core != (a.stop - 1) // core for a in s)]
    assert len(cut) > 50


def test_blockwise_finds_the_same_objects_as_whole_image(disks):
    blockwise = segment_large(disks, _threshold_label, block_size=BLOCK, min_overlap=OVERLAP,
                              progress=False)
    _assert_same_objects(label(disks > 100), np.asarray(blockwise))


def test_context_makes_a_neighbourhood_segment_fn_exact(disks):
    # A blur needs 8 px of context (sigma 2, truncate 4): with it, blocks match.
    def blur_label(block):
        return label(ndimage.gaussian_filter(block.astype(np.float32), 2) > 100)

    blockwise = segment_large(disks, blur_label, block_size=BLOCK + 16, min_overlap=OVERLAP,
                              context=8, progress=False)
    truth = blur_label(disks)
    assert truth.max() == N_DISKS
    _assert_same_objects(truth, blockwise)


def test_memmap_in_and_out_on_disk(disks, tmp_path):
    image = np.lib.format.open_memmap(tmp_path / "image.npy", mode="w+", dtype=np.uint8,
                                      shape=SHAPE)
    image[:] = disks
    image.flush()
    out = np.lib.format.open_memmap(tmp_path / "labels.npy", mode="w+", dtype=np.uint32,
                                    shape=SHAPE)
    out[:] = 7  # stale contents must be overwritten, not mixed in
    result = segment_large(np.load(tmp_path / "image.npy", mmap_mode="r"), _threshold_label,
                           block_size=BLOCK, min_overlap=OVERLAP, out=out, progress=False)
    assert result is out
    out.flush()
    _assert_same_objects(label(disks > 100), np.load(tmp_path / "labels.npy"))


def test_zarr_in_and_out(disks):
    zarr = pytest.importorskip("zarr")
    image = zarr.create_array(store={}, shape=SHAPE, chunks=(100, 100), dtype="uint8")
    image[:] = disks
    out = zarr.create_array(store={}, shape=SHAPE, chunks=(128, 128), dtype="uint32")
    segment_large(image, _threshold_label, block_size=BLOCK, min_overlap=OVERLAP, out=out,
                  progress=False)
    _assert_same_objects(label(disks > 100), out[:])


def test_channels_last_image(disks):
    rgb = np.stack([disks, np.zeros_like(disks), disks], axis=-1)
    labels = segment_large(rgb, lambda b: label(b[..., 0] > 100), block_size=BLOCK,
                           min_overlap=OVERLAP, progress=False)
    _assert_same_objects(label(disks > 100), labels)


def test_dask_map_overlap_gives_the_same_objects(disks):
    da = pytest.importorskip("dask.array")
    darr = da.from_array(disks, chunks=(90, 110))
    labels = segment_dask(darr, _threshold_label, min_overlap=OVERLAP, progress=False,
                          blocks_per_compute=5, scheduler="synchronous")
    _assert_same_objects(label(disks > 100), labels)


@pytest.fixture
def long_bar() -> np.ndarray:
    image = np.zeros((300, 300), np.uint8)
    image[50:250, 100:120] = 1  # 200 px tall: much larger than the 32 px overlap
    image[10:20, 10:20] = 1
    return image


def test_object_larger_than_overlap_warns_and_is_not_split(long_bar):
    with pytest.warns(RuntimeWarning, match="larger than min_overlap=32"):
        labels = segment_large(long_bar, label, block_size=BLOCK, min_overlap=OVERLAP,
                               progress=False)
    # Never two ids for one object: the bar keeps one id (possibly truncated).
    assert len(np.unique(labels[50:250, 100:120])) <= 2
    assert labels.max() == 2


def test_object_larger_than_overlap_can_raise(long_bar):
    with pytest.raises(ValueError, match="larger than min_overlap=32"):
        segment_large(long_bar, label, block_size=BLOCK, min_overlap=OVERLAP,
                      on_large="raise", progress=False)


def test_dask_reports_large_objects_too(long_bar):
    da = pytest.importorskip("dask.array")
    with pytest.raises(ValueError, match="larger than min_overlap=32"):
        segment_dask(da.from_array(long_bar, chunks=64), label, min_overlap=OVERLAP,
                     on_large="raise", progress=False, scheduler="synchronous")


def test_large_object_inside_one_block_is_fine():
    image = np.zeros((300, 300), np.uint8)
    image[40:100, 40:100] = 1  # 60 px > overlap, but within one block's core
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        labels = segment_large(image, label, block_size=256, min_overlap=32, progress=False)
    np.testing.assert_array_equal(labels, label(image))


@pytest.mark.parametrize("shape", [(2, 30, 30, 1), (30,)])
def test_rejects_wrong_number_of_dimensions(shape):
    with pytest.raises(ValueError, match=rf"{len(shape)} dimensions .*expected HxW or HxWxC"):
        segment_large(np.zeros(shape), label, progress=False)


def test_rejects_bad_settings_and_outputs(disks):
    with pytest.raises(ValueError, match="leaves no core"):
        segment_large(disks, label, block_size=64, min_overlap=32, progress=False)
    with pytest.raises(ValueError, match="out has shape"):
        segment_large(disks, label, out=np.zeros((5, 5), np.uint32), progress=False)
    with pytest.raises(ValueError, match="integer label dtype"):
        segment_large(disks, label, out=np.zeros(SHAPE, np.float32), progress=False)
    with pytest.raises(ValueError, match="labels of a block: shape .599, 700., but "
                                         ".600, 700. was expected"):
        segment_large(disks, lambda b: label(b)[1:], progress=False)
    with pytest.raises(ValueError, match="dtype float64; expected integer instance ids"):
        segment_large(disks, lambda b: b.astype(float), progress=False)
    with pytest.raises(ValueError, match="unknown on_large"):
        segment_large(disks, label, on_large="maybe", progress=False)
