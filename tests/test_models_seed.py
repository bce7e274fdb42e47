"""The factories the seeds use (issue 19): UNet 3+, DeepLabV3+, Swin-UNet, EfficientNet U-Net,
the U-Net's dilation / first kernel / per-stage dropout, and ImageNet encoder weights offline."""

from __future__ import annotations

import functools
import json
import urllib.error
from pathlib import Path

import keras
import numpy as np
import pytest

from nuclib import models
from nuclib.heads import HEADS, head_channels
from nuclib.models import blocks
from nuclib.models.swin_unet import DepthToSpace, SpaceToDepth, WindowAttention, side_multiple
from nuclib.postprocess.tiling import receptive_field_radius
from tests.without_tensorflow import OTHER_BACKENDS, run_without_tensorflow

N_RAYS = 8
# The tiny configurations of nuclib.models.SMALL_ARGS, and the side multiple each should have
# (written out here, so that a wrong SMALL_MULTIPLES entry fails a test).
TINY = {name: models.SMALL_ARGS[name]
        for name in ("unet3plus", "deeplabv3plus", "swin_unet", "efficientnet_unet")}
MULTIPLE = {"unet3plus": 4, "deeplabv3plus": 16, "swin_unet": 16, "efficientnet_unet": 32}
SIZES = [(32, 32), (64, 32)]  # multiples of every factory's side multiple, one non-square
FACTORY_NAMES = list(TINY)


@functools.cache
def tiny_model(factory: str, channels: int = 1, head: str = "three_class"):
    """A tiny model, built once per configuration (do not train the cached copy)."""
    keras.utils.set_random_seed(0)
    return models.FACTORIES[factory](input_shape=(None, None, channels), head=head,
                                     n_rays=N_RAYS, **TINY[factory])


def fresh_model(factory: str, **kwargs):
    keras.utils.set_random_seed(0)
    kwargs.setdefault("input_shape", (None, None, 1))
    return models.FACTORIES[factory](**{**TINY[factory], **kwargs})


def numpy(x):
    return keras.ops.convert_to_numpy(x)


def randomize_batch_norm(model, rng):
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.1, n).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, n).astype("float32"))


