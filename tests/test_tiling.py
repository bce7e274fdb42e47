"""Tiled inference: tiled == whole-image, blending, receptive field, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import ndimage

from nuclib.models import SMALL_ARGS, swin_unet, unet
from nuclib.postprocess.tiling import TiledInferencer, receptive_field_radius

STRIDE = 8  # 2**depth of the test U-Net


def _randomize_batch_norm(model, seed: int) -> None:
    # Non-trivial moving statistics: tiles only match the whole image if batch
    # norm runs in inference mode (per-tile batch statistics would differ).
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        if "moving_variance" in weight.path:
            weight.assign(rng.uniform(0.5, 1.5, weight.shape))
        elif "moving_mean" in weight.path:
            weight.assign(rng.normal(0.0, 0.3, weight.shape))


@pytest.fixture(scope="module")
def models():
    out = {}
    for channels in (1, 3):
        model = unet(input_shape=(None, None, channels), depth=3, filters=4, batch_norm=True)
        _randomize_batch_norm(model, seed=channels)
        out[channels] = model
    return out


def _whole_image(model, image: np.ndarray) -> np.ndarray:
    """Reference: the whole image, reflect-padded (bottom/right) to the stride."""
    height, width = image.shape[:2]
    pad = [(0, -height % STRIDE), (0, -width % STRIDE), (0, 0)]
    return model.predict_on_batch(np.pad(image, pad, mode="reflect")[None])[0][:height, :width]


def _pointwise(batch: np.ndarray) -> np.ndarray:
    """A per-pixel 'model' with two outputs in [0, 1]."""
    p = 1 / (1 + np.exp(-batch[..., :1]))
    return np.concatenate([p, 1 - p], axis=-1)


# -- tiled == whole image -------------------------------------------------------
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("shape", [(1000, 777), (37, 1500), (256, 256), (64, 64)])
def test_crop_tiling_equals_whole_image(models, shape, channels):
    model = models[channels]
    image = np.random.default_rng(sum(shape)).random((*shape, channels), dtype=np.float32)
    tiled = TiledInferencer(model, tile_size=256, blend="crop", progress=False).predict(image)
    assert tiled.shape == (*shape, 3) and tiled.dtype == np.float32
    np.testing.assert_array_less(np.abs(tiled - _whole_image(model, image)), 1e-4)


@pytest.mark.parametrize("shape", [(300, 520), (37, 700)])
def test_bucketed_tiles_equal_the_whole_image_padded_to_its_buckets(models, shape):
    from nuclib.postprocess.tiling import shape_bucket

    model = models[1]
    image = np.random.default_rng(7).random((*shape, 1), dtype=np.float32)
    seen = []

    def recorded(batch):
        seen.append(batch.shape[1:3])
        return model.predict_on_batch(batch)

    padded = tuple(shape_bucket(s, STRIDE) for s in shape)  # e.g. (320, 576)
    whole = TiledInferencer(recorded, tile_size=1024, overlap=0, buckets=True, multiple=STRIDE,
                            progress=False).predict(image)
    assert seen == [padded]
    pad = [(0, padded[0] - shape[0]), (0, padded[1] - shape[1]), (0, 0)]
    reference = model.predict_on_batch(np.pad(image, pad, mode="reflect")[None])[0]
    np.testing.assert_allclose(whole, reference[:shape[0], :shape[1]], atol=1e-5)
    tiled = TiledInferencer(model, tile_size=256, buckets=True, progress=False).predict(image)
    np.testing.assert_array_less(np.abs(tiled - whole), 1e-4)


@pytest.mark.parametrize("side, multiple", [(0, 16), (100, 0), (12.5, 1), (True, 1)])
def test_shape_bucket_rejects_what_is_no_size(side, multiple):
    from nuclib.postprocess.tiling import shape_bucket

    with pytest.raises(ValueError, match="must be a whole number of pixels >= 1"):
        shape_bucket(side, multiple)


def test_a_side_that_fits_one_tile_is_not_bucketed_past_it():
    # 1000 px rounds up to a 1024 bucket; a 1008 px tile keeps it one tile of 1008.
    seen = []
    inferencer = TiledInferencer(lambda b: seen.append(b.shape[1:3]) or _pointwise(b),
                                 tile_size=1008, overlap=0, multiple=16, buckets=True,
                                 progress=False)
    assert inferencer.predict(np.zeros((1000, 100, 1), np.float32)).shape == (1000, 100, 2)
    assert seen == [(1008, 112)]


def test_grayscale_hxw_input_equals_hxwx1(models):
    image = np.random.default_rng(1).random((90, 130), dtype=np.float32)
    inferencer = TiledInferencer(models[1], tile_size=128, progress=False)
    np.testing.assert_array_equal(inferencer.predict(image), inferencer.predict(image[..., None]))


def test_batch_size_does_not_change_the_result(models):
    image = np.random.default_rng(2).random((300, 260, 1), dtype=np.float32)
    one = TiledInferencer(models[1], tile_size=128, batch_size=1, progress=False).predict(image)
    many = TiledInferencer(models[1], tile_size=128, batch_size=5, progress=False).predict(image)
    np.testing.assert_allclose(one, many, atol=1e-5)


def test_reads_memmap_input(models, tmp_path):
    image = np.random.default_rng(3).random((200, 150, 1), dtype=np.float32)
    stored = np.lib.format.open_memmap(tmp_path / "img.npy", mode="w+", dtype=np.float32,
                                       shape=image.shape)
    stored[:] = image
    inferencer = TiledInferencer(models[1], tile_size=128, progress=False)
    np.testing.assert_array_equal(inferencer.predict(stored), inferencer.predict(image))


def test_crop_constant_image_has_no_seams(models):
    # Away from the image border (where zero padding acts), a constant image
    # gives an output that repeats with the stride (pooling and transposed
    # convolutions make it periodic); a seam would break the repetition.
    inferencer = TiledInferencer(models[1], tile_size=128, progress=False)
    probs = inferencer.predict(np.full((400, 400, 1), 0.7, np.float32))
    r = inferencer.overlap
    interior = probs[r:-r, r:-r]
    assert interior.shape[0] > 2 * 128  # spans several tile borders
    np.testing.assert_allclose(interior[STRIDE:], interior[:-STRIDE], atol=1e-5)
    np.testing.assert_allclose(interior[:, STRIDE:], interior[:, :-STRIDE], atol=1e-5)


# -- blending ---------------------------------------------------------------------
@pytest.mark.parametrize("blend", ["gaussian", "linear"])
def test_blends_stay_in_unit_interval_and_near_whole_image(models, blend):
    image = np.random.default_rng(4).random((300, 230, 1), dtype=np.float32)
    probs = TiledInferencer(models[1], tile_size=128, blend=blend, progress=False).predict(image)
    assert probs.shape == (300, 230, 3)
    assert probs.min() >= 0 and probs.max() <= 1
    np.testing.assert_allclose(probs.sum(-1), 1, atol=1e-5)  # softmax rows stay normalised
    assert np.abs(probs - _whole_image(models[1], image)).mean() < 1e-2


@pytest.mark.parametrize("blend", ["gaussian", "linear"])
@pytest.mark.parametrize("shape", [(70, 300), (333, 129), (20, 20)])
def test_blend_weights_reassemble_a_pointwise_model_exactly(blend, shape):
    # Every tile predicts the true value, so any weighting error (a seam, a
    # hole, a missing normalisation) would show up.
    image = np.random.default_rng(5).normal(size=(*shape, 1)).astype(np.float32)
    probs = TiledInferencer(_pointwise, tile_size=64, overlap=12, blend=blend,
                            progress=False).predict(image)
    np.testing.assert_allclose(probs, _pointwise(image[None])[0], atol=1e-6)


@pytest.mark.parametrize("blend", ["gaussian", "linear", "crop"])
def test_constant_image_gives_constant_output(blend):
    probs = TiledInferencer(_pointwise, tile_size=32, overlap=6, blend=blend,
                            progress=False).predict(np.full((150, 97), 0.25, np.float32))
    expected = 1 / (1 + np.exp(-0.25))
    np.testing.assert_allclose(probs[..., 0], expected, rtol=1e-6)


# -- receptive field ----------------------------------------------------------------
def _probed_radius(model, size: int = 160) -> int:
    """Farthest output pixel that changes when one input pixel is perturbed."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=(1, size, size, 1)).astype(np.float32)
    reference = model.predict_on_batch(base)[0]
    radius = 0
    for offset in range(STRIDE):  # every position relative to the pooling grid
        y = x = size // 2 + offset
        poked = base.copy()
        poked[0, y, x] += 1.0
        changed = np.any(model.predict_on_batch(poked)[0] != reference, axis=-1)
        rows, cols = np.nonzero(changed)
        assert rows.size and rows.min() > 0 and rows.max() < size - 1  # image large enough
        radius = max(radius, np.abs(rows - y).max(), np.abs(cols - x).max())
    return int(radius)


