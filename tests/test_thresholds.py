"""optimize_thresholds: searching post-processing parameters on validation data."""

from __future__ import annotations

import numpy as np
import pytest

from nuclib.data.targets import three_class
from nuclib.metrics import dsb_score, matching_dataset
from nuclib.postprocess import binary_to_labels, optimize_thresholds, three_class_to_labels

# touching pairs in 64x64 images
SCENES = [
    [(20, 20, 9), (20, 36, 9), (46, 40, 8)],
    [(30, 16, 8), (30, 31, 8), (12, 48, 7), (50, 50, 9)],
    [(16, 16, 8), (32, 22, 9), (48, 44, 10)],
]


def draw(disks, shape=(64, 64)) -> np.ndarray:
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    labels = np.zeros(shape, np.int32)
    for i, (cy, cx, r) in enumerate(disks, start=1):
        labels[((yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2) & (labels == 0)] = i
    return labels


def underconfident_three_class(labels) -> np.ndarray:
    """An inner-boundary map whose interior probability never reaches 0.5.

    With the default seed threshold (0.5) there are no seeds, so touching
    nuclei come out merged; a seed threshold of 0.4 or less separates them.
    """
    classes = three_class(labels, boundary="inner")
    table = np.array([[0.9, 0.05, 0.05],    # background
                      [0.3, 0.45, 0.25],    # interior
                      [0.3, 0.2, 0.5]],     # boundary
                     np.float32)
    return table[classes]


@pytest.fixture(scope="module")
def truths():
    return [draw(d) for d in SCENES]


def test_three_class_search_beats_bad_defaults_and_returns_usable_kwargs(truths):
    probs = [underconfident_three_class(t) for t in truths]
    tuned = optimize_thresholds(probs, truths, kind="three_class", score="ap50")
    # merged touching pairs: 7 of 10 nuclei matched (a merged pair still has IoU 0.5
    # with one of its two disks), none extra
    assert tuned["default_score"] == pytest.approx(0.7)
    assert tuned["score"] == 1.0
    assert tuned["params"]["seed_threshold"] <= 0.4
    assert set(tuned["params"]) == {"seed_threshold", "boundary_boost",
                                    "foreground_threshold", "seed_split_height", "min_size"}
    assert tuned["kind"] == "three_class" and tuned["score_name"] == "ap50"
    # the params reproduce the score when passed back as keyword arguments
    preds = [three_class_to_labels(p, **tuned["params"]) for p in probs]
    assert matching_dataset(truths, preds, thresh=0.5).accuracy == tuned["score"]
    default_preds = [three_class_to_labels(p) for p in probs]
    assert matching_dataset(truths, default_preds, thresh=0.5).accuracy == \
        tuned["default_score"]


def test_search_never_returns_worse_than_the_start(truths):
    probs = [three_class(t, boundary="inner", one_hot=True) for t in truths]
    tuned = optimize_thresholds(probs, truths, score="dsb",
                                grid={"seed_threshold": [0.9, 0.95], "min_size": [400]})
    # every grid value is worse than the (perfect) defaults, so nothing changes
    assert tuned["score"] == tuned["default_score"] == 1.0
    assert tuned["params"] == {"seed_threshold": 0.5, "min_size": 16}
    assert tuned["n_evaluations"] == 4


def test_grid_search_and_dsb_score(truths):
    probs = [underconfident_three_class(t) for t in truths]
    grid = {"seed_threshold": [0.3, 0.5], "min_size": [0, 16]}
    tuned = optimize_thresholds(probs, truths, grid=grid, score="dsb", search="grid")
    assert tuned["n_evaluations"] == 4  # the start (0.5, 16) is one of the combinations
    preds = [three_class_to_labels(p, **tuned["params"]) for p in probs]
    assert dsb_score(truths, preds) == pytest.approx(tuned["score"])
    assert tuned["score"] > tuned["default_score"]
    assert tuned["params"]["seed_threshold"] == 0.3


def test_base_parameters_are_kept_and_callable_scores_work(truths):
    probs = [underconfident_three_class(t) for t in truths]

    def detected(ys_true, ys_pred):
        return -abs(sum(int(p.max()) for p in ys_pred) - sum(int(t.max()) for t in ys_true))

    tuned = optimize_thresholds(probs, truths, score=detected,
                                base={"fill_holes": False, "seed_threshold": 0.6},
                                grid={"seed_threshold": [0.3, 0.6]})
    assert tuned["params"] == {"seed_threshold": 0.3, "fill_holes": False}
    assert tuned["score"] == 0 and tuned["score_name"] == "detected"


def test_binary_search_finds_the_threshold(truths):
    probs = [np.where(t > 0, 0.4, 0.05).astype(np.float32)[..., None] for t in truths]
    tuned = optimize_thresholds(probs, truths, kind="binary", score="ap75")
    assert tuned["default_score"] == 0.0
    assert tuned["params"]["threshold"] < 0.4
    assert tuned["score"] == 1.0
    preds = [binary_to_labels(p, **tuned["params"]) for p in probs]
    assert matching_dataset(truths, preds, thresh=0.75).accuracy == 1.0
    assert all(isinstance(v, (bool, int, float)) for v in tuned["params"].values())


def test_errors(truths):
    probs = [underconfident_three_class(t) for t in truths]
    with pytest.raises(ValueError, match="3 items but labels_list has 2"):
        optimize_thresholds(probs, truths[:2])
    with pytest.raises(ValueError, match="unknown parameter 'threshold'"):
        optimize_thresholds(probs, truths, grid={"threshold": [0.5]})
    with pytest.raises(ValueError, match="unknown score"):
        optimize_thresholds(probs, truths, score="iou")
    with pytest.raises(ValueError, match="unknown kind"):
        optimize_thresholds(probs, truths, kind="stardist")
    with pytest.raises(ValueError, match=r"labels_list\[1\] has shape \(32, 32\)"):
        optimize_thresholds(probs, [truths[0], truths[1][:32, :32], truths[2]])
    with pytest.raises(ValueError, match=r"probs_list\[0\].*logits"):
        optimize_thresholds([p * 5 for p in probs], truths)
    with pytest.raises(ValueError, match="empty"):
        optimize_thresholds([], [])
