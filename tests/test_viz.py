"""Pictures: every function draws without a display and returns a Figure."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
from skimage.segmentation import find_boundaries

from nuclib import viz
from nuclib.metrics import matching, matching_dataset

matplotlib = pytest.importorskip("matplotlib")  # the `viz` extra
from matplotlib.figure import Figure  # noqa: E402


def draw(disks, shape=(64, 64)) -> np.ndarray:
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    labels = np.zeros(shape, np.int32)
    for i, (cy, cx, r) in enumerate(disks, start=1):
        labels[((yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2) & (labels == 0)] = i
    return labels


@pytest.fixture
def scene():
    truth = draw([(16, 16, 8), (16, 32, 8), (46, 46, 10)])
    gray = np.linspace(0, 255, 64 * 64).reshape(64, 64).astype(np.uint8)
    return gray, truth


def _png_bytes(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def test_overlay_draws_one_outline_per_nucleus(scene):
    image, labels = scene
    fig = viz.overlay(image, labels)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.images) == 1 and len(ax.collections) == 1
    assert len(ax.collections[0].get_segments()) == 3
    assert ax.get_title() == "3 nuclei"
    assert _png_bytes(fig).startswith(b"\x89PNG")


def test_overlay_into_existing_axes_with_instance_colours(scene):
    image, labels = scene
    fig = Figure()
    axes = fig.subplots(1, 2)
    returned = viz.overlay(np.stack([image] * 3, axis=2), labels, ax=axes[1],
                           color="instances", title="")
    assert returned is fig
    assert len(axes[0].images) == 0 and len(axes[1].images) == 1
    colours = axes[1].collections[0].get_colors()
    assert len({tuple(c) for c in colours}) == 3


def test_overlay_rgb_marks_boundaries_and_keeps_the_gray_image(scene):
    image, labels = scene
    out = viz.overlay_rgb(image, labels, color=(255, 0, 255), normalize=False)
    assert out.dtype == np.uint8 and out.shape == (64, 64, 3)
    edge = find_boundaries(labels, mode="inner", connectivity=1)
    assert edge.sum() > 0
    assert np.all(out[edge] == (255, 0, 255))
    assert np.array_equal(out[~edge], np.stack([image[~edge]] * 3, axis=1))
    # every nucleus keeps its interior unpainted
    assert not edge[16, 16] and not edge[46, 46]


def test_overlay_rgb_normalized_is_gray_off_the_outlines(scene):
    image, labels = scene
    out = viz.overlay_rgb(image.astype(np.uint16) * 3, labels)
    edge = find_boundaries(labels, mode="inner", connectivity=1)
    off = out[~edge].astype(int)
    assert np.all(off[:, 0] == off[:, 1]) and np.all(off[:, 1] == off[:, 2])
    assert off[:, 0].min() == 0 and off[:, 0].max() == 255  # contrast stretched
    assert np.all(out[edge] == (255, 255, 0))


def test_overlay_rgb_rejects_labels_of_another_size(scene):
    image, labels = scene
    with pytest.raises(ValueError, match="shape .32, 64., but .64, 64. was expected "
                                         ".one label per pixel of the image."):
        viz.overlay_rgb(image, labels[:32])


def test_error_map_colours_missed_extra_and_matched(scene):
    image, truth = scene
    pred = truth.copy()
    pred[truth == 2] = 0                     # nucleus 2 missed
    pred[50:60, 5:15] = 7                    # one extra prediction
    fig = viz.error_map(image, truth, pred, thresh=0.5, normalize=False)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == ["matched (2)", "missed (1)", "extra (1)"]
    assert "tp 2, fp 1, fn 1" in ax.get_title()
    rgb = np.asarray(ax.images[0].get_array())
    gray = image / 255.0
    missed = np.array(matplotlib.colors.to_rgb(viz.ERROR_COLORS["missed"]))
    extra = np.array(matplotlib.colors.to_rgb(viz.ERROR_COLORS["extra"]))
    matched = np.array(matplotlib.colors.to_rgb(viz.ERROR_COLORS["matched"]))
    # inside the missed nucleus: the image blended 45% toward the "missed" colour
    np.testing.assert_allclose(rgb[16, 32], 0.55 * gray[16, 32] + 0.45 * missed, atol=1e-5)
    np.testing.assert_allclose(rgb[55, 10], 0.55 * gray[55, 10] + 0.45 * extra, atol=1e-5)
    # matched nuclei: untouched inside, outlined in the "matched" colour
    np.testing.assert_allclose(rgb[46, 46], [gray[46, 46]] * 3, atol=1e-5)
    np.testing.assert_allclose(rgb[46, 37], matched, atol=1e-6)  # left rim of nucleus 3


def test_score_curve_one_line_per_model():
    rng = np.random.default_rng(0)
    truth = draw([(16, 16, 8), (40, 40, 10)])
    shifted = np.roll(truth, 2, axis=1)
    taus = [0.5, 0.6, 0.7, 0.8, 0.9]
    records = matching_dataset([truth], [shifted], thresh=taus)
    fig = viz.score_curve({"shifted": records, "perfect": matching(truth, truth, taus),
                           "made up": (taus, rng.uniform(size=5))})
    ax = fig.axes[0]
    assert len(ax.lines) == 3
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["shifted", "perfect",
                                                                   "made up"]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [r.accuracy for r in records])
    np.testing.assert_allclose(ax.lines[1].get_ydata(), 1.0)
    assert ax.get_xlabel() == "IoU threshold"
    f1 = viz.score_curve(records, metric="f1")
    assert f1.axes[0].get_legend() is None and len(f1.axes[0].lines) == 1
    with pytest.raises(ValueError, match="no metric 'dice'"):
        viz.score_curve({"a": records}, metric="dice")
    with pytest.raises(ValueError, match="2 thresholds and 3 scores"):
        viz.score_curve({"a": ([0.5, 0.6], [1, 1, 1])})


def test_probability_panel_shows_image_and_each_class(scene):
    image, labels = scene
    probs = np.zeros((64, 64, 3), np.float32)
    probs[..., 0] = labels == 0
    probs[..., 1] = labels > 0
    fig = viz.probability_panel(image, probs)
    image_axes = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in image_axes] == ["image", "background", "interior",
                                                     "boundary"]
    assert len(fig.axes) == 5  # four panels and the colour bar
    binary = viz.probability_panel(image, probs[..., 1])
    assert [ax.get_title() for ax in binary.axes if ax.images] == ["image", "foreground"]
    assert _png_bytes(binary).startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="same height and width"):
        viz.probability_panel(image, probs[:10])


def test_viz_does_not_touch_pyplot(scene):
    # figures are built without pyplot, so nothing piles up in its figure manager
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    image, labels = scene
    viz.overlay(image, labels)
    viz.error_map(image, labels, labels)
    assert plt.get_fignums() == before


def test_without_matplotlib_the_error_says_which_extra_to_install(scene, monkeypatch):
    image, labels = scene
    # As if matplotlib were not installed (submodules already imported do not help).
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ModuleNotFoundError, match=r'pip install "nuclib\[viz\]"') as err:
        viz.overlay(image, labels)
    assert err.value.name == "matplotlib"
    with pytest.raises(ImportError, match=r'pip install "nuclib\[viz\]"'):
        viz.probability_panel(image, labels > 0)
    # Burnt-in outlines and coloured labels need no matplotlib.
    assert viz.overlay_rgb(image, labels).shape == (64, 64, 3)
    assert viz.colorize_labels(labels).shape == (64, 64, 3)
    with pytest.raises(ImportError, match=r'pip install "nuclib\[viz\]"'):
        viz.plot_training_history({"loss": [1.0, 0.5]})


# --- coloured labels ---------------------------------------------------------------------


def test_colorize_labels_fills_each_nucleus_with_one_colour(scene):
    _, labels = scene
    rgb = viz.colorize_labels(labels)
    assert rgb.dtype == np.uint8 and rgb.shape == (64, 64, 3)
    assert not rgb[labels == 0].any()                        # background black
    colours = {}
    for i in (1, 2, 3):
        inside = np.unique(rgb[labels == i], axis=0)
        assert len(inside) == 1 and inside.any()            # one colour, not black
        colours[i] = tuple(inside[0])
    assert len(set(colours.values())) == 3                  # 1 and 2 touch; 2, 3 consecutive
    np.testing.assert_array_equal(viz.colorize_labels(labels), rgb)   # same seed, same picture
    assert not np.array_equal(viz.colorize_labels(labels, seed=1), rgb)


def test_colorize_labels_never_gives_touching_nuclei_one_colour():
    # 12 x 12 squares of 4 px, every one touching its 8 neighbours, ids shuffled
    rng = np.random.default_rng(3)
    ids = rng.permutation(144).reshape(12, 12) * 7 + 5      # non-sequential ids
    labels = np.kron(ids, np.ones((4, 4), np.int64))
    rgb = viz.colorize_labels(labels)
    cells = rgb[::4, ::4].astype(int)                       # one pixel per square
    for a, b in ((cells[:, :-1], cells[:, 1:]), (cells[:-1], cells[1:]),
                 (cells[:-1, :-1], cells[1:, 1:]), (cells[:-1, 1:], cells[1:, :-1])):
        assert (a != b).any(axis=-1).all()
    assert viz.colorize_labels(np.ones((3, 3), np.uint8)).any(axis=-1).all()  # no background


@pytest.mark.parametrize("labels, message", [
    (np.zeros((4, 4), np.float32), "dtype float32; expected integer instance ids"),
    (np.zeros((2, 4, 4), np.int32), "expected an HxW instance label image"),
    (np.array([[0, -1]]), "negative ids"),
])
def test_colorize_labels_rejects_what_is_not_labels(labels, message):
    with pytest.raises(ValueError, match=message):
        viz.colorize_labels(labels)


# --- training curves ---------------------------------------------------------------------

HISTORY = {"loss": [0.9, 0.6, 0.5, 0.55], "dice_coefficient": [0.3, 0.5, 0.6, 0.65],
           "val_loss": [1.0, 0.7, 0.65, 0.8], "val_dice_coefficient": [0.2, 0.4, 0.5, 0.5],
           "learning_rate": [1e-3, 1e-3, 5e-4, 5e-4]}


def _labels_of(ax):
    return [line.get_label() for line in ax.lines]


def test_training_history_one_axes_per_quantity_with_the_best_epoch():
    fig = viz.plot_training_history(HISTORY)
    assert isinstance(fig, Figure)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "dice_coefficient"]  # no lr
    for ax in fig.axes:
        assert ax.get_xlabel() == "epoch"
        assert _labels_of(ax) == ["training", "validation", "best epoch 3"]  # val_loss min
        training, validation, best = ax.lines
        assert list(training.get_xdata()) == [1, 2, 3, 4]
        assert list(best.get_xdata()) == [3, 3]
    np.testing.assert_allclose(fig.axes[1].lines[1].get_ydata(), HISTORY["val_dice_coefficient"])
    assert _png_bytes(fig).startswith(b"\x89PNG")


def test_training_history_from_a_keras_history_with_chosen_metrics_and_axes():
    class History:  # what keras.callbacks.History offers: a .history dict
        history = {k: v for k, v in HISTORY.items() if not k.startswith("val_")}

    fig = Figure()
    ax = fig.add_subplot()
    returned = viz.plot_training_history(History(), metrics=["learning_rate"], ax=ax)
    assert returned is fig and ax.get_title() == "learning_rate"
    assert _labels_of(ax) == ["training", "best epoch 3"]  # no val_loss: the best loss
    fig = viz.plot_training_history(HISTORY, "dice_coefficient", monitor="val_dice_coefficient")
    assert _labels_of(fig.axes[0])[-1] == "best epoch 3"  # the first of the two maxima


def test_training_history_from_what_nuclib_train_writes(tmp_path):
    import json

    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "model" / "nuclib.json").write_text("{}")
    (run / "log.csv").write_text("epoch,loss,val_loss\n0,1.0,1.2\n1,0.5,0.9\n2,0.4,1.1\n")
    for source in (run / "log.csv", run, run / "model"):
        values = viz.training_history(source)
        assert list(values) == ["loss", "val_loss"]          # the epoch column dropped
        assert values["val_loss"].tolist() == [1.2, 0.9, 1.1]
    (run / "history.json").write_text(json.dumps({"run_dir": str(run), "train_seconds": 3.0,
                                                  "history": HISTORY}))
    fig = viz.plot_training_history(run / "model")          # history.json first
    assert [ax.get_title() for ax in fig.axes] == ["loss", "dice_coefficient"]
    assert viz.training_history(run / "history.json")["loss"].tolist() == HISTORY["loss"]


@pytest.mark.parametrize("history, kwargs, error, message", [
    ({}, {}, ValueError, "not a training history"),
    ([0.5, 0.4], {}, ValueError, "not a training history"),
    ({"loss": [1.0, 0.5], "val_loss": [1.0]}, {}, ValueError, "lists of different lengths"),
    ({"loss": ["high", "low"]}, {}, ValueError, "expected a list of numbers"),
    ({"loss": []}, {}, ValueError, "non-empty list"),
    (HISTORY, {"metrics": ["accuracy"]}, ValueError, "not in the history"),
    (HISTORY, {"monitor": "val_f1"}, ValueError, "monitor 'val_f1' is not in the history"),
    (HISTORY, {"mode": "best"}, ValueError, "expected 'auto', 'min' or 'max'"),
    ({"learning_rate": [1e-3]}, {}, ValueError, "nothing to draw"),
])
def test_training_history_rejects_bad_input(history, kwargs, error, message):
    with pytest.raises(error, match=message):
        viz.plot_training_history(history, **kwargs)


def test_training_history_bad_paths_and_axes(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        viz.plot_training_history(tmp_path / "nope.json")
    with pytest.raises(FileNotFoundError, match="expected history.json or log.csv"):
        viz.plot_training_history(tmp_path)
    (tmp_path / "history.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        viz.plot_training_history(tmp_path / "history.json")
    fig = Figure()
    with pytest.raises(ValueError, match="got 1 axes for 2 metrics"):
        viz.plot_training_history(HISTORY, ax=fig.add_subplot())