def test_default_overlap_covers_the_true_receptive_field(models):
    inferencer = TiledInferencer(models[1], tile_size=256, progress=False)
    true_radius = _probed_radius(models[1])
    assert true_radius > 3 * STRIDE  # a deep U-Net sees far
    assert true_radius <= inferencer.overlap <= true_radius + STRIDE  # safe and not wasteful
    assert inferencer.multiple == STRIDE


def test_graph_and_probe_radius_agree():
    model = unet(depth=2, filters=4)
    assert receptive_field_radius(model, method="graph") == 23
    assert receptive_field_radius(model, method="probe") == 23


def test_plain_callable_overlap_is_probed_once_and_tiling_is_exact():
    calls = []

    def box_filter(batch):  # 5x5 mean with zero padding: receptive-field radius 2
        calls.append(batch.shape)
        return ndimage.uniform_filter(batch, size=(1, 5, 5, 1), mode="constant")

    inferencer = TiledInferencer(box_filter, tile_size=16, progress=False)
    assert inferencer.overlap is None and inferencer.multiple == 1  # probed on first use
    image = np.random.default_rng(6).random((45, 61), dtype=np.float32)
    tiled = inferencer.predict(image)
    assert inferencer.overlap == 2
    np.testing.assert_allclose(tiled, box_filter(image[None, ..., None])[0], atol=1e-6)
    n_calls = len(calls)
    assert receptive_field_radius(box_filter, channels=1) == 2
    assert len(calls) == n_calls  # measured once, then cached per model