def disks(n: int = 4, size: int = 32, seed: int = 0):
    """``n`` noisy images of 1-3 bright disks and their binary masks."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    masks = np.zeros((n, size, size, 1), np.float32)
    for i in range(n):
        for _ in range(rng.integers(1, 4)):
            cy, cx = rng.integers(6, size - 6, 2)
            r = rng.integers(3, 7)
            masks[i, (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r, 0] = 1.0
    images = 0.2 + 0.6 * masks + rng.normal(0, 0.05, masks.shape).astype(np.float32)
    return images.astype(np.float32), masks


def check_head_values(y, head):
    assert np.all(np.isfinite(y))
    if head == "binary":
        assert y.min() >= 0 and y.max() <= 1
    if head in ("three_class", "three_class_distance"):
        assert y[..., :3].min() >= 0 and y[..., :3].max() <= 1
        np.testing.assert_allclose(y[..., :3].sum(axis=-1), 1.0, atol=1e-5)
    if head == "three_class_distance":
        assert y[..., 3].min() >= 0 and y[..., 3].max() <= 1
    if head == "star":
        assert y[..., 0].min() >= 0 and y[..., 0].max() <= 1
        assert np.ptp(y[..., 1:]) > 0  # distances are linear, not squashed


# --- shapes, ranges, names ----------------------------------------------------------------


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("factory", FACTORY_NAMES)
def test_output_shape_and_range_of_every_head(factory, channels, head, rng):
    model = tiny_model(factory, channels, head)
    k = head_channels(head, N_RAYS)
    assert model.output_shape == (None, None, None, k)
    for h, w in SIZES:
        y = numpy(model(rng.random((2, h, w, channels), dtype=np.float32), training=False))
        assert y.shape == (2, h, w, k)
        check_head_values(y, head)


@pytest.mark.parametrize("factory", FACTORY_NAMES)
def test_logits_are_the_three_class_head_without_softmax(factory, rng):
    probs_model = tiny_model(factory)
    logits_model = fresh_model(factory, logits=True)
    logits_model.set_weights(probs_model.get_weights())
    x = rng.random((1, 32, 32, 1), dtype=np.float32)
    logits = numpy(logits_model(x, training=False))
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    np.testing.assert_allclose(numpy(probs_model(x, training=False)),
                               e / e.sum(axis=-1, keepdims=True), atol=1e-5)


@pytest.mark.parametrize("factory", FACTORY_NAMES)
def test_every_layer_name_is_prefixed_unique_and_not_lambda(factory):
    model = fresh_model(factory, name="my_net")
    names = [layer.name for layer in model.layers]
    assert model.name == "my_net"
    assert [n for n in names if not n.startswith("my_net_")] == []
    assert len(set(names)) == len(names)
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in model.layers)
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)  # flat graph


@pytest.mark.parametrize("factory", FACTORY_NAMES)
def test_required_multiple_is_the_documented_one_and_fitting_inputs_work(factory, rng):
    model = tiny_model(factory)
    m = MULTIPLE[factory]
    assert models.required_multiple(model) == m
    out = models.predict(model, rng.random((m, 3 * m, 1), dtype=np.float32))
    assert out.shape == (m, 3 * m, 3)
    with pytest.raises(ValueError, match=f"multiples of {m}"):
        models.predict(model, np.zeros((m + m // 2, m, 1), np.float32))
    with pytest.raises(ValueError, match="not a positive multiple"):
        fresh_model(factory, input_shape=(m + m // 2, m, 1))


@pytest.mark.parametrize("factory, kwargs, multiple", [
    ("unet3plus", dict(depth=3), 8),
    ("deeplabv3plus", dict(output_stride=8), 8),
    ("swin_unet", dict(depths=(2, 2, 2), num_heads=(1, 2, 4)), 32),
    ("swin_unet", dict(patch_size=4, window_size=2), 16),
])
def test_required_multiple_follows_the_arguments(factory, kwargs, multiple, rng):
    model = fresh_model(factory, **kwargs)
    assert models.required_multiple(model) == multiple
    y = numpy(model(rng.random((1, multiple, 2 * multiple, 1), dtype=np.float32)))
    assert y.shape == (1, multiple, 2 * multiple, 3)


def test_swin_side_multiple_of_the_defaults_is_256():
    assert side_multiple() == 256
    assert side_multiple(patch_size=4, depths=(2, 2, 2, 2), window_size=7) == 224


def test_small_args_cover_every_factory_and_build_at_their_side_multiple(rng):
    assert set(models.SMALL_ARGS) == set(models.FACTORIES)
    assert set(models.SMALL_MULTIPLES) == set(models.FACTORIES)
    for factory, kwargs in models.SMALL_ARGS.items():
        keras.utils.set_random_seed(0)
        model = models.FACTORIES[factory](**kwargs)
        m = models.SMALL_MULTIPLES[factory]
        assert models.required_multiple(model) == m, factory
        y = numpy(model(rng.random((1, m, 2 * m, 1), dtype=np.float32), training=False))
        assert y.shape[:3] == (1, m, 2 * m), factory
        assert np.all(np.isfinite(y)), factory
        # The smallest sensible network: under 100 k parameters, but for the fixed
        # keras.applications encoders (MobileNetV2 at alpha 0.35: 0.3 M, EfficientNetB0: 4 M).
        fixed_encoder = factory in ("mobilenet_unet", "efficientnet_unet")
        assert model.count_params() < (5_000_000 if fixed_encoder else 100_000), (
            factory, model.count_params())


# --- persistence and training -------------------------------------------------------------


@pytest.mark.parametrize("factory", FACTORY_NAMES)
def test_keras_save_and_safe_load_give_identical_outputs(factory, tmp_path, rng):
    model = fresh_model(factory, head="star", n_rays=N_RAYS)
    randomize_batch_norm(model, rng)
    path = tmp_path / f"{factory}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    x = rng.random((2, 64, 32, 1), dtype=np.float32)
    np.testing.assert_array_equal(numpy(loaded(x, training=False)),
                                  numpy(model(x, training=False)))


# EfficientNet U-Net left out for time: its batch norms are those of DeepLabV3+.
@pytest.mark.parametrize("factory", ["unet3plus", "deeplabv3plus", "swin_unet"])
def test_a_training_step_on_a_partly_black_image_keeps_every_weight_finite(factory, rng):
    # Regression: Swin-UNet's zero-initialized patch embedding kept black patches
    # all-zero through every layer norm, whose gradients then overflowed to inf.
    images = rng.random((2, 64, 64, 1)).astype("float32")
    images[:, :, :48] = 0.0  # at 32 x 32 the gradients were 1e16, here they overflow
    masks = np.zeros((2, 64, 64, 3), "float32")
    masks[..., 0] = 1.0
    masks[:, 8:20, 8:20] = (0.0, 1.0, 0.0)
    model = fresh_model(factory, head="three_class")
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="categorical_crossentropy")
    loss = float(np.ravel(model.train_on_batch(images, masks))[0])
    assert np.isfinite(loss)
    bad = [w.path for w in model.trainable_weights if not np.isfinite(numpy(w)).all()]
    assert bad == [], f"non-finite weights after one step: {bad}"
    assert np.isfinite(numpy(model.predict_on_batch(images))).all()


@pytest.mark.parametrize("factory", FACTORY_NAMES)
def test_a_few_training_steps_reduce_the_loss(factory):
    tf = pytest.importorskip("tensorflow")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("trains with tf.GradientTape")
    images, masks = disks()
    model = fresh_model(factory, head="binary")
    optimizer = keras.optimizers.Adam(3e-3)
    optimizer.build(model.trainable_weights)
    bce = keras.losses.BinaryCrossentropy()

    def train_step():
        with tf.GradientTape() as tape:
            loss = bce(masks, model(images, training=True))
        optimizer.apply(tape.gradient(loss, model.trainable_weights), model.trainable_weights)
        return loss

    # EfficientNetB0's graph takes longer to trace than three eager steps take to run.
    steps = 3 if factory == "efficientnet_unet" else 8
    step = train_step if factory == "efficientnet_unet" else tf.function(train_step)
    losses = [float(step()) for _ in range(steps)]
    print(f"{factory}: loss {losses[0]:.3f} -> {losses[-1]:.4f}")
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.95 * losses[0], losses


# --- bad arguments ------------------------------------------------------------------------


@pytest.mark.parametrize("factory, kwargs, message", [
    ("unet3plus", dict(depth=0), "depth"),
    ("unet3plus", dict(cat_filters=0), "cat_filters"),
    ("unet3plus", dict(dropout=[0.1, 0.2]), "expected 3"),
    ("unet3plus", dict(head="semantic"), "unknown head"),
    ("deeplabv3plus", dict(output_stride=32), "output_stride"),
    ("deeplabv3plus", dict(atrous_rates=(6, 12)), "atrous_rates"),
    ("deeplabv3plus", dict(aspp_filters=0), "aspp_filters"),
    ("deeplabv3plus", dict(encoder="ResNet50"), "unknown encoder"),
    ("deeplabv3plus", dict(encoder="EfficientNetB0", output_stride=8), "own encoder"),
    ("deeplabv3plus", dict(encoder_weights="imagenet"), "need an EfficientNet"),
    ("swin_unet", dict(num_heads=(1,)), "one head count per stage"),
    ("swin_unet", dict(num_heads=(3, 2)), r"num_heads\[0\] = 3 must divide"),
    ("swin_unet", dict(window_size=0), "window_size"),
    ("swin_unet", dict(depths=()), "depths"),
    ("swin_unet", dict(input_shape=(24, 32, 1)), "multiple of 16"),
    ("swin_unet", dict(head="star", n_rays=2), "n_rays"),
    ("efficientnet_unet", dict(encoder="EfficientNetB9"), "unknown encoder"),
    ("efficientnet_unet", dict(decoder_filters=(8, 8, 8, 8)), "decoder_filters"),
    ("efficientnet_unet", dict(upsampling="nearest"), "upsampling"),
    ("efficientnet_unet", dict(input_shape=(None, None, 4)), "4 channels"),
])
def test_bad_factory_arguments_are_value_errors(factory, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fresh_model(factory, **kwargs)


# --- UNet 3+ ------------------------------------------------------------------------------


def test_unet3plus_decoder_stages_join_every_scale():
    model = tiny_model("unet3plus")
    # depth 2: stage 1 joins enc0 (pooled), enc1, the bottleneck (up-sampled);
    # stage 0 joins enc0, dec1 and the bottleneck.
    for i, sources in ((1, ["enc0", "enc1", "bottleneck"]), (0, ["enc0", "dec1", "bottleneck"])):
        concat = model.get_layer(f"unet3plus_dec{i}_concat")
        assert concat.output.shape[-1] == 4 * 3
        assert [t._keras_history[0].name for t in concat.input] == [
            f"unet3plus_dec{i}_{s}_relu" for s in sources]
    assert model.get_layer("unet3plus_dec1_enc0_pool").pool_size == (2, 2)
    assert model.get_layer("unet3plus_dec0_bottleneck_up").size == (4, 4)


def test_unet3plus_paper_configuration_has_the_papers_parameter_count():
    # Huang et al. 2020, Table 1: UNet 3+ (without deep supervision) has 26.97 M parameters.
    model = models.unet3plus(input_shape=(None, None, 3), head="binary", filters=64)
    assert model.count_params() == 26_975_745  # within 0.03 % of the paper's
    assert abs(model.count_params() / 26.97e6 - 1) < 3e-4


def test_unet3plus_deep_supervision_trains_the_single_output_model(rng):
    model = fresh_model("unet3plus", head="binary")
    training = models.unet3plus_deep_supervision(model, head="binary")
    assert len(model.outputs) == 1
    assert len(training.outputs) == 3  # the model's, decoder stage 1's, the bottleneck's
    images, masks = disks(n=2)
    outs = training(images, training=False)
    assert all(tuple(o.shape) == masks.shape for o in outs)
    np.testing.assert_array_equal(numpy(outs[0]), numpy(model(images, training=False)))
    model_weights = {id(w) for w in model.weights}
    assert model_weights < {id(w) for w in training.weights}
    if keras.backend.backend() == "tensorflow":  # one step on the three losses
        import tensorflow as tf

        before = [numpy(w).copy() for w in model.trainable_weights]
        with tf.GradientTape() as tape:
            loss = sum(keras.ops.mean(keras.losses.binary_crossentropy(masks, o))
                       for o in training(images, training=True))
        grads = tape.gradient(loss, training.trainable_weights)
        assert all(g is not None for g in grads)
        keras.optimizers.SGD(0.1).apply(grads, training.trainable_weights)
        assert all(not np.array_equal(numpy(w), b)
                   for w, b in zip(model.trainable_weights, before))
    with pytest.raises(ValueError, match="not a unet3plus model"):
        models.unet3plus_deep_supervision(models.unet(depth=2, filters=4), head="three_class")
    with pytest.raises(ValueError, match="output channels"):
        models.unet3plus_deep_supervision(model, head="three_class")


# --- DeepLabV3+ ---------------------------------------------------------------------------


def test_deeplab_aspp_rates_low_level_features_and_image_pooling():
    model = tiny_model("deeplabv3plus")
    rates = sorted(layer.dilation_rate[0] for layer in model.layers
                   if layer.name.startswith("deeplabv3plus_aspp_rate")
                   and isinstance(layer, keras.layers.Conv2D))
    assert rates == [6, 12, 18]
    assert model.get_layer("deeplabv3plus_aspp_up").size == (4, 4)  # stride 16 -> 4
    assert model.get_layer("deeplabv3plus_concat").input[1].shape[-1] == 4  # low-level 1x1
    assert receptive_field_radius(model) > 250  # rate 18 at stride 16
    os8 = fresh_model("deeplabv3plus", output_stride=8)
    assert sorted(la.dilation_rate[0] for la in os8.layers
                  if la.name.startswith("deeplabv3plus_aspp_rate")
                  and isinstance(la, keras.layers.Conv2D)) == [12, 24, 36]
    pooled = fresh_model("deeplabv3plus", image_pooling=True)
    assert isinstance(pooled.get_layer("deeplabv3plus_aspp_image_pool"),
                      keras.layers.GlobalAveragePooling2D)
    x = np.random.default_rng(0).random((1, 32, 48, 1), dtype=np.float32)
    assert numpy(pooled(x)).shape == (1, 32, 48, 3)
    # Tiled approximately: the image-pooling branch adds no context, the rest is the same net.
    from nuclib.postprocess.tiling import default_overlap

    assert default_overlap(pooled) == (receptive_field_radius(model),
                                       "deeplabv3plus_aspp_image_pool (GlobalAveragePooling2D)")


def test_deeplab_with_an_efficientnet_encoder():
    model = fresh_model("deeplabv3plus", encoder="EfficientNetB0", freeze_encoder=True,
                        input_shape=(None, None, 3))
    assert models.required_multiple(model) == 16
    encoder = [la for la in model.layers if la.name.startswith("deeplabv3plus_encoder_")]
    assert encoder and not any(la.trainable for la in encoder)
    assert model.get_layer("deeplabv3plus_aspp_1x1_conv").trainable
    names = {la.name for la in model.layers}
    assert "deeplabv3plus_encoder_top_activation" not in names  # stride-32 part unused
    y = numpy(model(np.zeros((1, 32, 48, 3), np.float32)))
    assert y.shape == (1, 32, 48, 3)


# --- Swin-UNet ----------------------------------------------------------------------------


def reference_window_attention(qkv, heads, window, shift, table):
    """Swin's window attention written the way the paper's code does, in NumPy."""
    n, h, w, c3 = qkv.shape
    c = c3 // 3
    d = c // heads
    x = np.roll(qkv, (-shift, -shift), axis=(1, 2)) if shift else qkv
    # The paper's mask: regions by slices of the rolled image.
    img = np.zeros((h, w))
    count = 0
    slices = ((0, h - window), (h - window, h - shift), (h - shift, h)) if shift else ((0, h),)
    wslices = ((0, w - window), (w - window, w - shift), (w - shift, w)) if shift else ((0, w),)
    for a, b in slices:
        for e, f in wslices:
            img[a:b, e:f] = count
            count += 1
    index = np.stack(np.meshgrid(np.arange(window), np.arange(window), indexing="ij"))
    index = index.reshape(2, -1)
    rel = index[:, :, None] - index[:, None, :] + window - 1
    bias = table[rel[0] * (2 * window - 1) + rel[1]].transpose(2, 0, 1)  # heads, L, L
    out = np.zeros((n, h, w, c))
    for b in range(n):
        for i in range(0, h, window):
            for j in range(0, w, window):
                tokens = x[b, i:i + window, j:j + window].reshape(-1, 3, heads, d)
                regions = img[i:i + window, j:j + window].reshape(-1)
                mask = np.where(regions[:, None] != regions[None, :], -100.0, 0.0)
                q, k, v = (tokens[:, t].transpose(1, 0, 2) for t in range(3))
                logits = q @ k.transpose(0, 2, 1) / np.sqrt(d) + bias + mask
                p = np.exp(logits - logits.max(-1, keepdims=True))
                p /= p.sum(-1, keepdims=True)
                out[b, i:i + window, j:j + window] = (p @ v).transpose(1, 0, 2).reshape(
                    window, window, c)
    return np.roll(out, (shift, shift), axis=(1, 2)) if shift else out


@pytest.mark.parametrize("shift", [0, 2])
def test_window_attention_matches_the_papers_reference(shift, rng):
    layer = WindowAttention(num_heads=2, window_size=4, shift_size=shift)
    layer.build((None, None, None, 24))
    table = rng.normal(0, 1, (49, 2)).astype("float32")
    layer.relative_position_bias.assign(table)
    for h, w in ((8, 12), (16, 8)):  # the mask follows the run-time shape
        qkv = rng.normal(0, 1, (2, h, w, 24)).astype("float32")
        np.testing.assert_allclose(numpy(layer(qkv)),
                                   reference_window_attention(qkv, 2, 4, shift, table),
                                   atol=1e-5)


def test_shifted_windows_connect_neighbouring_windows(rng):
    plain = WindowAttention(num_heads=1, window_size=4)
    shifted = WindowAttention(num_heads=1, window_size=4, shift_size=2)
    qkv = rng.normal(0, 1, (1, 8, 8, 6)).astype("float32")
    changed = qkv.copy()
    changed[0, 3, 3] += 1.0  # a token in the top-left window
    for layer, reaches_next_window in ((plain, False), (shifted, True)):
        diff = np.abs(numpy(layer(changed)) - numpy(layer(qkv))).max(axis=-1)[0]
        assert diff[:4, :4].max() > 0
        assert (diff[4:, 4:].max() > 0) == reaches_next_window


def test_space_to_depth_is_swins_patch_merging_and_depth_to_space_its_expanding(rng):
    x = rng.random((2, 4, 6, 3), dtype=np.float32)
    expected = np.concatenate([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2],
                               x[:, 1::2, 1::2]], axis=-1)
    np.testing.assert_array_equal(numpy(SpaceToDepth(2)(x)), expected)
    # Swin-UNet's PatchExpand: 'b h w (p1 p2 c) -> b (h p1) (w p2) c'.
    y = rng.random((1, 2, 3, 8), dtype=np.float32)
    e = numpy(DepthToSpace(2)(y))
    assert e.shape == (1, 4, 6, 2)
    for p1 in range(2):
        for p2 in range(2):
            k = (p1 * 2 + p2) * 2
            np.testing.assert_array_equal(e[0, p1::2, p2::2], y[0, :, :, k:k + 2])
    assert numpy(DepthToSpace(4)(rng.random((1, 2, 2, 16), dtype=np.float32))).shape == (
        1, 8, 8, 1)
    assert SpaceToDepth(2).spatial_stride == (2, 2)
    assert DepthToSpace(4).spatial_stride == (0.25, 0.25)


def test_swin_layers_round_trip_their_config():
    for layer in (WindowAttention(3, 7, 3, name="a"), SpaceToDepth(2, name="b"),
                  DepthToSpace(4, name="c")):
        clone = type(layer).from_config(layer.get_config())
        assert clone.get_config() == layer.get_config()
        assert keras.saving.get_registered_name(type(layer)) == f"nuclib>{type(layer).__name__}"
    with pytest.raises(ValueError, match="shift_size"):
        WindowAttention(2, 4, 4)


def test_swin_paper_configuration_has_the_papers_parameter_count():
    # Cao et al. 2021: Swin-Unet (Swin-T sized, 9 classes) has 27.17 M parameters; the
    # window (8 here, 7 there) changes only the relative-position tables.
    model = models.swin_unet(input_shape=(None, None, 3), head="binary")
    assert models.required_multiple(model) == 256
    assert round(model.count_params() / 1e6, 1) == 27.2


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_new_factories_give_tensorflows_outputs_on_other_backends(backend, tmp_path, rng):
    """Saved on TensorFlow, loaded without it: the same outputs (the layers use keras.ops)."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("saves the reference on TensorFlow")
    x = rng.random((1, 32, 48, 1), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    expected = {}
    for factory in ("swin_unet",):  # the other factories are made of Keras' own layers
        model = fresh_model(factory)
        randomize_batch_norm(model, rng)
        model.save(tmp_path / f"{factory}.keras")
        expected[factory] = numpy(model(x, training=False))
    got = run_without_tensorflow(f"""
        import keras, numpy as np
        import nuclib.models
        x = np.load({str(tmp_path / "x.npy")!r})
        out = {{}}
        for factory in ("swin_unet",):
            model = keras.saving.load_model({str(tmp_path)!r} + f"/{{factory}}.keras",
                                            safe_mode=True)
            out[factory] = keras.ops.convert_to_numpy(model(x, training=False)).tolist()
        print(json.dumps(out))
    """, backend=backend)
    for factory, y in expected.items():
        np.testing.assert_allclose(np.asarray(got[factory]), y, atol=1e-4, err_msg=factory)


# --- EfficientNet U-Net -------------------------------------------------------------------


def test_efficientnet_unet_encoder_is_flat_renamed_and_sees_0_255():
    model = tiny_model("efficientnet_unet")
    gray = model.get_layer("efficientnet_unet_gray_to_rgb")
    assert isinstance(gray, keras.layers.Concatenate)
    scale = model.get_layer("efficientnet_unet_encoder_to_255")
    assert isinstance(scale, keras.layers.Rescaling) and scale.scale == 255.0
    assert model.get_layer("efficientnet_unet_encoder_stem_conv").kernel.shape == (3, 3, 3, 32)
    # Skips at strides 2, 4, 8, 16 are joined coarsest first.
    widths = [model.get_layer(f"efficientnet_unet_concat{i}").input[1].shape[-1]
              for i in range(4)]
    assert widths == [112, 40, 24, 16]
    assert "efficientnet_unet_concat4" not in {la.name for la in model.layers}
    rgb = tiny_model("efficientnet_unet", channels=3)
    assert "efficientnet_unet_gray_to_rgb" not in {la.name for la in rgb.layers}


def test_efficientnet_v2_encoder_builds_with_the_same_skips(rng):
    model = fresh_model("efficientnet_unet", encoder="EfficientNetV2B0")
    assert models.required_multiple(model) == 32
    widths = [model.get_layer(f"efficientnet_unet_concat{i}").input[1].shape[-1]
              for i in range(4)]
    assert widths == [112, 48, 32, 16]
    y = numpy(model(rng.random((1, 64, 32, 1), dtype=np.float32), training=False))
    assert y.shape == (1, 64, 32, 3)


def test_efficientnet_encoder_weights_file_round_trip_and_freeze(tmp_path):
    keras.utils.set_random_seed(1)
    backbone = keras.applications.EfficientNetB0(input_shape=(None, None, 3),
                                                 include_top=False, weights=None)
    path = tmp_path / "encoder.weights.h5"
    backbone.save_weights(path)
    model = fresh_model("efficientnet_unet", encoder_weights=path, freeze_encoder=True)
    encoder = [la for la in model.layers if la.name.startswith("efficientnet_unet_encoder_")
               and la.weights]
    # Layers in the same order; Keras' own names match but for the numbered ones
    # (normalization_4 ...), which differ between instances.
    sources = [la for la in backbone.layers if la.weights]
    assert len(encoder) == len(sources) > 100
    for layer, source in zip(encoder, sources):
        assert layer.name.removeprefix("efficientnet_unet_encoder_").split("_")[0] == \
            source.name.split("_")[0]
        for got, want in zip(layer.get_weights(), source.get_weights(), strict=True):
            np.testing.assert_array_equal(got, want)
        assert not layer.trainable
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fresh_model("efficientnet_unet", encoder_weights=tmp_path / "missing.h5")


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No cached Keras downloads, and every download fails as it does without network."""
    import keras.src.backend.config as keras_config
    import keras.src.utils.file_utils as file_utils

    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError(OSError(101, "Network is unreachable"))

    home = tmp_path / "keras_home"
    home.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(home))
    monkeypatch.setattr(file_utils, "urlretrieve", no_network)
    return home


@pytest.mark.filterwarnings("ignore:`input_shape` is undefined:UserWarning")
@pytest.mark.parametrize("factory, kwargs, fname", [
    ("efficientnet_unet", {}, "efficientnetb0_notop.h5"),
    ("mobilenet_unet", dict(alpha=0.35, decoder_filters=(16, 8, 8, 4)),
     "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"),
])
def test_imagenet_weights_offline_say_how_to_pass_a_local_file(offline, factory, kwargs, fname):
    build = models.FACTORIES[factory]
    with pytest.raises(ConnectionError) as info:
        build(encoder_weights="imagenet", **{**TINY.get(factory, {}), **kwargs})
    message = str(info.value)
    assert "offline" in message and "URL fetch failure" in message
    assert f"encoder_weights='/path/to/{fname}'" in message
    assert str(offline / "models" / fname) in message
    assert isinstance(info.value.__cause__, Exception)


@pytest.mark.filterwarnings("ignore:`input_shape` is undefined:UserWarning")
def test_imagenet_weights_are_read_from_keras_cache_when_present(offline, monkeypatch):
    # With the file in Keras' cache no download happens: 'imagenet' builds offline.
    seen = {}

    def cached(*args, **kwargs):
        seen.update(kwargs)
        return str(offline / "models" / kwargs.get("fname", args[0] if args else "f"))

    import keras.src.applications.mobilenet_v2 as mobilenet_v2

    monkeypatch.setattr(mobilenet_v2.file_utils, "get_file", cached)
    loaded = []
    monkeypatch.setattr(keras.Model, "load_weights", lambda self, path, *a, **k:
                        loaded.append(path))
    model = models.mobilenet_unet(alpha=0.35, decoder_filters=(16, 8, 8, 4),
                                  encoder_weights="imagenet")
    assert loaded and loaded[0].endswith("_no_top.h5")
    assert model.output_shape == (None, None, None, 1)


# --- U-Net options ------------------------------------------------------------------------


def unet(**kwargs):
    keras.utils.set_random_seed(0)
    return models.unet(depth=2, filters=4, **kwargs)


@pytest.mark.parametrize("zoo_name", ["dsb-3class", "dsb-binary-mobilenet"])
def test_bundled_zoo_weights_load_into_the_factories_defaults(zoo_name):
    # Saved before the new options (and the shared application encoder) existed.
    folder = Path(models.__file__).resolve().parents[1] / "zoo" / "bundled" / zoo_name
    card = json.loads((folder / "nuclib.json").read_text())
    name = json.loads((folder / "config.json").read_text())["config"]["name"]
    args = dict(card["architecture_args"])
    model = models.FACTORIES[card["architecture"]](
        input_shape=(None, None, card["input_channels"]), name=name, **args)
    model.load_weights(folder / "model.weights.h5")
    assert model.count_params() == card["parameters"]


def test_unet_with_the_new_options_at_their_defaults_is_the_old_unet():
    old = unet()
    new = unet(dilation=1, first_kernel_size=None, dropout=0.0)
    assert [la.name for la in old.layers] == [la.name for la in new.layers]
    assert [w.shape for w in old.weights] == [w.shape for w in new.weights]


def test_unet_dilation_widens_the_receptive_field_and_changes_outputs(rng):
    plain, dilated = unet(), unet(dilation=2)
    assert [w.shape for w in plain.weights] == [w.shape for w in dilated.weights]
    dilated.set_weights(plain.get_weights())
    assert dilated.get_layer("unet_enc0_1_conv").dilation_rate == (2, 2)
    assert dilated.get_layer("unet_up0_tconv").dilation_rate == (1, 1)
    assert receptive_field_radius(dilated) > receptive_field_radius(plain)
    x = rng.random((1, 32, 32, 1), dtype=np.float32)
    assert not np.allclose(numpy(dilated(x, training=False)), numpy(plain(x, training=False)))
    with pytest.raises(ValueError, match="dilation must be a whole number >= 1"):
        unet(dilation=0)


def test_unet_first_kernel_size_sets_only_the_first_convolution():
    model = unet(first_kernel_size=7)
    convs = [la for la in model.layers if isinstance(la, keras.layers.Conv2D)
             and not isinstance(la, keras.layers.Conv2DTranspose)]
    assert convs[0].name == "unet_enc0_1_conv" and convs[0].kernel.shape == (7, 7, 1, 4)
    assert all(la.kernel_size in ((3, 3), (1, 1)) for la in convs[1:])
    assert model.count_params() == unet().count_params() + (49 - 9) * 4
    with pytest.raises(ValueError, match="first_kernel_size"):
        unet(first_kernel_size=0)


def test_unet_dropout_per_stage():
    rates = {la.name: la.rate for la in unet(dropout=[0.1, 0.0, 0.3]).layers
             if isinstance(la, keras.layers.Dropout)}
    assert rates == {"unet_enc0_drop": 0.1, "unet_bottleneck_drop": 0.3}
    as_float = {la.name: la.rate for la in unet(dropout=0.2).layers
                if isinstance(la, keras.layers.Dropout)}
    assert as_float == {"unet_enc1_drop": 0.2, "unet_bottleneck_drop": 0.2}
    zeros, zero = unet(dropout=[0.0, 0.0, 0.0]), unet(dropout=0.0)
    assert [la.name for la in zeros.layers] == [la.name for la in zero.layers]
    assert [w.shape for w in zeros.weights] == [w.shape for w in zero.weights]
    for bad, message in (([0.1, 0.2], "has 2 rates.*expected 3"),
                         ([0.1, 0.2, 0.3, 0.4], "has 4 rates"),
                         ([0.0, 1.0, 0.0], r"in \[0, 1\)"), ("high", "sequence of 3 rates")):
        with pytest.raises(ValueError, match=message):
            unet(dropout=bad)


def test_stage_dropouts_block():
    assert blocks.stage_dropouts(0.5, 1) == [0.5, 0.5]
    assert blocks.stage_dropouts((0, 0.25), 1) == [0.0, 0.25]


# --- the U-Net options on Attention U-Net and MultiResUNet ---------------------------------

# The first convolution, which first_kernel_size sets, of each U-Net-family factory.
FIRST_CONV = {"unet": "unet_enc0_1_conv", "attention_unet": "attention_unet_enc0_1_conv",
              "multires_unet": "multires_unet_enc0_3x3_conv"}


def family(factory, **kwargs):
    keras.utils.set_random_seed(0)
    return models.FACTORIES[factory](depth=2, filters=4, **kwargs)


def plain_convs(model):
    return [la for la in model.layers if isinstance(la, keras.layers.Conv2D)
            and not isinstance(la, keras.layers.Conv2DTranspose)]


@pytest.mark.parametrize("factory", list(FIRST_CONV))
def test_first_kernel_size_sets_only_the_first_convolution(factory):
    model, plain = family(factory, first_kernel_size=7), family(factory)
    convs = plain_convs(model)
    first = model.get_layer(FIRST_CONV[factory])
    assert first.kernel_size == (7, 7) and first.kernel.shape[:3] == (7, 7, 1)
    assert [la.name for la in convs if la.kernel_size not in ((3, 3), (1, 1))] == [first.name]
    assert model.count_params() == plain.count_params() + (49 - 9) * first.filters
    assert [la.name for la in model.layers] == [la.name for la in plain.layers]


@pytest.mark.parametrize("factory", ["attention_unet", "multires_unet"])
def test_dilation_dilates_the_blocks_convolutions_only(factory, rng):
    model, plain = family(factory, dilation=2), family(factory)
    dilated = {la.name for la in plain_convs(model) if la.dilation_rate == (2, 2)}
    # Every 3x3 convolution of the encoder, bottleneck and decoder blocks; 1x1
    # convolutions (gates, shortcuts, head), res paths and up-sampling stay undilated.
    if factory == "attention_unet":
        expected = {f"attention_unet_{stage}_{i}_conv" for i in (1, 2)
                    for stage in ("enc0", "enc1", "bottleneck", "dec1", "dec0")}
    else:
        expected = {f"multires_unet_{stage}_{k}_conv" for k in ("3x3", "5x5", "7x7")
                    for stage in ("enc0", "enc1", "bottleneck", "dec1", "dec0")}
    assert dilated == expected
    assert all(la.dilation_rate == (1, 1) for la in plain_convs(model) if la.name not in expected)
    assert receptive_field_radius(model) > receptive_field_radius(plain)
    model.set_weights(plain.get_weights())  # same weights, wider view: other outputs
    x = rng.random((1, 16, 16, 1), dtype=np.float32)
    assert not np.allclose(numpy(model(x, training=False)), numpy(plain(x, training=False)))


@pytest.mark.parametrize("factory, dropout, expected", [
    ("attention_unet", [0.1, 0.0, 0.3],
     {"attention_unet_enc0_drop": 0.1, "attention_unet_bottleneck_drop": 0.3}),
    ("attention_unet", 0.2,  # as unet: the deepest encoder stage and the bottleneck
     {"attention_unet_enc1_drop": 0.2, "attention_unet_bottleneck_drop": 0.2}),
    ("attention_unet", [0.0, 0.0, 0.0], {}),
    ("multires_unet", [0.1, 0.2, 0.3], {"multires_unet_enc0_drop": 0.1,
                                        "multires_unet_enc1_drop": 0.2,
                                        "multires_unet_bottleneck_drop": 0.3}),
    ("multires_unet", 0.2, {"multires_unet_bottleneck_drop": 0.2}),  # as it always was
    ("multires_unet", [0.0, 0.0, 0.0], {}),
])
def test_dropout_per_stage_of_attention_and_multires_unet(factory, dropout, expected):
    model = family(factory, dropout=dropout)
    assert {la.name: la.rate for la in model.layers
            if isinstance(la, keras.layers.Dropout)} == expected
    if factory == "multires_unet" and expected:  # after the block, before its res path
        drop = model.get_layer(next(iter(expected)))
        assert drop.input._keras_history[0].name.endswith("_bn")


@pytest.mark.parametrize("factory", ["attention_unet", "multires_unet"])
@pytest.mark.parametrize("kwargs, message", [
    (dict(dilation=0), "dilation must be a whole number >= 1, got 0"),
    (dict(dilation=1.5), "dilation must be a whole number >= 1, got 1.5"),
    (dict(first_kernel_size=0), "first_kernel_size must be a whole number >= 1 or None, got 0"),
    (dict(first_kernel_size=True), "first_kernel_size .* got True"),
    (dict(dropout=[0.1, 0.2]), "has 2 rates .*expected 3"),
    (dict(dropout=1.0), r"in \[0, 1\), got 1.0"),
    (dict(dropout="high"), "sequence of 3 rates"),
])
def test_bad_unet_options_are_value_errors(factory, kwargs, message):
    with pytest.raises(ValueError, match=message):
        family(factory, **kwargs)


@pytest.mark.parametrize("factory", ["attention_unet", "multires_unet"])
def test_unet_options_survive_a_safe_keras_round_trip(factory, tmp_path, rng):
    model = family(factory, dilation=2, first_kernel_size=5, dropout=[0.1, 0.2, 0.3])
    randomize_batch_norm(model, rng)
    path = tmp_path / f"{factory}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.get_layer(FIRST_CONV[factory]).kernel_size == (5, 5)
    assert [la.rate for la in loaded.layers if isinstance(la, keras.layers.Dropout)] == [
        la.rate for la in model.layers if isinstance(la, keras.layers.Dropout)]
    assert not any(isinstance(la, keras.layers.Lambda) for la in loaded.layers)
    x = rng.random((2, 16, 24, 1), dtype=np.float32)
    np.testing.assert_array_equal(numpy(loaded(x, training=False)),
                                  numpy(model(x, training=False)))


def test_swin_unet_loads_in_a_fresh_process(tmp_path):
    """Swin-UNet's attention layers are custom classes: a new process that has not built
    one must still load a checkpoint (finalize, fine-tuning) and a model directory."""
    import os
    import subprocess
    import sys

    from nuclib.segmenter import Segmenter

    model = tiny_model("swin_unet")
    model.save(tmp_path / "best.keras")
    Segmenter(model, {"name": "swin"}).save(tmp_path / "model")
    x = np.random.default_rng(0).random((1, 32, 32, 1), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", numpy(model(x)))
    script = (
        "import sys, numpy as np, keras\n"
        "from nuclib.model_dir import load_keras_model\n"
        "from nuclib.train.fit import load_initial_model\n"
        "d = sys.argv[1]; x = np.load(d + '/x.npy'); y = np.load(d + '/y.npy')\n"
        "for m in (load_initial_model(d + '/best.keras'), load_keras_model(d + '/model')):\n"
        "    np.testing.assert_allclose(np.asarray(m(x)), y, atol=1e-5)\n"
        "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True,
                          text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("ok")
