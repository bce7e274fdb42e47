"""Losses of nuclib.losses against hand-computed values and independent NumPy references."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from nuclib import losses
from nuclib.losses import (
    BCEDice,
    CombinedLoss,
    Dice,
    Focal,
    Jaccard,
    NuclibLoss,
    Tversky,
    WeightedBinaryCrossentropy,
    WeightedCategoricalCrossentropy,
)
from nuclib.losses.crossentropy import weighted_categorical_crossentropy

# ---------------------------------------------------------------------------
# Independent NumPy references (float64). Targets: integer maps (N, H, W, 1)
# with -1 = ignore; predictions: probabilities (N, H, W, K).
# ---------------------------------------------------------------------------


def np_targets(labels, num_classes):
    """(t, valid) as (N, H, W, K) and (N, H, W, 1); binary heads use K = 1."""
    labels = np.asarray(labels)[..., 0]
    valid = (labels >= 0)[..., None].astype(float)
    if num_classes == 1:
        return np.clip(labels, 0, 1)[..., None].astype(float) * valid, valid
    t = np.zeros(labels.shape + (num_classes,))
    for k in range(num_classes):
        t[..., k] = labels == k
    return t, valid


def np_overlap(labels, p, kind, smooth, class_weights=None, alpha=0.3, beta=0.7):
    """Per-image Dice / Jaccard / Tversky loss written from sums of t and p."""
    t, valid = np_targets(labels, p.shape[-1])
    p = p * valid
    inter = (t * p).sum(axis=(1, 2))
    sum_t, sum_p = t.sum(axis=(1, 2)), p.sum(axis=(1, 2))
    if kind == "dice":
        num, den = 2 * inter + smooth, sum_t + sum_p + smooth
    elif kind == "jaccard":
        num, den = inter + smooth, sum_t + sum_p - inter + smooth
    else:
        num = inter + smooth
        den = inter + alpha * (sum_p - inter) + beta * (sum_t - inter) + smooth
    score = np.where(den > 0, num / np.where(den > 0, den, 1), 1.0)
    w = np.ones(p.shape[-1]) if class_weights is None else np.asarray(class_weights, float)
    return ((1 - score) * w).sum(-1) / w.sum()


def np_bce(labels, p):
    t, valid = np_targets(labels, 1)
    p = np.clip(p, 1e-7, 1 - 1e-7)
    pixel = -(t * np.log(p) + (1 - t) * np.log(1 - p)) * valid
    return pixel.sum(axis=(1, 2, 3)) / np.maximum(valid.sum(axis=(1, 2, 3)), 1)


def np_wbce(labels, p, weights):
    """Weighted mean of pixel BCEs, pixel weight w_bg (1 - t) + w_fg t; 0 without weight."""
    t, valid = np_targets(labels, 1)
    p = np.clip(p, 1e-7, 1 - 1e-7)
    pixel = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    w = (weights[0] * (1 - t) + weights[1] * t) * valid
    total = w.sum(axis=(1, 2, 3))
    return (w * pixel).sum(axis=(1, 2, 3)) / np.where(total > 0, total, 1)


def np_focal(labels, p, gamma, alpha):
    """Binary: alpha_t (1 - p_t)^g; categorical: alpha_k t_k (1 - p_k)^g."""
    t, valid = np_targets(labels, p.shape[-1])
    p = np.clip(p, 1e-7, 1 - 1e-7)
    if p.shape[-1] == 1:
        p_t = np.where(t == 1, p, 1 - p)
        a_t = 1.0 if alpha is None else np.where(t == 1, alpha, 1 - alpha)
        pixel = (-a_t * (1 - p_t) ** gamma * np.log(p_t))[..., 0]
    else:
        a = 1.0 if alpha is None else np.asarray(alpha, float)
        pixel = -(a * t * (1 - p) ** gamma * np.log(p)).sum(-1)
    valid = valid[..., 0]
    return (pixel * valid).sum(axis=(1, 2)) / np.maximum(valid.sum(axis=(1, 2)), 1)


def np_wcce(labels, p, weights):
    t, valid = np_targets(labels, p.shape[-1])
    pixel = -(t * np.asarray(weights) * np.log(np.clip(p, 1e-7, 1))).sum(-1)
    return pixel.sum(axis=(1, 2)) / np.maximum(valid.sum(axis=(1, 2, 3)), 1)


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def one_hot(labels, num_classes):
    """Keras-style one-hot with all-zero rows at ignored pixels."""
    return np_targets(labels, num_classes)[0].astype("float32")


@pytest.fixture
def three_class(rng):
    """Labels (2, 6, 5, 1) in {-1, 0, 1, 2} and softmax probabilities, plus logits."""
    labels = rng.integers(-1, 3, size=(2, 6, 5, 1)).astype("int32")
    logits = rng.normal(scale=2.0, size=(2, 6, 5, 3)).astype("float32")
    return labels, logits, softmax(logits.astype(float)).astype("float32")


@pytest.fixture
def binary(rng):
    """Mask (2, 6, 5, 1) in {-1, 0, 1}, sigmoid probabilities and logits."""
    labels = rng.integers(-1, 2, size=(2, 6, 5, 1)).astype("int32")
    logits = rng.normal(scale=2.0, size=(2, 6, 5, 1)).astype("float32")
    return labels, logits, sigmoid(logits.astype(float)).astype("float32")


def value(loss, y_true, y_pred):
    return float(loss(y_true, y_pred))


# Every loss with non-default arguments, its head ("binary"/"three_class") and
# its NumPy reference as a function of (labels, probabilities).
CASES = {
    "dice_binary": (lambda: Dice(smooth=0.5), "binary",
                    lambda y, p: np_overlap(y, p, "dice", 0.5)),
    "dice_3class": (lambda: Dice(smooth=1.0, class_weights=(0.5, 1, 2)), "three_class",
                    lambda y, p: np_overlap(y, p, "dice", 1.0, (0.5, 1, 2))),
    "jaccard_binary": (lambda: Jaccard(smooth=2.0), "binary",
                       lambda y, p: np_overlap(y, p, "jaccard", 2.0)),
    "jaccard_3class": (lambda: Jaccard(smooth=0.0), "three_class",
                       lambda y, p: np_overlap(y, p, "jaccard", 0.0)),
    "tversky_binary": (lambda: Tversky(alpha=0.2, beta=0.8, smooth=1.0), "binary",
                       lambda y, p: np_overlap(y, p, "tversky", 1.0, alpha=0.2, beta=0.8)),
    "tversky_3class": (lambda: Tversky(alpha=0.6, beta=0.4, class_weights=(0, 1, 1)),
                       "three_class",
                       lambda y, p: np_overlap(y, p, "tversky", 1.0, (0, 1, 1), 0.6, 0.4)),
    "focal_binary": (lambda: Focal(gamma=2.0, alpha=0.25), "binary",
                     lambda y, p: np_focal(y, p, 2.0, 0.25)),
    "focal_binary_noalpha": (lambda: Focal(gamma=1.5, alpha=None), "binary",
                             lambda y, p: np_focal(y, p, 1.5, None)),
    "focal_3class": (lambda: Focal(gamma=2.0, alpha=(0.25, 0.5, 1.0)), "three_class",
                     lambda y, p: np_focal(y, p, 2.0, (0.25, 0.5, 1.0))),
    "bce_dice": (lambda: BCEDice(smooth=100.0, bce_weight=0.7, dice_weight=1.3), "binary",
                 lambda y, p: 0.7 * np_bce(y, p) + 1.3 * np_overlap(y, p, "dice", 100.0)),
    "wcce": (lambda: WeightedCategoricalCrossentropy((1, 1, 10)), "three_class",
             lambda y, p: np_wcce(y, p, (1, 1, 10))),
    "wbce": (lambda: WeightedBinaryCrossentropy((1, 5)), "binary",
             lambda y, p: np_wbce(y, p, (1, 5))),
}


def case_data(head, three_class, binary):
    return three_class if head == "three_class" else binary


# ---------------------------------------------------------------------------
# Hand-computed values, one table per loss
# ---------------------------------------------------------------------------

T4 = np.array([[[1], [1], [0], [0]]], dtype="int32")[None]          # (1, 1, 4, 1)
P4 = np.array([[[0.9], [0.6], [0.2], [0.0]]], dtype="float32")[None]
# tp = 1.5, fp = 0.2, fn = 0.5, sum(t) = 2, sum(p) = 1.7


@pytest.mark.parametrize("loss, expected", [
    (Dice(smooth=1.0), 1 - 4.0 / 4.7),                      # (2*1.5 + 1) / (2 + 1.7 + 1)
    (Dice(smooth=0.0), 1 - 3.0 / 3.7),
    (Jaccard(smooth=1.0), 0.21875),                          # 1 - 2.5 / (2 + 1.7 - 1.5 + 1)
    (Tversky(alpha=0.3, beta=0.7, smooth=1.0), 1 - 2.5 / 2.91),  # 1.5 + .3*.2 + .7*.5 + 1
    (Tversky(alpha=1.0, beta=1.0, smooth=1.0), 0.21875),     # = Jaccard
])
def test_overlap_losses_hand_computed(loss, expected):
    assert value(loss, T4, P4) == pytest.approx(expected, abs=1e-6)


def test_focal_binary_hand_computed():
    y = np.array([[[[1], [0]]]], dtype="int32")
    p = np.array([[[[0.8], [0.4]]]], dtype="float32")
    # (0.25 * 0.2**2 * -ln 0.8 + 0.75 * 0.4**2 * -ln 0.6) / 2
    expected = (0.25 * 0.04 * 0.2231435513 + 0.75 * 0.16 * 0.5108256238) / 2
    assert expected == pytest.approx(0.0317652552, abs=1e-9)
    assert value(Focal(gamma=2.0, alpha=0.25), y, p) == pytest.approx(expected, abs=1e-7)


def test_focal_categorical_hand_computed():
    y = np.array([[[0, 2]]], dtype="int32")
    p = np.array([[[[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]]], dtype="float32")
    # alpha 1: (0.5**2 * -ln 0.5 + 0.2**2 * -ln 0.8) / 2
    expected = (0.25 * 0.6931471806 + 0.04 * 0.2231435513) / 2
    assert value(Focal(gamma=2.0, alpha=None), y, p) == pytest.approx(expected, abs=1e-7)
    # per-class alpha weights each pixel by its true class's weight
    weighted = (0.1 * 0.25 * 0.6931471806 + 3.0 * 0.04 * 0.2231435513) / 2
    assert value(Focal(alpha=(0.1, 1.0, 3.0)), y, p) == pytest.approx(weighted, abs=1e-7)


def test_focal_matches_keras_categorical_focal_crossentropy(three_class):
    labels, _, probs = three_class
    valid_labels = np.maximum(labels, 0)   # Keras' loss knows no ignore label
    ours = value(Focal(gamma=2.0, alpha=0.25), valid_labels, probs)
    theirs = float(keras.losses.CategoricalFocalCrossentropy(alpha=0.25, gamma=2.0)(
        one_hot(valid_labels, 3), probs))
    assert ours == pytest.approx(theirs, rel=1e-5)


def test_bce_dice_hand_computed():
    y = np.array([[[[1], [0]]]], dtype="int32")
    p = np.array([[[[0.5], [0.5]]]], dtype="float32")
    # BCE = ln 2; Dice = (2 * 0.5 + s) / (1 + 1 + s)
    assert value(BCEDice(smooth=0.0), y, p) == pytest.approx(math.log(2) + 0.5, abs=1e-6)
    assert value(BCEDice(), y, p) == pytest.approx(math.log(2) + 1 / 102, abs=1e-6)
    assert value(BCEDice(bce_weight=2.0, dice_weight=0.0), y, p) == pytest.approx(
        2 * math.log(2), abs=1e-6)


def test_wcce_hand_computed():
    y = np.array([[[0, 2]]])
    p = np.array([[[[0.8, 0.1, 0.1], [0.2, 0.3, 0.5]]]], dtype="float32")
    expected = (0.2231435513 + 10 * 0.6931471806) / 2
    assert expected == pytest.approx(3.5773077, abs=1e-6)
    assert value(WeightedCategoricalCrossentropy((1, 1, 10)), y, p) == pytest.approx(
        expected, abs=1e-6)


def test_wcce_config_keys_unchanged():
    """A model is being trained with this loss: its config must stay as it was."""
    loss = WeightedCategoricalCrossentropy((1, 1, 10))
    assert loss.get_config() == {"name": "weighted_categorical_crossentropy",
                                 "reduction": "sum_over_batch_size",
                                 "class_weights": [1.0, 1.0, 10.0], "from_logits": False}
    assert keras.saving.get_registered_name(WeightedCategoricalCrossentropy) == \
        "nuclib>WeightedCategoricalCrossentropy"
    assert isinstance(loss, NuclibLoss)


# 3x3 binary table, -1 = padding: foreground p .8 .6 .9, background p .2 .5 .1 .3 .25.
Y33 = np.array([[1, 0, -1], [0, 1, 0], [0, 0, 1]], "int32")[None, ..., None]
P33 = np.array([[0.8, 0.2, 0.9], [0.5, 0.6, 0.1], [0.3, 0.25, 0.9]], "float32")[None, ..., None]
FG33 = -(math.log(0.8) + math.log(0.6) + math.log(0.9))                     # 0.8393297
BG33 = -(math.log(0.8) + math.log(0.5) + math.log(0.9) + math.log(0.7) + math.log(0.75))


@pytest.mark.parametrize("weights, expected", [
    ((1, 1), 0.3131672443),       # (FG + BG) / 8: plain BCE over the 8 labelled pixels
    ((1, 4), 0.2954898251),       # (4 FG + BG) / (4 * 3 + 5)
    ((2, 8), 0.2954898251),       # only the ratio counts
    ((1, 1e6), 0.2797766526),     # (1e6 FG + BG) / (3e6 + 5): almost the foreground mean
    ((0, 1), 0.2797765636),       # FG / 3
    ((1, 0), 0.3332016528),       # BG / 5
])
def test_weighted_bce_hand_computed(weights, expected):
    assert (weights[1] * FG33 + weights[0] * BG33) / (3 * weights[1] + 5 * weights[0]) == \
        pytest.approx(expected, abs=1e-9)
    assert value(WeightedBinaryCrossentropy(weights), Y33, P33) == pytest.approx(expected,
                                                                                 abs=1e-6)
    logits = np.log(P33 / (1 - P33))
    assert value(WeightedBinaryCrossentropy(weights, from_logits=True), Y33, logits) == \
        pytest.approx(expected, abs=1e-6)


def test_weighted_bce_with_equal_weights_is_plain_bce(binary):
    labels, logits, probs = binary
    for equal in ((1, 1), (3, 3)):
        np.testing.assert_allclose(
            np.asarray(losses.weighted_binary_crossentropy(labels, probs, equal)),
            np.asarray(losses.binary_crossentropy(labels, probs)), rtol=1e-6)
        np.testing.assert_allclose(
            np.asarray(losses.weighted_binary_crossentropy(labels, logits, equal, True)),
            np.asarray(losses.binary_crossentropy(labels, logits, True)), rtol=1e-6)


def test_weighted_bce_extreme_weights_stay_finite():
    y = np.zeros((2, 4, 4, 1), "int32")
    y[0, 1:3, 1:3] = 1                               # image 0: 4 nuclei pixels
    y[:, -1] = -1                                    # padding; image 1: background only
    p = np.where(y == 1, 0.0, 1.0).astype("float32")  # every pixel as wrong as can be
    per_image = np.asarray(WeightedBinaryCrossentropy((1, 1e6)).call(y, p))
    assert np.all(np.isfinite(per_image))
    # the clipped maximum, -ln 1e-7 = 16.1 (15.9 where float32 rounds 1 - 1e-7)
    assert np.all((per_image > 15.9) & (per_image < 16.2)), per_image
    logits = np.where(y == 1, -80.0, 80.0).astype("float32")
    per_image = np.asarray(WeightedBinaryCrossentropy((1, 1e6), from_logits=True).call(y, logits))
    assert per_image == pytest.approx([80.0, 80.0], rel=1e-5)


def test_weighted_bce_extreme_weights_train_save_and_load(tmp_path, rng):
    model = tiny_model(1, "linear")
    loss = WeightedBinaryCrossentropy((1, 1e6), from_logits=True)
    y = (rng.random((4, 8, 8, 1)) < 0.05).astype("int32")
    y[:, :2] = -1
    x = rng.normal(scale=50.0, size=(4, 8, 8, 1)).astype("float32")   # logits far from 0
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss=loss)
    history = model.fit(x, y, epochs=2, batch_size=4, verbose=0).history["loss"]
    assert np.all(np.isfinite(history))
    assert all(np.all(np.isfinite(keras.ops.convert_to_numpy(w))) for w in model.weights)
    before = model.evaluate(x, y, verbose=0)
    assert np.isfinite(before)

    path = tmp_path / "wbce.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True, compile=True)
    assert isinstance(loaded.loss, WeightedBinaryCrossentropy)
    assert loaded.loss.get_config() == loss.get_config() == {
        "name": "weighted_binary_crossentropy", "reduction": "sum_over_batch_size",
        "class_weights": [1.0, 1e6], "from_logits": True}
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(before, rel=1e-6)


@pytest.mark.parametrize("weights, message", [
    ((1, -1), "must be finite and non-negative"),
    ((0, 0), "positive sum"),
    ((1, float("nan")), "must be finite"),
    ((1, float("inf")), "must be finite"),
    ((1, 1, 10), r"two numbers \(w_background, w_foreground\)"),
    ((1,), "two numbers"),
    (5.0, "two numbers"),
])
def test_weighted_bce_bad_weights_raise(weights, message):
    with pytest.raises(ValueError, match=message):
        WeightedBinaryCrossentropy(weights)
    with pytest.raises(ValueError, match=message):
        losses.weighted_binary_crossentropy(Y33, P33, weights)


# ---------------------------------------------------------------------------
# NumPy references on random tables
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("case", sorted(CASES))
def test_loss_equals_numpy_reference(case, three_class, binary):
    make, head, reference = CASES[case]
    labels, _, probs = case_data(head, three_class, binary)
    loss = make()
    expected = reference(labels, probs.astype(float))
    per_image = np.asarray(loss.call(labels.astype("float32"), probs))
    np.testing.assert_allclose(per_image, expected, rtol=1e-5, atol=1e-6)
    assert value(loss, labels, probs) == pytest.approx(expected.mean(), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("case", sorted(CASES))
def test_functional_twin_equals_class(case, three_class, binary):
    make, head, _ = CASES[case]
    labels, _, probs = case_data(head, three_class, binary)
    loss = make()
    config = {k: v for k, v in loss.get_config().items() if k not in ("name", "reduction")}
    twin = {Dice: losses.dice_loss, Jaccard: losses.jaccard_loss, Tversky: losses.tversky_loss,
            Focal: losses.focal_loss, BCEDice: losses.bce_dice_loss,
            WeightedCategoricalCrossentropy: losses.weighted_categorical_crossentropy,
            WeightedBinaryCrossentropy: losses.weighted_binary_crossentropy}[type(loss)]
    np.testing.assert_allclose(np.asarray(twin(labels, probs, **config)),
                               np.asarray(loss.call(labels, probs)), rtol=1e-6)


# ---------------------------------------------------------------------------
# Perfect predictions, empty masks, ignored pixels, target forms, logits
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("case", sorted(CASES))
def test_perfect_prediction_has_zero_loss(case, three_class, binary):
    make, head, _ = CASES[case]
    labels = case_data(head, three_class, binary)[0]
    num_classes = 3 if head == "three_class" else 1
    perfect = np.eye(3, dtype="float32")[np.maximum(labels[..., 0], 0)] if num_classes == 3 \
        else np.maximum(labels, 0).astype("float32")
    # exact zero for overlap losses; cross-entropies see log(1 - 1e-7) from clipping
    assert value(make(), labels, perfect) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("loss_cls", [Dice, Jaccard, Tversky])
def test_empty_target_and_prediction_is_zero_loss(loss_cls):
    y = np.zeros((1, 4, 4, 1), "int32")
    p = np.zeros((1, 4, 4, 1), "float32")
    assert value(loss_cls(smooth=1.0), y, p) == 0.0
    assert value(loss_cls(smooth=0.0), y, p) == 0.0      # defined as perfect, not 0/0


def test_empty_target_with_prediction():
    y = np.zeros((1, 2, 2, 1), "int32")
    p = np.full((1, 2, 2, 1), 0.5, "float32")             # predicted mass P = 2
    assert value(Dice(smooth=1.0), y, p) == pytest.approx(2 / 3, abs=1e-6)      # P / (P + s)
    assert value(Dice(smooth=0.0), y, p) == pytest.approx(1.0)
    assert value(BCEDice(), y, p) == pytest.approx(math.log(2) + 2 / 102, abs=1e-6)


def test_fully_ignored_image_has_zero_loss(three_class, binary):
    for case, (make, head, _) in CASES.items():
        _, _, probs = case_data(head, three_class, binary)
        labels = -np.ones(probs.shape[:-1] + (1,), "int32")
        assert value(make(), labels, probs) == 0.0, case


@pytest.mark.parametrize("case", sorted(CASES))
def test_ignored_pixels_are_ignored(case, rng):
    make, head, _ = CASES[case]
    num_classes = 3 if head == "three_class" else 1
    labels = rng.integers(0, max(num_classes, 2), size=(1, 1, 12, 1)).astype("int32")
    probs = rng.uniform(0.05, 1.0, size=(1, 1, 12, num_classes)).astype("float32")
    if num_classes > 1:
        probs /= probs.sum(-1, keepdims=True)
    keep = np.array([1, 0, 1, 1, 0, 0, 1, 1, 1, 0, 1, 1], bool)
    masked = labels.copy()
    masked[0, 0, ~keep] = -1
    expected = value(make(), labels[:, :, keep], probs[:, :, keep])
    assert value(make(), masked, probs) == pytest.approx(expected, rel=1e-5, abs=1e-7)
    changed = probs.copy()
    changed[0, 0, ~keep] = changed[0, 0, ~keep][:, ::-1]  # other predictions where ignored
    if num_classes == 1:
        changed[0, 0, ~keep] = 1.0 - changed[0, 0, ~keep]
    assert value(make(), masked, changed) == pytest.approx(expected, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("case", sorted(CASES))
def test_integer_and_one_hot_targets_agree(case, three_class, binary):
    make, head, _ = CASES[case]
    labels, _, probs = case_data(head, three_class, binary)
    expected = value(make(), labels, probs)
    forms = [labels[..., 0], labels.astype("float32")]
    if head == "three_class":
        forms.append(one_hot(labels, 3))
        forms.append(one_hot(labels, 3).astype("int32"))
    for form in forms:
        assert value(make(), form, probs) == pytest.approx(expected, rel=1e-6), form.shape


@pytest.mark.parametrize("case", sorted(CASES))
def test_from_logits_equivalence(case, three_class, binary):
    make, head, _ = CASES[case]
    labels, logits, probs = case_data(head, three_class, binary)
    config = make().get_config()
    with_logits = type(make()).from_config({**config, "from_logits": True})
    assert value(with_logits, labels, logits) == pytest.approx(
        value(make(), labels, probs), rel=1e-4)


def test_binary_losses_accept_float_masks(binary):
    labels, _, probs = binary
    soft = np.where(labels < 0, -1.0, labels * 0.75).astype("float32")   # soft targets
    t, valid = np.clip(soft, 0, 1), (soft >= 0).astype(float)
    pd = probs.astype(float) * valid
    inter, st, sp = (t * pd).sum((1, 2, 3)), (t * valid).sum((1, 2, 3)), pd.sum((1, 2, 3))
    expected = np.mean(1 - (2 * inter + 1) / (st + sp + 1))
    assert value(Dice(), soft, probs) == pytest.approx(expected, rel=1e-5)


# ---------------------------------------------------------------------------
# Serialization
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("case", sorted(CASES))
def test_config_round_trip(case, three_class, binary):
    make, head, _ = CASES[case]
    labels, _, probs = case_data(head, three_class, binary)
    loss = make()
    clone = type(loss).from_config(loss.get_config())
    assert clone.get_config() == loss.get_config()
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(loss), safe_mode=True)
    assert type(restored) is type(loss)
    assert restored.get_config() == loss.get_config()
    assert value(restored, labels, probs) == value(loss, labels, probs)


# ---------------------------------------------------------------------------
# Composition
# ---------------------------------------------------------------------------

def test_weighted_sum_value_and_structure(three_class):
    labels, _, probs = three_class
    a, b = WeightedCategoricalCrossentropy((1, 1, 10)), Dice(class_weights=(0, 1, 1))
    combined = a + 0.5 * b
    assert isinstance(combined, CombinedLoss)
    assert combined.weights == [1.0, 0.5]
    expected = value(a, labels, probs) + 0.5 * value(b, labels, probs)
    assert value(combined, labels, probs) == pytest.approx(expected, rel=1e-6)

    twice = b * 2 + (a + b) * 3                  # nested sums are flattened
    assert twice.weights == [2.0, 3.0, 3.0]
    assert value(twice, labels, probs) == pytest.approx(
        5 * value(b, labels, probs) + 3 * value(a, labels, probs), rel=1e-6)
    assert sum([a, b]).weights == [1.0, 1.0]


def test_weighted_sum_with_keras_loss_and_sample_weight(binary):
    labels, _, probs = binary
    mask = np.maximum(labels, 0).astype("float32")   # Keras' BCE knows no ignore label
    bce = keras.losses.BinaryCrossentropy()
    assert (BCEDice() + bce).losses[1] is bce and (bce + BCEDice()).losses[0] is bce
    combined = CombinedLoss([BCEDice(), bce], weights=[1.0, 0.25])
    expected = value(BCEDice(), mask, probs) + 0.25 * value(bce, mask, probs)
    assert value(combined, mask, probs) == pytest.approx(expected, rel=1e-5)
    weights = np.array([1.0, 3.0], "float32")
    # sample weights scale each image's sum of terms; Keras' BCE is averaged per image
    bce_per_image = np.asarray(keras.losses.BinaryCrossentropy(reduction=None)(
        mask, probs)).mean(axis=(1, 2))
    per_image = np.asarray(BCEDice().call(mask, probs)) + 0.25 * bce_per_image
    expected = np.mean(weights * per_image)
    assert float(combined(mask, probs, sample_weight=weights)) == pytest.approx(
        expected, rel=1e-5)


def test_weighted_sum_serialization_round_trip(three_class):
    labels, _, probs = three_class
    combined = WeightedCategoricalCrossentropy((1, 1, 10)) + 0.5 * Focal(alpha=(1, 1, 2)) \
        + Tversky(class_weights=(0, 1, 1)) * 2
    config = keras.saving.serialize_keras_object(combined)
    assert config["registered_name"] == "nuclib>CombinedLoss"
    restored = keras.saving.deserialize_keras_object(config, safe_mode=True)
    assert [type(m) for m in restored.losses] == [WeightedCategoricalCrossentropy, Focal, Tversky]
    assert restored.weights == [1.0, 0.5, 2.0]
    assert restored.get_config() == combined.get_config()
    assert value(restored, labels, probs) == value(combined, labels, probs)


def tiny_model(channels: int, activation: str):
    inputs = keras.Input((8, 8, 1), name="tiny_input")
    outputs = keras.layers.Conv2D(channels, 3, padding="same", activation=activation,
                                  name="tiny_head")(inputs)
    return keras.Model(inputs, outputs, name="tiny")


@pytest.mark.parametrize("head", ["three_class", "binary"])
def test_weighted_sum_survives_keras_save_and_load(head, tmp_path, rng):
    if head == "three_class":
        model = tiny_model(3, "softmax")
        loss = WeightedCategoricalCrossentropy((1, 1, 10)) + 0.5 * Dice(class_weights=(0, 1, 1))
        y = rng.integers(-1, 3, size=(4, 8, 8, 1)).astype("int32")
    else:
        model = tiny_model(1, "linear")
        loss = BCEDice(from_logits=True) + 0.5 * Focal(from_logits=True)
        y = rng.integers(-1, 2, size=(4, 8, 8, 1)).astype("int32")
    x = rng.normal(size=(4, 8, 8, 1)).astype("float32")
    model.compile(optimizer="adam", loss=loss)
    history = model.fit(x, y, epochs=3, batch_size=4, verbose=0).history["loss"]
    assert np.all(np.isfinite(history)) and history[-1] < history[0]   # gradients flow
    before = model.evaluate(x, y, verbose=0)     # graph mode with integer targets
    assert before == pytest.approx(float(loss(y, model.predict(x, verbose=0))), rel=1e-5)

    path = tmp_path / "tiny.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True, compile=True)
    assert isinstance(loaded.loss, CombinedLoss)
    assert loaded.loss.get_config() == loss.get_config()
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(before, rel=1e-6)


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------

def test_mismatched_class_counts_raise(three_class):
    labels, _, probs = three_class
    four = one_hot(labels, 4)
    for loss in (Dice(), Jaccard(), Tversky(), Focal(), WeightedCategoricalCrossentropy()):
        with pytest.raises(ValueError, match=r"3 classes.*one-hot targets with 3 channels"):
            loss(four, probs)


def test_class_weights_of_wrong_length_raise(three_class):
    labels, _, probs = three_class
    for loss in (Dice(class_weights=(1, 2)), Jaccard(class_weights=(1, 1, 1, 1)),
                 Tversky(class_weights=(1,)), WeightedCategoricalCrossentropy((1, 10))):
        with pytest.raises(ValueError, match=r"class_weights has \d entries but y_pred has 3"):
            loss(labels, probs)
    with pytest.raises(ValueError, match="alpha has 2 entries but y_pred has 3 classes"):
        Focal(alpha=(1, 2))(labels, probs)


def test_binary_losses_reject_multichannel_input(three_class, binary):
    labels, _, probs = three_class
    with pytest.raises(ValueError, match="BCEDice expects a one-channel"):
        BCEDice()(labels, probs)
    with pytest.raises(ValueError, match="per-class weights but y_pred has one channel"):
        Focal(alpha=(1, 2))(binary[0], binary[2])
    with pytest.raises(ValueError, match=r"expected a binary mask"):
        Dice()(np.zeros((2, 6, 5, 2), "float32"), binary[2])


@pytest.mark.parametrize("make, message", [
    (lambda: Dice(smooth=-1), "smooth must be >= 0"),
    (lambda: Tversky(alpha=-0.1), "alpha must be >= 0"),
    (lambda: Focal(gamma=-2), "gamma must be >= 0"),
    (lambda: BCEDice(dice_weight=-1), "dice_weight must be >= 0"),
    (lambda: Dice(class_weights=(0, 0, 0)), "non-negative with a positive sum"),
    (lambda: WeightedCategoricalCrossentropy(class_weights=(1, -1, 10)),
     "must be finite and non-negative"),
    (lambda: weighted_categorical_crossentropy(np.zeros((1, 2, 2), "int32"),
                                               np.full((1, 2, 2, 3), 1 / 3, "float32"),
                                               class_weights=(1, 1, float("nan"))),
     "must be finite and non-negative"),
    (lambda: CombinedLoss([Dice(), Jaccard()], weights=[1.0]), "2 losses but 1 weights"),
    (lambda: CombinedLoss([]), "at least one loss"),
    (lambda: CombinedLoss(["dice"]), "must be keras.losses.Loss instances"),
])
def test_bad_arguments_raise(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_adding_a_number_is_a_type_error():
    with pytest.raises(TypeError):
        Dice() + 1
    with pytest.raises(TypeError):
        Dice() * "2"