# -- errors ------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 64, 64, 1), (64,)])
def test_rejects_wrong_number_of_dimensions(models, shape):
    inferencer = TiledInferencer(models[1], tile_size=128, progress=False)
    with pytest.raises(ValueError, match=rf"{len(shape)} dimensions .*expected HxW or HxWxC"):
        inferencer.predict(np.zeros(shape, np.float32))


def test_rejects_tile_smaller_than_twice_the_overlap(models):
    # The model's own radius: checked when an image needs several tiles (or on request),
    # so that images fitting one tile still run.
    inferencer = TiledInferencer(models[1], tile_size=96, progress=False)  # 2 * 51 + 8 = 110
    message = r"too small for overlap 51 \(the model's receptive-field radius\).*2 \* overlap"
    with pytest.raises(ValueError, match=message):
        inferencer.check_tiles()
    with pytest.raises(ValueError, match=message):
        inferencer.predict(np.zeros((100, 90, 1), np.float32))
    with pytest.raises(ValueError, match=message):
        inferencer.tile_origins((100, 90))
    image = np.random.default_rng(0).random((90, 96, 1), dtype=np.float32)
    np.testing.assert_array_less(np.abs(inferencer.predict(image)
                                        - _whole_image(models[1], image)), 1e-4)
    # An explicit overlap: when the inferencer is built.
    with pytest.raises(ValueError, match="too small for overlap 40"):
        TiledInferencer(models[1], tile_size=64, overlap=40)


def test_rejects_tile_size_off_the_stride(models):
    with pytest.raises(ValueError, match="multiple of 8"):
        TiledInferencer(models[1], tile_size=250)


def test_rejects_model_that_changes_the_size():
    def shrinking(batch):
        return batch[:, 1:-1, 1:-1]

    inferencer = TiledInferencer(shrinking, tile_size=32, overlap=4, progress=False)
    with pytest.raises(ValueError, match=r"mapped tiles of shape .* same N, h, w"):
        inferencer.predict(np.zeros((50, 50), np.float32))


def test_rejects_channel_mismatch_and_bad_settings(models):
    with pytest.raises(ValueError, match="3 channel.*expects 1") as err:
        TiledInferencer(models[1], tile_size=128, progress=False).predict(
            np.zeros((32, 32, 3), np.float32))
    # The message names the fix, not only the problem.
    assert "Segmenter.preprocess(image)" in str(err.value)
    assert "nuclib.data.prepare_image(image, channels=1)" in str(err.value)
    with pytest.raises(ValueError, match="unknown blend"):
        TiledInferencer(models[1], blend="average")
    with pytest.raises(ValueError, match="batch_size"):
        TiledInferencer(models[1], batch_size=0)
    with pytest.raises(ValueError, match="empty"):
        TiledInferencer(_pointwise, overlap=2, tile_size=16).predict(np.zeros((0, 5)))


