"""nuclib.labels: one check of label arrays, by the same rules for every room."""

from __future__ import annotations

import numpy as np
import pytest

from nuclib.labels import IGNORE_LABEL, check_labels


def test_accepts_label_images_as_they_are():
    labels = np.array([[0, 1], [2, 2]], np.uint16)
    assert check_labels(labels) is labels or np.shares_memory(check_labels(labels), labels)
    assert check_labels(labels[..., None]).shape == (2, 2)  # HxWx1 squeezed
    assert check_labels(labels.astype(bool)).dtype == bool
    assert check_labels(np.full((2, 2), IGNORE_LABEL), ignore=True).min() == -1
    assert check_labels(np.zeros((2, 3, 4), np.int32), ndim=None).shape == (2, 3, 4)
    assert check_labels(np.zeros((3, 4), np.int64), shape=(3, 4)).shape == (3, 4)


@pytest.mark.parametrize("labels, options, message", [
    (np.zeros((2, 2), np.float32), {}, "labels: dtype float32; expected integer instance ids "
                                        "\\(0 = background\\)$"),
    (np.zeros((2, 2), bool), {"boolean": False, "name": "y_pred"},
     "y_pred: dtype bool; .*label it first"),
    (np.zeros((2, 3, 4), np.int32), {}, "labels: shape \\(2, 3, 4\\); expected an HxW"),
    (np.zeros(5, np.int32), {}, "shape \\(5,\\); expected an HxW"),
    (np.zeros((2, 2), np.int32), {"shape": (3, 2)},
     "labels: shape \\(2, 2\\), but \\(3, 2\\) was expected"),
    (np.array([[0, -1]]), {}, "negative ids \\(min -1\\); expected 0 \\(background\\) and"),
    (np.array([[0, -2]]), {"ignore": True},
     "negative ids \\(min -2\\); expected 0 \\(background\\), -1 \\(ignored\\)"),
])
def test_refuses_with_a_message_that_names_the_problem(labels, options, message):
    with pytest.raises(ValueError, match=message):
        check_labels(labels, **options)


def _rooms():
    from nuclib import viz
    from nuclib.data import targets
    from nuclib.metrics import matching
    from nuclib.postprocess import instances

    return {"targets.three_class": targets.three_class,
            "instances.remove_small_instances": instances.remove_small_instances,
            "matching": lambda bad: matching(bad, bad),
            "viz.colorize_labels": viz.colorize_labels}


@pytest.mark.parametrize("room", ["targets.three_class", "instances.remove_small_instances",
                                  "matching", "viz.colorize_labels"])
def test_every_room_refuses_float_labels_in_the_same_words(room):
    with pytest.raises(ValueError, match="dtype float64; expected integer instance ids"):
        _rooms()[room](np.zeros((4, 4), np.float64))
