"""Tests for nuclib.metrics.report: evaluate, Report.table, Report.to_csv, Report.summary."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from nuclib.metrics import Report, evaluate, matching_dataset


def boxes(shape, *specs):
    """Label image with rectangles: specs are (value, row0, row1, col0, col1)."""
    out = np.zeros(shape, np.int32)
    for value, r0, r1, c0, c1 in specs:
        out[r0:r1, c0:c1] = value
    return out


@pytest.fixture
def dataset():
    """Three images: perfect; one nucleus shifted (IoU 0.6) plus an extra object; a merge."""
    a = boxes((10, 12), (1, 0, 4, 0, 4), (2, 0, 4, 6, 10))
    b_pred = boxes((10, 12), (7, 0, 4, 0, 4), (8, 0, 4, 7, 11), (9, 6, 9, 0, 3))
    c = boxes((4, 10), (1, 0, 4, 0, 4), (2, 0, 4, 5, 9))
    c_pred = boxes((4, 10), (1, 0, 4, 0, 9))
    return [a, a, c], [a, b_pred, c_pred]


def test_rows_by_hand(dataset):
    ys_true, ys_pred = dataset
    report = evaluate(ys_true, ys_pred, names=["perfect", "shifted", "merged"],
                      groups=["x", "x", "y"])
    assert isinstance(report, Report) and report.thresholds == (0.5, 0.75, 0.9)
    perfect, shifted, merged = report.rows
    assert perfect["name"] == "perfect" and perfect["group"] == "x"
    assert (perfect["ap50"], perfect["ap90"], perfect["dsb_score"], perfect["aji"]) == (1, 1, 1, 1)
    assert (shifted["n_true"], shifted["n_pred"]) == (2, 3)
    assert (shifted["tp50"], shifted["fp50"], shifted["fn50"]) == (2, 1, 0)
    assert (shifted["tp75"], shifted["fp75"], shifted["fn75"]) == (1, 2, 1)
    assert shifted["ap50"] == pytest.approx(2 / 3) and shifted["f1_50"] == pytest.approx(0.8)
    assert shifted["dsb_score"] == pytest.approx(1 / 3)
    # AJI: 16/16 + 12/20, plus the unused 9-pixel object: 28 / 45
    assert shifted["aji"] == pytest.approx(28 / 45)
    assert (merged["tp50"], merged["fp50"], merged["fn50"]) == (0, 1, 2)
    assert (merged["splits"], merged["merges"]) == (0, 1)
    assert merged["aji"] == pytest.approx(32 / 72)
    # jaccard: the mean over true nuclei of each one's best IoU
    assert perfect["jaccard"] == 1.0
    assert shifted["jaccard"] == pytest.approx((1 + 12 / 20) / 2)
    assert merged["jaccard"] == pytest.approx(16 / 36)


def test_summary_pools_counts_and_groups(dataset):
    ys_true, ys_pred = dataset
    report = evaluate(ys_true, ys_pred, groups=["x", "x", "y"])
    s = report.summary
    # pooled at IoU 0.5: tp 2 + 2 + 0, fp 0 + 1 + 1, fn 0 + 0 + 2
    assert s["ap50"] == pytest.approx(4 / 8)
    assert s["ap50"] == matching_dataset(ys_true, ys_pred, thresh=0.5).accuracy
    assert s["f1_50"] == pytest.approx(8 / 12)
    assert s["n_images"] == 3 and s["n_true"] == 6 and s["n_pred"] == 6
    assert s["thresholds"] == [0.5, 0.75, 0.9]
    assert list(s["groups"]) == ["all", "x", "y"]
    assert s["groups"]["x"]["ap50"] == pytest.approx(4 / 5)
    assert s["groups"]["x"]["dsb_score"] == pytest.approx((1 + 1 / 3) / 2)
    assert s["groups"]["y"]["merges"] == 1 and s["groups"]["y"]["n_images"] == 1
    # jaccard pools the true nuclei: (1 + 1) + (1 + 0.6) + (16/36 + 16/36) over 6
    assert s["jaccard"] == pytest.approx((2 + 1.6 + 32 / 36) / 6)
    assert s["groups"]["x"]["jaccard"] == pytest.approx(3.6 / 4)
    assert s["groups"]["y"]["jaccard"] == pytest.approx(16 / 36)
    assert s["groups"]["all"]["ap50"] == s["ap50"]
    assert json.loads(json.dumps(s)) == s  # JSON-friendly, nothing lost


def test_table_is_aligned_and_names_everything(dataset):
    ys_true, ys_pred = dataset
    report = evaluate(ys_true, ys_pred, names=["perfect", "shifted", "a-long-image-name"],
                      groups=["x", "x", "y"])
    text = report.table(digits=2)
    images, groups = text.split("\n\n")
    for block in (images, groups):
        lines = block.splitlines()
        assert len({len(line) for line in lines}) == 1  # every line the same width
    header = images.splitlines()[0].split()
    assert header[:4] == ["name", "group", "n_true", "n_pred"]
    assert "ap50" in header and "dsb_score" in header and "merges" in header
    assert header.index("aji") + 1 == header.index("jaccard")
    group_header = groups.splitlines()[0].split()
    assert "jaccard" in group_header
    assert "a-long-image-name" in images and "0.67" in images
    assert [line.split()[0] for line in groups.splitlines()] == ["group", "all", "x", "y"]
    assert str(report) == report.table(digits=3)
    ungrouped = evaluate(ys_true, ys_pred).table()
    assert ungrouped.splitlines()[0].split()[1] == "n_true"  # no group column


def test_csv_round_trip(dataset, tmp_path):
    ys_true, ys_pred = dataset
    report = evaluate(ys_true, ys_pred, names=["a", "b", "c"], thresholds=(0.5, 0.55))
    path = tmp_path / "report.csv"
    path.write_text("old contents")
    assert report.to_csv(path) == path
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == report.columns and "tp55" in report.columns
    assert "jaccard" in report.columns
    for written, row in zip(rows, report.rows, strict=True):
        for key, value in row.items():
            parsed = type(value)(written[key])
            assert parsed == value, key  # floats are written in full precision
    assert [p.name for p in tmp_path.iterdir()] == ["report.csv"]  # no temporary left


def test_custom_thresholds_name_columns():
    y = boxes((4, 4), (1, 0, 2, 0, 2))
    report = evaluate([y], [y], thresholds=[0.925, 0.3])
    assert {"ap92.5", "tp30", "f1_92.5"} <= set(report.columns)
    assert report.summary["ap92.5"] == 1.0


@pytest.mark.parametrize("kwargs, message", [
    ({"names": ["only-one"]}, "1 names for 2 images"),
    ({"groups": ["a", "b", "c"]}, "3 groups for 2 images"),
    ({"thresholds": [0.5, 0.5]}, "repeat"),
    ({"thresholds": [1.5]}, "outside"),
    ({"split_thresh": 0}, "split_thresh is 0.0"),
])
def test_bad_arguments(kwargs, message):
    y = boxes((4, 4), (1, 0, 2, 0, 2))
    with pytest.raises(ValueError, match=message):
        evaluate([y, y], [y, y], **kwargs)


def test_bad_images_are_named():
    y = boxes((4, 4), (1, 0, 2, 0, 2))
    with pytest.raises(ValueError, match="image 'second': y_true has shape"):
        evaluate([y, y], [y, np.zeros((5, 5), np.int32)], names=["first", "second"])
    with pytest.raises(ValueError, match="no images"):
        evaluate([], [])
    with pytest.raises(ValueError, match="2 true label images but 1 predicted"):
        evaluate([y, y], [y])


def test_table_shortens_long_names_but_rows_keep_them(dataset):
    truths, preds = dataset
    names = ["0123456789abcXdefgh", "0123456789abcYdefgh", "short"]
    report = evaluate(truths, preds, names=names)
    lines = report.table(name_width=12).splitlines()
    # The first 13 characters of the two long names are the same: cut after 14 instead.
    assert [line.split()[0] for line in lines[1:4]] == [
        "0123456789abcX…", "0123456789abcY…", "short"]
    assert [row["name"] for row in report.rows] == names
    assert report.table().splitlines()[1].startswith("0123456789abcXdefgh ")


def test_shorten_names_known_answers():
    from nuclib.metrics.report import shorten_names

    assert shorten_names(["abcdefghijklmnop", "abc", "abcdefghijklm"], 12) == [
        "abcdefghijkl…", "abc", "abcdefghijklm"]
    with pytest.raises(ValueError, match="at least 1"):
        shorten_names(["a"], 0)


def test_jaccard_of_images_without_nuclei():
    y = boxes((4, 4), (1, 0, 2, 0, 2))
    empty = np.zeros_like(y)
    report = evaluate([empty, empty, y], [empty, y, empty], groups=["none", "extra", "miss"])
    assert [row["jaccard"] for row in report.rows] == [1.0, 0.0, 0.0]
    assert report.summary["groups"]["none"]["jaccard"] == 1.0
    assert report.summary["groups"]["extra"]["jaccard"] == 0.0
    assert report.summary["jaccard"] == 0.0  # one true nucleus, not found