# -- progress bar --------------------------------------------------------------------
@pytest.mark.parametrize("progress", [True, False])
def test_progress_bar_can_be_switched_off(capsys, monkeypatch, progress):
    monkeypatch.setattr("nuclib.progress.DELAY", 0)  # draw at once, however quick the work
    TiledInferencer(_pointwise, tile_size=16, overlap=2, progress=progress).predict(
        np.zeros((40, 40), np.float32))
    err = capsys.readouterr().err
    assert ("tiles" in err) is progress


def test_a_network_the_graph_cannot_measure_runs_on_one_tile_and_says_so_on_more():
    """A layer the graph analysis does not know that mixes the whole image: an image
    inside one tile needs no overlap; a larger one asks for an explicit overlap."""
    import keras

    class AddMean(keras.layers.Layer):  # unknown to the analysis, and global
        def call(self, x):
            return x + keras.ops.mean(x, axis=(1, 2), keepdims=True)

    x = keras.Input((None, None, 1))
    y = keras.layers.Conv2D(3, 3, padding="same", name="conv")(x)
    model = keras.Model(x, AddMean(name="add_mean")(y))
    inferencer = TiledInferencer(model, tile_size=64, progress=False)
    assert inferencer.overlap is None and inferencer.approximate_layer is None
    image = np.random.default_rng(0).random((60, 50, 1), np.float32)
    # One tile, the whole image: the network's own output (its mean over this image).
    np.testing.assert_allclose(inferencer.predict(image), model.predict_on_batch(image[None])[0],
                               atol=1e-5)
    assert inferencer.overlap is None
    with pytest.raises(ValueError, match="cannot be measured; pass overlap= explicitly"):
        inferencer.predict(np.zeros((200, 50, 1), np.float32))
    assert TiledInferencer(model, tile_size=64, overlap=8, progress=False).predict(
        np.zeros((200, 50, 1), np.float32)).shape == (200, 50, 3)


# -- Swin-UNet: windowed attention --------------------------------------------------
@pytest.fixture(scope="module")
def swin():
    import keras

    keras.utils.set_random_seed(0)
    return swin_unet(**SMALL_ARGS["swin_unet"])  # patch 2, windows of 4, two stages


def test_swin_receptive_field_follows_its_windows(swin):
    # A token attends within its (shifted) window, at most w - 1 = 3 tokens away:
    # 2 blocks at stride 2 (enc0: 12 px), patch merging (+2), 2 blocks at stride 4
    # (bottleneck: 24 px), patch expanding (2), 2 blocks at stride 2 (dec0: 12 px),
    # the final expanding (1) and the patch embedding: 51 px on each side.
    assert receptive_field_radius(swin, method="graph") == 51
    # What the network measurably reaches is within it (the bound is conservative:
    # a token near its window's edge does not see w - 1 tokens on both sides).
    probed = receptive_field_radius(swin, method="probe")
    assert 24 < probed <= 51, probed


def test_swin_crop_tiling_equals_whole_image(swin):
    # Tile origins are multiples of the side multiple (16), so tiles see the whole
    # image's windows and shifted windows; the overlap covers the attention's reach.
    inferencer = TiledInferencer(swin, tile_size=128, blend="crop", progress=False)
    assert (inferencer.overlap, inferencer.multiple) == (51, 16)
    image = np.random.default_rng(3).random((200, 300, 1), dtype=np.float32)
    assert len(inferencer.tile_origins(image.shape)[1]) > 4
    height, width = image.shape[:2]
    pad = [(0, -height % 16), (0, -width % 16), (0, 0)]
    whole = swin.predict_on_batch(np.pad(image, pad, mode="reflect")[None])[0][:height, :width]
    tiled = inferencer.predict(image)
    np.testing.assert_array_less(np.abs(tiled - whole), 1e-4)
    # Less overlap than the attention reaches: tiles differ from the whole image.
    short = TiledInferencer(swin, tile_size=128, overlap=8, progress=False).predict(image)
    assert np.abs(short - whole).max() > 1e-3


