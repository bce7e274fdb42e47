"""Keras training metrics of nuclib.metrics.training against hand-computed counts."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from nuclib.losses import WeightedCategoricalCrossentropy
from nuclib.metrics.training import ClassPrecision, ClassRecall, DiceCoefficient, JaccardIndex


def probs_from_classes(classes, num_classes=3):
    """Softmax-like probabilities whose argmax is ``classes`` (0.6 vs 0.2)."""
    classes = np.asarray(classes)
    p = np.full(classes.shape + (num_classes,), 0.2, "float32")
    np.put_along_axis(p, classes[..., None], 0.6, axis=-1)
    return p


# Three-class batches (background 0, interior 1, boundary 2), -1 = ignore.
# Batch 1, pixels (true, pred): (0,0) (1,1) (2,1) / (2,2) (-1,2) (1,2)
Y1 = np.array([[[0, 1, 2], [2, -1, 1]]], "int32")[..., None]     # (1, 2, 3, 1)
P1 = probs_from_classes([[[0, 1, 1], [2, 2, 2]]])
# Batch 2 (given as one-hot targets): (2,2) (2,0) (2,1) (1,1)
Y2 = np.eye(3, dtype="float32")[[[[2, 2, 2, 1]]]]                 # (1, 1, 4, 3)
P2 = probs_from_classes([[[2, 0, 1, 1]]])
# Counts            batch 1        batch 2        total
# class 2        tp1 fp1 fn1    tp1 fp0 fn2    tp2 fp1 fn3
# class 1        tp1 fp1 fn1    tp1 fp1 fn0    tp2 fp2 fn1
# foreground     tp4 fp0 fn0    tp3 fp0 fn1    tp7 fp0 fn1


@pytest.mark.parametrize("metric, after_first, after_both", [
    (ClassPrecision(2), 1 / 2, 2 / 3),
    (ClassRecall(2), 1 / 2, 2 / 5),
    (DiceCoefficient(class_id=2), 2 / 4, 4 / 8),
    (ClassPrecision(1), 1 / 2, 2 / 4),
    (ClassRecall(1), 1 / 2, 2 / 3),
    (DiceCoefficient(class_id=1), 2 / 4, 4 / 7),
    (DiceCoefficient(), 8 / 8, 14 / 15),
    (ClassPrecision(None), 1.0, 1.0),
    (ClassRecall(None), 1.0, 7 / 8),
    (JaccardIndex(class_id=2), 1 / 3, 2 / 6),            # TP / (TP + FP + FN)
    (JaccardIndex(class_id=1), 1 / 3, 2 / 5),
    (JaccardIndex(), 4 / 4, 7 / 8),
])
def test_three_class_metrics_accumulate_over_batches(metric, after_first, after_both):
    metric.update_state(Y1, P1)
    assert float(metric.result()) == pytest.approx(after_first)
    metric.update_state(Y2, P2)
    assert float(metric.result()) == pytest.approx(after_both)
    metric.reset_state()
    metric.update_state(Y1[..., 0], P1)          # (N, H, W) integer targets
    assert float(metric.result()) == pytest.approx(after_first)


# Binary head: batch 1 true (1, 1, 0, -1, 0), p (.9, .2, .7, .9, .4) -> tp1 fp1 fn1;
# batch 2 true (0, 0, 1, 1), p (.1, .6, .55, .8) -> pred (0, 1, 1, 1): tp2 fp1 fn0.
B1 = (np.array([1, 1, 0, -1, 0], "int32").reshape(1, 1, 5, 1),
      np.array([0.9, 0.2, 0.7, 0.9, 0.4], "float32").reshape(1, 1, 5, 1))
B2 = (np.array([0, 0, 1, 1], "float32").reshape(1, 1, 4, 1),     # a float mask
      np.array([0.1, 0.6, 0.55, 0.8], "float32").reshape(1, 1, 4, 1))


@pytest.mark.parametrize("metric, expected", [
    (DiceCoefficient(), 6 / 9),                       # tp3 fp2 fn1
    (ClassPrecision(1), 3 / 5),
    (ClassRecall(1), 3 / 4),
    (DiceCoefficient(threshold=0.6), 4 / 8),          # batch 2 -> tp1 fp1 fn1
    (ClassPrecision(0), 2 / 3),                       # background: tp2 fp1 fn2
    (ClassRecall(0), 2 / 4),
    (JaccardIndex(), 3 / 6),
    (JaccardIndex(class_id=0), 2 / 5),
])
def test_binary_metrics(metric, expected):
    for y, p in (B1, B2):
        metric.update_state(y, p)
    assert float(metric.result()) == pytest.approx(expected)


def test_binary_from_logits_thresholds_the_sigmoid():
    metric = DiceCoefficient(from_logits=True)
    for y, p in (B1, B2):
        metric.update_state(y, np.log(p / (1 - p)))
    assert float(metric.result()) == pytest.approx(6 / 9)


def test_ignored_pixels_do_not_count():
    metric = ClassPrecision(2)
    y = np.array([[[2, -1, -5]]], "int32")
    metric.update_state(y, probs_from_classes([[[2, 2, 2]]]))
    assert float(metric.result()) == 1.0               # no false positives counted
    assert float(metric.false_positives) == 0.0
    # an all-zero one-hot row is ignored as well
    y_one_hot = np.eye(3, dtype="float32")[[[[2, 2, 2]]]]
    y_one_hot[0, 0, 1:] = 0.0
    metric.reset_state()
    metric.update_state(y_one_hot, probs_from_classes([[[2, 0, 0]]]))
    assert float(metric.true_positives) == 1.0 and float(metric.false_negatives) == 0.0


def test_metrics_ignore_what_the_losses_ignore():
    """One parsing of targets: padding and labels the head does not have count nowhere."""
    from nuclib.losses.utils import targets_and_mask

    y = np.array([[[2, -1, 3, 1, 0, 2]]], "int32")           # -1 padding, 3: no such class
    p = probs_from_classes([[[2, 2, 2, 1, 2, 0]]])
    _, valid = targets_and_mask(y, p)
    assert keras.ops.convert_to_numpy(valid).ravel().tolist() == [1, 0, 0, 1, 1, 1]
    keep = [0, 3, 4, 5]
    for metric in (DiceCoefficient(), ClassPrecision(2), ClassRecall(2), DiceCoefficient(1)):
        reference = type(metric).from_config(metric.get_config())
        metric.update_state(y.astype("float32"), p)      # float labels, as Keras may pass
        reference.update_state(y[:, :, keep], p[:, :, keep])
        assert float(metric.result()) == float(reference.result()), metric.name


def test_sample_weight_scales_each_image():
    y = np.concatenate([Y1, np.array([[[2, 2, 2], [2, 2, 2]]], "int32")[..., None]])
    p = np.concatenate([P1, probs_from_classes([[[0, 0, 0], [0, 0, 2]]])])
    metric = ClassRecall(2)
    metric.update_state(y, p, sample_weight=np.array([1.0, 2.0]))
    # image 1: tp1 fn1; image 2 (weight 2): tp1 fn5 -> (1 + 2) / (2 + 12)
    assert float(metric.result()) == pytest.approx(3 / 14)


def test_reset_and_empty_values():
    dice, precision, recall = DiceCoefficient(), ClassPrecision(1), ClassRecall(1)
    for metric in (dice, precision, recall):
        metric.update_state(Y1, P1)
        metric.reset_state()
        assert float(metric.true_positives) == 0.0
    assert float(dice.result()) == 1.0                 # nothing to find, nothing found
    assert float(precision.result()) == 0.0 and float(recall.result()) == 0.0
    background = np.zeros((1, 4, 4, 1), "int32")
    dice.update_state(background, probs_from_classes(np.zeros((1, 4, 4), int)))
    assert float(dice.result()) == 1.0
    dice.update_state(background, probs_from_classes(np.ones((1, 4, 4), int)))
    assert float(dice.result()) == 0.0


def test_jaccard_of_a_perfect_prediction_is_one():
    for num_classes, class_id in ((3, None), (3, 2), (3, 0)):
        y = np.array([[[0, 1, 2], [2, -1, 1]]], "int32")
        metric = JaccardIndex(class_id=class_id)
        metric.update_state(y, probs_from_classes(np.maximum(y, 0), num_classes))
        assert float(metric.result()) == 1.0
    binary = JaccardIndex()
    binary.update_state(B1[0], np.clip(B1[0], 0, 1).astype("float32"))
    assert float(binary.result()) == 1.0
    assert float(JaccardIndex().result()) == 1.0       # nothing seen: nothing to find


@pytest.mark.parametrize("class_id", [None, 1, 2])
def test_jaccard_is_dice_over_two_minus_dice(class_id, rng):
    y = rng.integers(-1, 3, size=(3, 6, 7, 1)).astype("int32")
    p = rng.dirichlet(np.ones(3), size=(3, 6, 7)).astype("float32")
    dice, jaccard = DiceCoefficient(class_id), JaccardIndex(class_id)
    for metric in (dice, jaccard):
        metric.update_state(y[:2], p[:2])
        metric.update_state(y[2:], p[2:])
    d = float(dice.result())
    assert 0.0 < d < 1.0
    assert float(jaccard.result()) == pytest.approx(d / (2 - d), rel=1e-6)


def test_default_names():
    assert DiceCoefficient().name == "dice_coefficient"
    assert JaccardIndex().name == "jaccard_index"
    assert ClassPrecision(2).name == "class_2_precision"
    assert ClassRecall(1).name == "class_1_recall"
    assert ClassRecall(None).name == "class_foreground_recall"


@pytest.mark.parametrize("metric", [
    DiceCoefficient(class_id=2, threshold=0.3, from_logits=True, name="dice_boundary"),
    ClassPrecision(1, threshold=0.4), ClassRecall(2, name="boundary_recall"),
    JaccardIndex(class_id=1, threshold=0.7, from_logits=True, name="iou_interior"),
])
def test_config_round_trip(metric):
    clone = type(metric).from_config(metric.get_config())
    assert clone.get_config() == metric.get_config()
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(metric), safe_mode=True)
    assert type(restored) is type(metric) and restored.get_config() == metric.get_config()
    for m in (metric, restored):
        m.update_state(Y1, P1)
    assert float(restored.result()) == float(metric.result())


def test_metrics_in_compiled_model_survive_save_and_load(tmp_path, rng):
    inputs = keras.Input((8, 8, 1), name="tiny_input")
    outputs = keras.layers.Conv2D(3, 3, padding="same", activation="softmax",
                                  name="tiny_head")(inputs)
    model = keras.Model(inputs, outputs, name="tiny")
    metrics = [DiceCoefficient(), ClassPrecision(2), ClassRecall(2), JaccardIndex(class_id=2)]
    model.compile(optimizer="adam", loss=WeightedCategoricalCrossentropy(), metrics=metrics)
    x = rng.normal(size=(4, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 3, size=(4, 8, 8, 1)).astype("int32")
    y[:, :2] = -1                                     # ignored rows
    model.fit(x, y, epochs=1, batch_size=2, verbose=0)   # metrics run inside train_step
    before = model.evaluate(x, y, verbose=0, return_dict=True)
    # the same counts from NumPy: argmax, labelled pixels only
    pred = model.predict(x, verbose=0).argmax(-1)
    true, valid = y[..., 0], y[..., 0] >= 0
    tp = np.sum((pred == 2) & (true == 2) & valid)
    assert before["class_2_recall"] == pytest.approx(tp / np.sum((true == 2) & valid), rel=1e-6)
    assert before["class_2_precision"] == pytest.approx(tp / np.sum((pred == 2) & valid),
                                                        rel=1e-6)
    fg_true, fg_pred = (true > 0) & valid, (pred > 0) & valid
    assert before["dice_coefficient"] == pytest.approx(
        2 * np.sum(fg_true & fg_pred) / (fg_true.sum() + fg_pred.sum()), rel=1e-6)
    union = np.sum(((pred == 2) | (true == 2)) & valid)
    assert before["jaccard_index"] == pytest.approx(tp / union, rel=1e-6)

    path = tmp_path / "tiny.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True, compile=True)
    after = loaded.evaluate(x, y, verbose=0, return_dict=True)
    assert after == pytest.approx(before, rel=1e-6)
    assert set(before) >= {"dice_coefficient", "class_2_precision", "class_2_recall",
                           "jaccard_index"}
    assert isinstance(keras.metrics.get({"class_name": "nuclib>JaccardIndex", "config": {}}),
                      JaccardIndex)


def test_metrics_are_found_by_name():
    """What a recipe's metric names resolve through: the package and the module."""
    import nuclib.metrics
    import nuclib.metrics.training as training

    for name in training.__all__:
        assert getattr(nuclib.metrics, name) is getattr(training, name)
        assert issubclass(getattr(training, name), keras.metrics.Metric)
        assert keras.saving.get_registered_object(f"nuclib>{name}") is getattr(training, name)
    assert "JaccardIndex" in training.__all__


def test_bad_input_raises():
    with pytest.raises(ValueError, match="class_id must be a non-negative integer"):
        ClassPrecision(-1)
    with pytest.raises(ValueError, match="threshold must be in"):
        DiceCoefficient(threshold=1.5)
    with pytest.raises(ValueError, match=r"class_id 3 does not exist.*3 classes"):
        ClassRecall(3).update_state(Y1, P1)
    with pytest.raises(ValueError, match="one-hot targets with 3 channels"):
        DiceCoefficient().update_state(np.zeros((1, 2, 3, 4), "float32"), P1)
