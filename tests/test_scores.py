"""Tests for nuclib.metrics.scores: DSB score, AJI, splits and merges, misses by area."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage as ndi

from nuclib.data.io import read_labels
from nuclib.metrics import (
    AREA_BINS,
    DSB_THRESHOLDS,
    SplitsAndMerges,
    aggregated_jaccard_index,
    dsb_score,
    false_negatives_by_area,
    false_positives_by_area,
    matching,
    mean_best_iou,
    splits_and_merges,
)


def boxes(shape, *specs):
    """Label image with rectangles: specs are (value, row0, row1, col0, col1)."""
    out = np.zeros(shape, np.int32)
    for value, r0, r1, c0, c1 in specs:
        out[r0:r1, c0:c1] = value
    return out


# --- DSB score -------------------------------------------------------------------------


def test_dsb_thresholds():
    assert DSB_THRESHOLDS == (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


def test_dsb_score_by_hand():
    # nucleus 1 found exactly; nucleus 2 found with IoU 12/20 = 0.6; one extra object.
    # t = 0.50, 0.55: tp 2, fp 1, fn 0 -> 2/3.  t = 0.60 ... 0.95 (IoU > t fails,
    # 8 thresholds): tp 1, fp 2, fn 1 -> 1/4.  Mean: (2 * 2/3 + 8 * 1/4) / 10 = 1/3.
    y_true = boxes((10, 12), (1, 0, 4, 0, 4), (2, 0, 4, 6, 10))
    y_pred = boxes((10, 12), (7, 0, 4, 0, 4), (8, 0, 4, 7, 11), (9, 6, 9, 0, 3))
    assert dsb_score(y_true, y_pred) == pytest.approx(1 / 3)
    assert dsb_score([y_true, y_true], [y_pred, y_true]) == pytest.approx((1 / 3 + 1) / 2)


def test_dsb_score_counts_iou_strictly_above_threshold():
    # halves of a nucleus have IoU exactly 0.5: a hit for matching (>=), not for Kaggle (>)
    y_true = boxes((4, 8), (1, 0, 4, 0, 8))
    y_pred = boxes((4, 8), (1, 0, 4, 0, 4), (2, 0, 4, 4, 8))
    assert matching(y_true, y_pred, thresh=0.5).tp == 1
    assert dsb_score(y_true, y_pred) == 0.0


def test_dsb_score_empty_cases():
    y = boxes((6, 6), (1, 0, 3, 0, 3))
    empty = np.zeros_like(y)
    assert dsb_score(empty, empty) == 1.0   # nothing to find, nothing found
    assert dsb_score(y, empty) == 0.0
    assert dsb_score(empty, y) == 0.0
    assert dsb_score(y, y) == 1.0


def test_dsb_score_input_errors():
    y = boxes((6, 6), (1, 0, 3, 0, 3))
    with pytest.raises(ValueError, match="either one label image"):
        dsb_score(y, [y])
    with pytest.raises(ValueError, match="2 true label images but 1"):
        dsb_score([y, y], [y])
    with pytest.raises(ValueError, match="no images"):
        dsb_score([], [])


def reference_dsb(y_true, y_pred):
    """The Kaggle definition written the slow, obvious way (dense IoU from masks)."""
    t_ids, p_ids = np.unique(y_true)[1:], np.unique(y_pred)[1:]
    iou = np.zeros((len(t_ids), len(p_ids)))
    for i, a in enumerate(t_ids):
        for j, b in enumerate(p_ids):
            ma, mb = y_true == a, y_pred == b
            iou[i, j] = (ma & mb).sum() / (ma | mb).sum()
    precisions = []
    for t in np.arange(0.5, 1.0, 0.05):
        tp = int(((iou > t + 1e-12).sum(axis=1) > 0).sum())
        precisions.append(tp / (len(t_ids) + len(p_ids) - tp))
    return float(np.mean(precisions))


def test_dsb_score_matches_slow_reference(dsb_root):
    checked = 0
    for f in sorted((dsb_root / "val" / "labels").glob("*.png")):
        y = read_labels(f)
        if not 0 < y.max() <= 40:  # keep the slow reference quick
            continue
        y_pred = ndi.grey_dilation(np.roll(y, (1, 2), axis=(0, 1)), size=2)
        assert dsb_score(y, y_pred) == pytest.approx(reference_dsb(y, y_pred), abs=1e-12)
        checked += 1
        if checked == 4:
            break
    assert checked == 4


# --- AJI -------------------------------------------------------------------------------


def test_aji_by_hand():
    # G1 (16 px) best matches S1 (32 px, IoU 0.5): C 16, U 32.
    # G2 (16 px) overlaps S1 (IoU 8/40) and S2 (8 px inside G2, IoU 0.5) -> S2: C 8, U 16.
    # G3 (8 px) overlaps nothing: U + 8.  S3 (4 px) is never used: U + 4.  AJI = 24/60.
    y_true = boxes((8, 10), (1, 0, 4, 0, 4), (2, 0, 4, 6, 10), (3, 6, 8, 6, 10))
    y_pred = boxes((8, 10), (1, 0, 4, 0, 8), (2, 0, 4, 8, 10), (3, 6, 8, 0, 2))
    assert aggregated_jaccard_index(y_true, y_pred) == pytest.approx(24 / 60)


def test_aji_reuses_a_merged_prediction_as_in_the_original():
    # the original AJI pairs both nuclei with the merged prediction: C 16 + 16, U 36 + 36
    y_true = boxes((4, 10), (1, 0, 4, 0, 4), (2, 0, 4, 5, 9))
    y_pred = boxes((4, 10), (7, 0, 4, 0, 9))
    assert aggregated_jaccard_index(y_true, y_pred) == pytest.approx(32 / 72)


def test_aji_ties_go_to_the_lowest_predicted_id():
    # G (10 px) has IoU 0.4 with S_a (4 px inside) and with S_b (6 inside, 5 outside)
    y_true = boxes((2, 10), (1, 0, 1, 0, 10))
    a, b = boxes((2, 10), (1, 0, 1, 0, 4)), boxes((2, 10), (1, 0, 1, 4, 10), (1, 1, 2, 4, 9))
    assert aggregated_jaccard_index(y_true, 2 * a + b) == pytest.approx(6 / 19)  # S_b wins
    assert aggregated_jaccard_index(y_true, a + 2 * b) == pytest.approx(4 / 21)  # S_a wins


def test_aji_extremes():
    y = boxes((6, 6), (4, 0, 3, 0, 3), (9, 3, 6, 3, 6))
    empty = np.zeros_like(y)
    assert aggregated_jaccard_index(y, y) == 1.0
    assert aggregated_jaccard_index(empty, empty) == 1.0
    assert aggregated_jaccard_index(y, empty) == 0.0
    assert aggregated_jaccard_index(empty, y) == 0.0


# --- mean best IoU (the "Jaccard" column) ---------------------------------------------


def aji_example():
    """The AJI example: best IoUs G1 0.5 (S1), G2 0.5 (S2, not S1's 8/40), G3 0 (no overlap)."""
    y_true = boxes((8, 10), (1, 0, 4, 0, 4), (2, 0, 4, 6, 10), (3, 6, 8, 6, 10))
    y_pred = boxes((8, 10), (1, 0, 4, 0, 8), (2, 0, 4, 8, 10), (3, 6, 8, 0, 2))
    return y_true, y_pred


def test_mean_best_iou_by_hand_and_against_aji_and_matched_score():
    y_true, y_pred = aji_example()
    assert mean_best_iou(y_true, y_pred) == pytest.approx((0.5 + 0.5 + 0.0) / 3)
    # the same pair: AJI aggregates pixels (24/60), the matched score ignores the miss (0.5)
    assert aggregated_jaccard_index(y_true, y_pred) == pytest.approx(24 / 60)
    assert matching(y_true, y_pred, thresh=0.5).mean_matched_score == pytest.approx(0.5)
    # extra predictions cost nothing: S3 moved off every nucleus changes no best IoU
    assert mean_best_iou(y_true, np.where(y_pred == 3, 0, y_pred)) == pytest.approx(1 / 3)


def test_mean_best_iou_gives_a_merge_to_both_nuclei():
    # each 16-pixel nucleus has IoU 16/36 with the merged prediction; no match at 0.5
    y_true = boxes((4, 10), (1, 0, 4, 0, 4), (2, 0, 4, 5, 9))
    y_pred = boxes((4, 10), (7, 0, 4, 0, 9))
    assert mean_best_iou(y_true, y_pred) == pytest.approx(16 / 36)
    assert matching(y_true, y_pred, thresh=0.5).mean_matched_score == 0.0


def test_mean_best_iou_pools_nuclei_or_averages_images():
    y_true, y_pred = aji_example()                       # 3 nuclei, best IoUs sum to 1
    single = boxes((6, 6), (5, 1, 4, 1, 4))              # 1 nucleus, found exactly
    pairs = ([y_true, single], [y_pred, single])
    assert mean_best_iou(*pairs) == pytest.approx((1.0 + 1.0) / 4)
    assert mean_best_iou(*pairs, by_image=True) == pytest.approx((1 / 3 + 1.0) / 2)


def test_mean_best_iou_extremes_and_relabelling(rng):
    y_true, y_pred = aji_example()
    empty = np.zeros_like(y_true)
    assert mean_best_iou(y_true, y_true) == 1.0           # perfect prediction
    assert mean_best_iou(y_true, empty) == 0.0            # nothing predicted
    assert mean_best_iou(empty, empty) == 1.0             # nothing to find, nothing found
    assert mean_best_iou(empty, y_pred) == 0.0            # only extras
    assert mean_best_iou([y_true, y_pred], [y_true, y_pred]) == 1.0
    ids = rng.permutation(np.arange(1, 4)) * 1000         # other, non-sequential ids
    relabelled = np.where(y_pred > 0, ids[np.maximum(y_pred - 1, 0)], 0)
    assert mean_best_iou(y_true, relabelled) == mean_best_iou(y_true, y_pred)
    with pytest.raises(ValueError, match="2 true label images but 1"):
        mean_best_iou([y_true, y_true], [y_pred])


# --- splits and merges -----------------------------------------------------------------


def test_split_and_merge_by_hand():
    y_true = boxes((4, 20), (1, 0, 4, 0, 8), (2, 0, 4, 10, 14), (3, 0, 4, 15, 19))
    y_pred = boxes((4, 20), (5, 0, 4, 0, 4), (6, 0, 4, 4, 8), (7, 0, 4, 10, 19))
    assert splits_and_merges(y_true, y_pred) == SplitsAndMerges(splits=1, merges=1)
    assert splits_and_merges(y_pred, y_true) == SplitsAndMerges(splits=1, merges=1)
    assert splits_and_merges(y_true, y_true) == (0, 0)


def test_a_fragment_inside_a_found_nucleus_is_a_split():
    y_true = boxes((10, 10), (1, 0, 10, 0, 10))
    y_pred = boxes((10, 10), (1, 0, 10, 0, 9), (2, 0, 2, 9, 10))
    assert splits_and_merges(y_true, y_pred).splits == 1
    # a prediction only partly (1/3) inside the nucleus is not a piece of it
    y_pred = boxes((10, 14), (1, 0, 10, 0, 9), (2, 0, 2, 9, 12))
    assert splits_and_merges(np.pad(y_true, ((0, 0), (0, 4))), y_pred).splits == 0


def test_merge_needs_thresh_of_each_nucleus():
    # the prediction covers all of nucleus 1 but only 3/8 of nucleus 2
    y_true = boxes((2, 16), (1, 0, 2, 0, 8), (2, 0, 2, 8, 16))
    y_pred = boxes((2, 16), (1, 0, 2, 0, 11))
    assert splits_and_merges(y_true, y_pred).merges == 0
    assert splits_and_merges(y_true, y_pred, thresh=0.3).merges == 1


def test_splits_and_merges_swap_with_truth_and_prediction(rng):
    def blobs():
        seeds = np.zeros((64, 64), np.int32)
        seeds.flat[rng.choice(seeds.size, 20, replace=False)] = np.arange(1, 21)
        _, (iy, ix) = ndi.distance_transform_edt(seeds == 0, return_indices=True)
        return np.where(ndi.gaussian_filter(rng.random((64, 64)), 2) > 0.48, seeds[iy, ix], 0)

    for _ in range(5):
        a, b = blobs(), blobs()
        for t in (0.3, 0.5, 0.8):
            ab, ba = splits_and_merges(a, b, thresh=t), splits_and_merges(b, a, thresh=t)
            assert (ab.splits, ab.merges) == (ba.merges, ba.splits)


def test_splits_and_merges_rejects_bad_thresh():
    y = boxes((4, 4), (1, 0, 2, 0, 2))
    with pytest.raises(ValueError, match="thresh is 0.0; expected an overlap fraction"):
        splits_and_merges(y, y, thresh=0)


# --- false negatives by area -----------------------------------------------------------


def sized_nuclei():
    # areas 100 (tiny), 250 (small: bounds are exclusive), 400 (small), 700 (normal), 1000
    return boxes((100, 100), (1, 0, 10, 0, 10), (2, 0, 10, 20, 45), (3, 20, 40, 0, 20),
                 (4, 20, 45, 30, 58), (5, 50, 75, 0, 40))


def test_false_negatives_by_area_by_hand():
    y_true = sized_nuclei()
    y_pred = np.where(np.isin(y_true, [1, 3, 4]), 0, y_true)  # miss 100, 400, 700
    y_pred[50:75, 0:15] = 0  # nucleus 5 keeps 25x25 of 25x40 pixels: IoU 0.625
    out = false_negatives_by_area(y_true, y_pred)
    assert list(out) == ["tiny", "small", "normal", "large"]
    assert out["tiny"] == {"n_true": 1, "missed": 1, "missed_fraction": 1.0}
    assert out["small"] == {"n_true": 2, "missed": 1, "missed_fraction": 0.5}
    assert out["normal"] == {"n_true": 1, "missed": 1, "missed_fraction": 1.0}
    assert out["large"] == {"n_true": 1, "missed": 0, "missed_fraction": 0.0}
    assert false_negatives_by_area(y_true, y_pred, thresh=0.7)["large"]["missed"] == 1
    assert AREA_BINS[-1] == ("large", math.inf)


def test_false_negatives_by_area_pools_images_and_takes_custom_bins():
    y_true = sized_nuclei()
    empty = np.zeros_like(y_true)
    out = false_negatives_by_area([y_true, y_true], [y_true, empty],
                                  bins={"small": 300, "big": 800})
    assert out == {"small": {"n_true": 4, "missed": 2, "missed_fraction": 0.5},
                   "big": {"n_true": 4, "missed": 2, "missed_fraction": 0.5}}
    with pytest.raises(ValueError, match="increasing"):
        false_negatives_by_area(y_true, y_true, bins=[("a", 500), ("b", 100)])


# --- false positives by area -----------------------------------------------------------


def test_false_positives_by_area_by_hand():
    # the false-negative case with truth and prediction swapped: extras of 100, 400, 700 px
    y_pred = sized_nuclei()
    y_true = np.where(np.isin(y_pred, [1, 3, 4]), 0, y_pred)
    y_true[50:75, 0:15] = 0  # predicted nucleus 5 (1000 px) has IoU 0.625 with its truth
    out = false_positives_by_area(y_true, y_pred)
    assert list(out) == ["tiny", "small", "normal", "large"]
    assert out["tiny"] == {"n_pred": 1, "extra": 1, "extra_fraction": 1.0}
    assert out["small"] == {"n_pred": 2, "extra": 1, "extra_fraction": 0.5}
    assert out["normal"] == {"n_pred": 1, "extra": 1, "extra_fraction": 1.0}
    assert out["large"] == {"n_pred": 1, "extra": 0, "extra_fraction": 0.0}
    assert false_positives_by_area(y_true, y_pred, thresh=0.7)["large"]["extra"] == 1
    missed = false_negatives_by_area(y_pred, y_true)
    assert [(v["n_true"], v["missed"]) for v in missed.values()] == [
        (v["n_pred"], v["extra"]) for v in out.values()]


def test_false_positives_are_binned_by_the_predicted_area():
    # a 200-pixel nucleus inside a 700-pixel prediction: IoU 2/7, so one miss and one extra
    y_true = boxes((40, 40), (1, 0, 10, 0, 20))
    y_pred = boxes((40, 40), (9, 0, 20, 0, 35))
    extra = false_positives_by_area(y_true, y_pred)
    missed = false_negatives_by_area(y_true, y_pred)
    assert extra["normal"] == {"n_pred": 1, "extra": 1, "extra_fraction": 1.0}
    assert extra["tiny"] == {"n_pred": 0, "extra": 0, "extra_fraction": 0.0}
    assert missed["tiny"] == {"n_true": 1, "missed": 1, "missed_fraction": 1.0}
    # grown to 300 pixels (IoU 2/3) the prediction matches: no extra, no miss
    y_pred = boxes((40, 40), (9, 0, 15, 0, 20))
    assert false_positives_by_area(y_true, y_pred)["small"]["extra"] == 0
    assert false_negatives_by_area(y_true, y_pred)["tiny"]["missed"] == 0


def test_false_positives_by_area_pools_images_and_takes_custom_bins():
    y = sized_nuclei()
    empty = np.zeros_like(y)
    out = false_positives_by_area([y, empty], [y, y], bins={"small": 300, "big": 800})
    assert out == {"small": {"n_pred": 4, "extra": 2, "extra_fraction": 0.5},
                   "big": {"n_pred": 4, "extra": 2, "extra_fraction": 0.5}}
    with pytest.raises(ValueError, match="increasing"):
        false_positives_by_area(y, y, bins=[("a", 500), ("b", 100)])
    with pytest.raises(ValueError, match="outside"):
        false_positives_by_area(y, y, thresh=1.5)