# --------------------------------------------------------------------------- global pooling
def _se_model(squeeze: bool = True):
    """conv 3x3 -> (squeeze-and-excitation) -> conv 3x3: a radius of 2 px but for the squeeze."""
    import keras

    inputs = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", name="c1")(inputs)
    if squeeze:  # the input's average (so a constant image has the same one on every tile)
        s = keras.layers.GlobalAveragePooling2D(name="squeeze")(inputs)
        s = keras.layers.Reshape((1, 1, 1), name="squeeze_shape")(s)
        s = keras.layers.Dense(4, activation="sigmoid", name="excite")(s)
        x = keras.layers.Multiply(name="scale")([x, s])
    outputs = keras.layers.Conv2D(2, 3, padding="same", activation="softmax", name="c2")(x)
    model = keras.Model(inputs, outputs)
    if squeeze:  # strong excitation weights: the tiles' averages visibly change the output
        model.get_layer("excite").kernel.assign(np.full((1, 4), 8.0, np.float32))
        model.get_layer("excite").bias.assign(np.full((4,), -4.0, np.float32))
    return model


def test_global_pooling_is_refused_by_default_and_ignored_on_request():
    from nuclib.postprocess.tiling import WholeImageLayerError, default_overlap

    model = _se_model()
    with pytest.raises(WholeImageLayerError, match="'squeeze' .GlobalAveragePooling2D. mixes"):
        receptive_field_radius(model)
    # Without the squeeze the same two convolutions: 1 + 1 px.
    assert receptive_field_radius(model, global_layers="ignore") == 2
    assert receptive_field_radius(_se_model(squeeze=False)) == 2
    assert default_overlap(model) == (2, "squeeze (GlobalAveragePooling2D)")
    assert default_overlap(_se_model(squeeze=False)) == (2, None)
    # Compiled engines tile by the same facts (nuclib.engines keeps them beside the file).
    from nuclib.engines import network_facts

    facts = network_facts(model)
    assert (facts["overlap"], facts["approximate_layer"]) == (2, "squeeze (GlobalAveragePooling2D)")
    with pytest.raises(ValueError, match="unknown global_layers 'skip'"):
        receptive_field_radius(model, global_layers="skip")


def test_attention_over_all_pixels_is_not_a_summary():
    import keras

    from nuclib.postprocess.tiling import WholeImageLayerError, default_overlap

    inputs = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.Resizing(32, 32, name="resize")(x)
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1)(x))
    with pytest.raises(WholeImageLayerError, match="'resize' .Resizing.*pass overlap="):
        default_overlap(model)


def test_tiles_of_a_squeezing_model_are_approximate_and_say_so():
    model = _se_model()
    tiler = TiledInferencer(model, tile_size=64, progress=False)
    assert tiler.approximate_layer == "squeeze (GlobalAveragePooling2D)"
    assert tiler.overlap == 2 and tiler.receptive_field == 2  # a small radius is not capped
    # A constant image: every tile's average is the image's, so tiles are exact.
    flat = np.full((150, 130, 1), 0.7, np.float32)
    with pytest.warns(UserWarning, match="squeeze .GlobalAveragePooling2D. summarizes"):
        tiled = tiler.predict(flat)
    np.testing.assert_allclose(tiled, model.predict_on_batch(flat[None])[0], atol=1e-6)
    # A gradient: each tile has its own average, so the tiles differ, but only so much.
    ramp = np.linspace(0, 1, 150 * 130, dtype=np.float32).reshape(150, 130, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the warning came once, for the first image
        tiled = tiler.predict(ramp)
    gap = np.abs(tiled - model.predict_on_batch(ramp[None])[0]).max()
    assert 1e-4 < gap < 0.5
    # One tile is the whole image: exact, and no warning.
    whole = TiledInferencer(model, tile_size=256, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(whole.predict(ramp), model.predict_on_batch(ramp[None])[0],
                                   atol=1e-6)


def test_efficientnet_unet_tiles_with_a_capped_overlap():
    from nuclib.models import efficientnet_unet

    model = efficientnet_unet(**SMALL_ARGS["efficientnet_unet"])
    tiler = TiledInferencer(model, tile_size=256, progress=False)
    assert tiler.approximate_layer.endswith("_se_squeeze (GlobalAveragePooling2D)")
    assert tiler.receptive_field == 518  # EfficientNetB0's 5x5 depthwise convs at stride 32
    assert tiler.overlap == (256 - 32) // 4  # half of each tile side is core
    image = np.random.default_rng(0).random((600, 500, 1), dtype=np.float32)
    with pytest.warns(UserWarning, match="overlap is 56 px of a 518 px receptive field"):
        tiled = tiler.predict(image)
    whole = TiledInferencer(model, tile_size=1024, progress=False).predict(image)
    assert np.abs(tiled - whole).max() < 1e-3  # measured: 3.4e-5
