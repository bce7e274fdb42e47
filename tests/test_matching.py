"""Tests for nuclib.metrics.matching: hand-made cases, properties, and StarDist as oracle."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from nuclib.data.io import read_labels
from nuclib.metrics import DatasetMatching, Matching, label_overlap, matching, matching_dataset

SCORE_FIELDS = ("fp", "tp", "fn", "precision", "recall", "accuracy", "f1", "n_true", "n_pred",
                "mean_true_score", "mean_matched_score", "panoptic_quality")


def disk(shape, center, radius, value=1, out=None):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    out = np.zeros(shape, np.uint16) if out is None else out
    out[(yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= radius ** 2] = value
    return out


def boxes(shape, *specs):
    """Label image with rectangles: specs are (value, row0, row1, col0, col1)."""
    out = np.zeros(shape, np.int32)
    for value, r0, r1, c0, c1 in specs:
        out[r0:r1, c0:c1] = value
    return out


# --- hand-made cases with exact answers -------------------------------------------------


def test_shifted_disks():
    # Radius-5 disks hold 81 pixels; shifted by 3 columns they share
    # 4 + 3*6 + 8 + 3*6 + 4 = 52 pixels (row by row), union 110: IoU = 26/55.
    y_true = disk((21, 24), (10, 10), 5)
    y_pred = disk((21, 24), (10, 13), 5, value=4)
    low, high = matching(y_true, y_pred, thresh=[0.45, 0.5])
    assert (low.tp, low.fp, low.fn) == (1, 0, 0)
    assert low.mean_matched_score == pytest.approx(26 / 55, abs=1e-7)
    assert low.panoptic_quality == pytest.approx(26 / 55, abs=1e-7)
    assert (high.tp, high.fp, high.fn) == (0, 1, 1)
    assert high.accuracy == 0.0 and high.mean_matched_score == 0.0
    assert matching(y_true, y_pred, criterion="iot").mean_true_score == pytest.approx(52 / 81,
                                                                                      abs=1e-7)


def test_shifted_squares_all_criteria():
    # 10x10 truth; a 10x5 prediction 2 rows lower has 8x5 = 40 pixels inside it
    y_true = boxes((20, 20), (1, 0, 10, 0, 10))          # 100 px
    y_pred = boxes((20, 20), (2, 2, 12, 0, 5))           # 50 px, 40 inside the truth
    assert matching(y_true, y_pred, 0.3).mean_matched_score == pytest.approx(
        40 / 110, abs=1e-7)
    iot = matching(y_true, y_pred, thresh=0.4, criterion="iot")
    iop = matching(y_true, y_pred, thresh=0.8, criterion="iop")
    assert (iot.tp, iot.mean_matched_score) == (1, pytest.approx(0.4, abs=1e-7))
    assert (iop.tp, iop.mean_matched_score) == (1, pytest.approx(0.8, abs=1e-7))
    assert matching(y_true, y_pred, thresh=0.81, criterion="iop").tp == 0


def test_merge():
    # two 4x4 nuclei, one 4x9 prediction over both (and the gap): IoU 16/36 each
    y_true = boxes((6, 12), (1, 0, 4, 0, 4), (2, 0, 4, 5, 9))
    y_pred = boxes((6, 12), (9, 0, 4, 0, 9))
    strict = matching(y_true, y_pred, thresh=0.5)
    assert (strict.tp, strict.fp, strict.fn, strict.n_true, strict.n_pred) == (0, 1, 2, 2, 1)
    loose = matching(y_true, y_pred, thresh=0.4, report_matches=True)
    assert (loose.tp, loose.fp, loose.fn) == (1, 0, 1)
    assert loose.mean_matched_score == pytest.approx(4 / 9, abs=1e-7)
    assert loose.mean_true_score == pytest.approx(2 / 9, abs=1e-7)
    assert loose.precision == 1.0 and loose.recall == 0.5
    assert loose.accuracy == 0.5 and loose.f1 == pytest.approx(2 / 3)
    assert loose.matched_pairs[0][1] == 9 and loose.matched_pairs[0][0] in (1, 2)


def test_split_at_exactly_half():
    # a 4x8 nucleus predicted as two 4x4 halves: IoU exactly 0.5 each, and >= counts
    y_true = boxes((4, 8), (1, 0, 4, 0, 8))
    y_pred = boxes((4, 8), (1, 0, 4, 0, 4), (2, 0, 4, 4, 8))
    m = matching(y_true, y_pred, thresh=0.5)
    assert (m.tp, m.fp, m.fn) == (1, 1, 0)
    assert m.mean_matched_score == 0.5
    assert m.panoptic_quality == pytest.approx(0.5 / 1.5)
    assert matching(y_true, y_pred, thresh=0.51).tp == 0


def test_empty_prediction():
    y_true = boxes((8, 8), (1, 0, 3, 0, 3), (2, 5, 8, 5, 8))
    m = matching(y_true, np.zeros_like(y_true))
    assert (m.tp, m.fp, m.fn, m.n_true, m.n_pred) == (0, 0, 2, 2, 0)
    assert (m.precision, m.recall, m.accuracy, m.f1, m.panoptic_quality) == (0, 0, 0, 0, 0)


def test_empty_truth():
    y_pred = boxes((8, 8), (5, 0, 3, 0, 3))
    m = matching(np.zeros_like(y_pred), y_pred)
    assert (m.tp, m.fp, m.fn, m.n_true, m.n_pred) == (0, 1, 0, 0, 1)
    assert m.mean_true_score == 0.0 and m.mean_matched_score == 0.0


@pytest.mark.parametrize("dtype", [np.uint8, np.int64])
def test_only_background_in_both(dtype):
    # StarDist's convention: nothing to find and nothing found scores 0, not NaN
    m = matching(np.zeros((5, 5), dtype), np.zeros((5, 5), dtype), thresh=[0.0, 0.5])
    for r in m:
        assert (r.tp, r.fp, r.fn, r.n_true, r.n_pred) == (0, 0, 0, 0, 0)
        assert r.accuracy == 0.0 and r.f1 == 0.0 and r.mean_true_score == 0.0


def test_non_sequential_and_huge_ids():
    y_true = boxes((10, 10), (3, 0, 4, 0, 4), (17, 5, 9, 5, 9), (1000, 0, 2, 6, 10))
    y_pred = boxes((10, 10), (5, 0, 4, 1, 4), (7, 5, 9, 5, 9)).astype(np.uint64)
    y_pred[0:2, 6:10] = 2**40  # far above the image size: the sorting path
    m = matching(y_true, y_pred, thresh=0.7, report_matches=True)
    assert (m.tp, m.fp, m.fn) == (3, 0, 0)
    assert m.matched_pairs == ((3, 5), (17, 7), (1000, 2**40))
    assert m.matched_scores == pytest.approx((0.75, 1.0, 1.0))
    overlap = label_overlap(y_true, y_pred)
    assert overlap.ids_true.tolist() == [3, 17, 1000]
    assert overlap.area_true.tolist() == [16, 16, 8]


def test_threshold_zero_counts_every_pair_like_stardist():
    y_true = boxes((6, 6), (1, 0, 2, 0, 2), (2, 4, 6, 4, 6))
    y_pred = boxes((6, 6), (1, 0, 2, 3, 5))
    m = matching(y_true, y_pred, thresh=0.0)
    assert (m.tp, m.fp, m.fn, m.mean_matched_score) == (1, 0, 1, 0.0)


def test_list_of_thresholds_and_record():
    y = boxes((6, 6), (1, 0, 3, 0, 3))
    out = matching(y, y, thresh=(0.5, 0.9))
    assert isinstance(out, list) and [r.thresh for r in out] == [0.5, 0.9]
    assert isinstance(out[0], Matching)
    with pytest.raises(AttributeError):
        out[0].tp = 5  # frozen
    record = out[0].as_dict()
    assert record["tp"] == 1 and "matched_pairs" not in record


@pytest.mark.parametrize("y_true, y_pred, message", [
    (np.zeros((4, 4), int), np.zeros((4, 5), int), "same shape"),
    (np.zeros((4, 4), float), np.zeros((4, 4), int), "y_true: dtype float64"),
    (np.zeros((4, 4), int), np.zeros((4, 4), bool), "label it first"),
    (np.zeros((4, 4), int), -np.ones((4, 4), int), "y_pred: negative ids"),
])
def test_bad_labels(y_true, y_pred, message):
    with pytest.raises(ValueError, match=message):
        matching(y_true, y_pred)


@pytest.mark.parametrize("kwargs, message", [
    ({"criterion": "dice"}, "unknown matching criterion 'dice'"),
    ({"thresh": 1.5}, "outside"),
    ({"thresh": []}, "empty"),
    ({"thresh": None}, "None"),
])
def test_bad_arguments(kwargs, message):
    y = np.ones((3, 3), np.uint8)
    with pytest.raises(ValueError, match=message):
        matching(y, y, **kwargs)


# --- properties ------------------------------------------------------------------------


def random_labels(rng, shape=(64, 64), n=25):
    """Touching random blobs: seeds grown over a smooth foreground."""
    seeds = np.zeros(shape, np.int32)
    seeds.flat[rng.choice(seeds.size, n, replace=False)] = np.arange(1, n + 1)
    fg = ndi.gaussian_filter(rng.random(shape), 2) > 0.48
    _, (iy, ix) = ndi.distance_transform_edt(seeds == 0, return_indices=True)
    return np.where(fg, seeds[iy, ix], 0)


def permute_ids(y, rng):
    ids = np.unique(y)[1:]
    lut = np.zeros(y.max() + 1, np.int64)
    lut[ids] = rng.permutation(ids) * 7 + 3  # also not sequential any more
    return lut[y]


def scores_of(m):
    return [getattr(m, f) for f in SCORE_FIELDS]


@pytest.mark.parametrize("criterion", ["iou", "iot", "iop"])
def test_id_permutation_does_not_change_scores(rng, criterion):
    thresholds = [0.1, 0.3, 0.5, 0.7]
    for _ in range(3):
        y_true = random_labels(rng)
        y_pred = ndi.shift(y_true, (1, 2), order=0)
        a = matching(y_true, y_pred, thresh=thresholds, criterion=criterion)
        b = matching(permute_ids(y_true, rng), permute_ids(y_pred, rng), thresh=thresholds,
                     criterion=criterion)
        for ma, mb in zip(a, b):
            assert (ma.tp, ma.fp, ma.fn, ma.n_true, ma.n_pred) == (mb.tp, mb.fp, mb.fn,
                                                                   mb.n_true, mb.n_pred)
            # scores are float32 sums (as in StarDist) taken in id order: equal to ~1e-7
            assert scores_of(ma) == pytest.approx(scores_of(mb), rel=1e-6)


@pytest.mark.parametrize("criterion", ["iou", "iot", "iop"])
def test_perfect_prediction_scores_one(rng, criterion):
    y = random_labels(rng)
    for m in matching(y, permute_ids(y, rng), thresh=[0.1, 0.5, 0.9, 1.0], criterion=criterion):
        assert m.tp == m.n_true == m.n_pred > 0 and m.fp == m.fn == 0
        assert (m.precision, m.recall, m.accuracy, m.f1) == (1.0, 1.0, 1.0, 1.0)
        assert (m.mean_true_score, m.mean_matched_score, m.panoptic_quality) == (1.0, 1.0, 1.0)


def test_swapping_truth_and_prediction_swaps_fp_and_fn(rng):
    y_true = random_labels(rng)
    y_pred = random_labels(rng)  # unrelated blobs: partial overlaps everywhere
    for t in (0.1, 0.3, 0.5):
        for crit, swapped in (("iou", "iou"), ("iot", "iop"), ("iop", "iot")):
            a = matching(y_true, y_pred, thresh=t, criterion=crit)
            b = matching(y_pred, y_true, thresh=t, criterion=swapped)
            assert (a.tp, a.fp, a.fn) == (b.tp, b.fn, b.fp)
            assert a.precision == b.recall and a.f1 == b.f1
            assert a.mean_matched_score == pytest.approx(b.mean_matched_score, abs=1e-6)


# --- StarDist as oracle ----------------------------------------------------------------

@pytest.fixture(scope="module")
def stardist_matching():
    return pytest.importorskip("stardist.matching")


def perturbations(y: np.ndarray) -> dict[str, np.ndarray]:
    """Eroded, dilated, shifted, merged and split versions of a label image."""
    from skimage.morphology import disk as footprint
    from skimage.morphology import erosion
    from skimage.segmentation import expand_labels

    ids = np.unique(y)[1:]
    merge = np.arange(y.max() + 1)
    merge[ids[1::2]] = ids[0::2][: len(ids[1::2])]  # every second nucleus joins its neighbour
    split = y.astype(np.int64)
    cols = np.arange(y.shape[1])[None, :]
    for i, sl in enumerate(ndi.find_objects(y), 1):
        if sl is not None:  # cut each nucleus at the middle column of its box
            middle = (sl[1].start + sl[1].stop) // 2
            split[sl][(y[sl] == i) & (cols[:, sl[1]] >= middle)] = y.max() + i
    return {"eroded": erosion(y, footprint(2)), "dilated": expand_labels(y, 3),
            "shifted": np.roll(y, (3, -2), axis=(0, 1)), "merged": merge[y], "split": split}


@pytest.fixture(scope="module")
def val_labels(dsb_root):
    files = sorted((dsb_root / "val" / "labels").glob("*.png"))[::8][:8]
    assert len(files) == 8
    return [read_labels(f) for f in files]


THRESHOLDS = [0.0, 0.1, 0.3, 0.5, 0.7, 0.9]


def assert_same(ours, theirs):
    for field in SCORE_FIELDS:
        assert getattr(ours, field) == pytest.approx(float(getattr(theirs, field)), abs=1e-12,
                                                     rel=0), field
    assert ours.thresh == theirs.thresh and ours.criterion == theirs.criterion


@pytest.mark.parametrize("criterion", ["iou", "iot", "iop"])
def test_matching_equals_stardist(stardist_matching, val_labels, criterion):
    checked = 0
    for y in val_labels:
        for kind, y_pred in perturbations(y).items():
            ours = matching(y, y_pred, thresh=THRESHOLDS, criterion=criterion,
                            report_matches=True)
            theirs = stardist_matching.matching(y, y_pred, thresh=THRESHOLDS,
                                                criterion=criterion, report_matches=True)
            for a, b in zip(ours, theirs, strict=True):
                assert_same(a, b)
                if a.thresh > 0:  # StarDist also lists assigned pairs below the threshold
                    assert a.matched_pairs == tuple(b.matched_pairs[i] for i in b.matched_tps)
                checked += 1
    assert checked == 8 * 5 * len(THRESHOLDS)


@pytest.mark.parametrize("by_image", [False, True])
@pytest.mark.parametrize("criterion", ["iou", "iop"])
def test_matching_dataset_equals_stardist(stardist_matching, val_labels, by_image, criterion):
    kinds = ["eroded", "dilated", "shifted", "merged", "split"]
    preds = [perturbations(y)[kinds[i % 5]] for i, y in enumerate(val_labels)]
    preds[2] = np.zeros_like(preds[2])  # an image with no prediction at all
    ours = matching_dataset(val_labels, preds, thresh=THRESHOLDS, criterion=criterion,
                            by_image=by_image)
    theirs = stardist_matching.matching_dataset(val_labels, preds, thresh=THRESHOLDS,
                                                criterion=criterion, by_image=by_image,
                                                show_progress=False)
    for a, b in zip(ours, theirs, strict=True):
        assert isinstance(a, DatasetMatching)
        assert_same(a, b)
        assert a.by_image == by_image and a.n_images == 8
    single = matching_dataset(val_labels, preds, thresh=0.5, criterion=criterion,
                              by_image=by_image)
    assert single == ours[3]


def test_matching_dataset_lengths_must_agree():
    y = np.ones((3, 3), np.uint8)
    with pytest.raises(ValueError, match="2 true label images but 1 predicted"):
        matching_dataset([y, y], [y])
