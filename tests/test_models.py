"""Model factories and their blocks: shapes, ranges, names, save/load, training, bad input."""

from __future__ import annotations

import functools

import keras
import numpy as np
import pytest

from nuclib import models
from nuclib.models import blocks

# Tiny configurations (seconds to build and run) and the stride each must report.
TINY = {
    "unet": dict(depth=2, filters=4),
    "attention_unet": dict(depth=2, filters=4),
    "multires_unet": dict(depth=2, filters=4),
    "mobilenet_unet": dict(alpha=0.35, decoder_filters=(16, 8, 8, 4)),
}
STRIDE = {"unet": 4, "attention_unet": 4, "multires_unet": 4, "mobilenet_unet": 32}
# Two input sizes per factory, both multiples of its stride, one non-square.
SIZES = {name: [(2 * s, 2 * s), (3 * s, 2 * s)] if s < 32 else [(32, 32), (64, 96)]
         for name, s in STRIDE.items()}
FACTORY_NAMES = list(TINY)
HEAD_CHANNELS = {"binary": 1, "three_class": 3}


@functools.cache
def tiny_model(factory: str, channels: int = 1, head: str = "three_class"):
    """A tiny model, built once per configuration (do not train the cached copy)."""
    keras.utils.set_random_seed(0)
    return models.FACTORIES[factory](input_shape=(None, None, channels), head=head,
                                     **TINY[factory])


def fresh_model(factory: str, **kwargs):
    keras.utils.set_random_seed(0)
    kwargs.setdefault("input_shape", (None, None, 1))
    return models.FACTORIES[factory](**{**TINY[factory], **kwargs})


def randomize_batch_norm(model, rng):
    """Give every BatchNormalization non-trivial statistics so save/load tests see them."""
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


# --- shapes, ranges, heads ---------------------------------------------------


@pytest.mark.parametrize("head", list(HEAD_CHANNELS))
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("factory", FACTORY_NAMES)
def test_output_shape_and_range(factory, channels, head, rng):
    model = tiny_model(factory, channels, head)
    print(f"{factory} channels={channels} head={head}: {model.count_params()} parameters")
    k = HEAD_CHANNELS[head]
    assert model.output_shape == (None, None, None, k)
    for h, w in SIZES[factory]:
        x = rng.random((2, h, w, channels), dtype=np.float32)
        y = keras.ops.convert_to_numpy(model(x, training=False))
        assert y.shape == (2, h, w, k)
        assert np.all(np.isfinite(y))
        assert y.min() >= 0.0 and y.max() <= 1.0
        if head == "three_class":
            np.testing.assert_allclose(y.sum(axis=-1), 1.0, atol=1e-5)


# Parameters of the tiny 1-channel three-class models. unet's is counted by hand:
# enc0 36+16+144+16, enc1 288+32+576+32, bottleneck 1152+64+2304+64, up1 512+8,
# dec1 1152+32+576+32, up0 128+4, dec0 288+16+144+16, head 12+3 = 7647.
# attention_unet adds its gates (see the test below); the others are pinned.
TINY_PARAMETERS = {"unet": 7647, "attention_unet": 7647 + 134, "multires_unet": 7024,
                   "mobilenet_unet": 303935}


@pytest.mark.parametrize("factory, expected", TINY_PARAMETERS.items(),
                         ids=[f"{f}-{n}-params" for f, n in TINY_PARAMETERS.items()])
def test_parameter_count(factory, expected):
    assert tiny_model(factory).count_params() == expected


@pytest.mark.parametrize("head", list(HEAD_CHANNELS))
@pytest.mark.parametrize("factory", FACTORY_NAMES)
def test_logits_head_is_the_probability_head_without_activation(factory, head, rng):
    probs_model = tiny_model(factory, 1, head)
    logits_model = fresh_model(factory, head=head, logits=True)
    logits_model.set_weights(probs_model.get_weights())
    x = rng.random((1, *SIZES[factory][0], 1), dtype=np.float32)
    logits = keras.ops.convert_to_numpy(logits_model(x, training=False))
    probs = keras.ops.convert_to_numpy(probs_model(x, training=False))
    assert logits.min() < 0 or logits.max() > 1  # not already squashed
    if head == "binary":
        expected = 1 / (1 + np.exp(-logits))
    else:
        e = np.exp(logits - logits.max(axis=-1, keepdims=True))
        expected = e / e.sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(probs, expected, atol=1e-5)


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
def test_required_multiple_is_the_model_stride(factory):
    assert models.required_multiple(tiny_model(factory)) == STRIDE[factory]


@pytest.mark.parametrize("factory", ["unet", "attention_unet", "multires_unet"])
def test_required_multiple_follows_depth(factory):
    model = fresh_model(factory, depth=3)
    assert models.required_multiple(model) == 8


# --- persistence and training -------------------------------------------------


@pytest.mark.parametrize("factory", FACTORY_NAMES)
def test_keras_save_and_safe_load_give_identical_outputs(factory, tmp_path, rng):
    model = fresh_model(factory, head="three_class")
    randomize_batch_norm(model, rng)
    path = tmp_path / f"{factory}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.name == model.name
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    x = rng.random((2, *SIZES[factory][1], 1), dtype=np.float32)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(x, training=False)),
                                  keras.ops.convert_to_numpy(model(x, training=False)))


@pytest.mark.parametrize("factory", FACTORY_NAMES)
def test_gradients_reach_every_weight_and_are_finite(factory, rng):
    import tensorflow as tf

    model = fresh_model(factory, head="binary")
    x = rng.random((2, *SIZES[factory][0], 1), dtype=np.float32)
    y = (x > 0.5).astype(np.float32)
    with tf.GradientTape() as tape:
        loss = keras.losses.binary_crossentropy(y, model(x, training=True))
        loss = tf.reduce_mean(loss)
    grads = tape.gradient(loss, model.trainable_weights)
    assert len(grads) == len(model.trainable_weights) > 0
    assert all(g is not None for g in grads)
    assert all(np.all(np.isfinite(g.numpy())) for g in grads)
    assert sum(float(tf.reduce_sum(tf.abs(g))) for g in grads) > 0


@pytest.mark.parametrize("factory", FACTORY_NAMES)
def test_tiny_model_overfits_four_disk_images(factory):
    import tensorflow as tf

    images, masks = disks()
    model = fresh_model(factory, head="binary")
    # A high rate on purpose (25 full-batch steps). SGD, built before tracing,
    # keeps the traced step small: Adam would triple the test's time.
    optimizer = keras.optimizers.SGD(0.5, momentum=0.9)
    optimizer.build(model.trainable_weights)
    bce = keras.losses.BinaryCrossentropy()

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            loss = bce(masks, model(images, training=True))
        optimizer.apply(tape.gradient(loss, model.trainable_weights), model.trainable_weights)
        return loss

    losses = [float(train_step()) for _ in range(25)]
    print(f"{factory}: loss {losses[0]:.3f} -> {losses[-1]:.4f}")
    assert losses[-1] < losses[0] / 10, f"loss went {losses[0]:.3f} -> {losses[-1]:.3f}"


# --- bad input ----------------------------------------------------------------


@pytest.mark.parametrize("shape, message", [
    ((None, None), "2 dimensions"),
    ((None, None, 5), "5 channels"),
    ((30, 32, 1), "not a positive multiple"),
])
@pytest.mark.parametrize("factory", FACTORY_NAMES)
def test_bad_input_shape_is_a_clear_value_error(factory, shape, message):
    with pytest.raises(ValueError, match=message):
        fresh_model(factory, input_shape=shape)


@pytest.mark.parametrize("factory", FACTORY_NAMES)
def test_unknown_head_is_a_value_error_listing_the_heads(factory):
    with pytest.raises(ValueError, match=r"unknown head 'semantic'.*binary.*three_class"):
        fresh_model(factory, head="semantic")


@pytest.mark.parametrize("factory", FACTORY_NAMES)
def test_predict_rejects_sides_that_are_not_multiples_of_the_stride(factory):
    model = tiny_model(factory)
    stride = STRIDE[factory]
    with pytest.raises(ValueError, match=rf"sides \({2 * stride + 2}, {2 * stride}\) must be "
                                         rf"multiples of {stride}"):
        models.predict(model, np.zeros((2 * stride + 2, 2 * stride, 1), np.float32))
    with pytest.raises(ValueError, match=f"multiples of {stride}"):
        models.predict(model, np.zeros((1, 2 * stride, stride // 2, 1), np.float32))


def test_predict_runs_on_a_fitting_image_with_or_without_batch_axis(rng):
    model = tiny_model("unet")
    image = rng.random((16, 24, 1), dtype=np.float32)
    single = models.predict(model, image)
    batch = models.predict(model, image[None])
    assert single.shape == (16, 24, 3) and batch.shape == (1, 16, 24, 3)
    np.testing.assert_allclose(single, batch[0], atol=1e-6)


@pytest.mark.parametrize("factory, kwargs, message", [
    ("unet", dict(depth=0), "depth"),
    ("attention_unet", dict(upsampling="nearest"), "upsampling"),
    ("multires_unet", dict(alpha=0), "alpha"),
    ("mobilenet_unet", dict(decoder_filters=(8, 8, 8)), "decoder_filters"),
])
def test_bad_factory_arguments_are_value_errors(factory, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fresh_model(factory, **kwargs)


# --- MobileNetV2 encoder ------------------------------------------------------


def encoder_layers(model):
    return [layer for layer in model.layers if layer.name.startswith(f"{model.name}_encoder_")]


def save_keras2_h5(model, path):
    """Write ``model``'s weights in the Keras 2 HDF5 layout of the ImageNet application files."""
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [layer.name.encode() for layer in model.layers]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.15.0"
        for layer in model.layers:
            weights = layer.trainable_weights + layer.non_trainable_weights
            names = [f"{layer.name}/{w.name}:0" for w in weights]
            group = f.create_group(layer.name)
            group.attrs["weight_names"] = [n.encode() for n in names]
            for name, weight in zip(names, weights):
                group.create_dataset(name, data=keras.ops.convert_to_numpy(weight))


@pytest.mark.parametrize("file_format", ["weights.h5", "keras2.h5"])
def test_mobilenet_encoder_weights_round_trip(tmp_path, file_format):
    keras.utils.set_random_seed(1)
    backbone = keras.applications.MobileNetV2(input_shape=(None, None, 3), alpha=0.35,
                                              include_top=False, weights=None)
    path = tmp_path / f"encoder.{file_format}"
    if file_format == "weights.h5":
        backbone.save_weights(path)
    else:
        save_keras2_h5(backbone, path)
    model = fresh_model("mobilenet_unet", encoder_weights=str(path))
    loaded = encoder_layers(model)
    assert sum(bool(layer.weights) for layer in loaded) > 90
    for layer in loaded:
        source = backbone.get_layer(layer.name.removeprefix("mobilenet_unet_encoder_"))
        for got, want in zip(layer.get_weights(), source.get_weights(), strict=True):
            np.testing.assert_array_equal(got, want)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Keras warns per layer before failing
def test_mobilenet_encoder_weights_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fresh_model("mobilenet_unet", encoder_weights=str(tmp_path / "missing.h5"))
    other = keras.applications.MobileNetV2(input_shape=(None, None, 3), alpha=1.0,
                                           include_top=False, weights=None)
    path = tmp_path / "alpha1.weights.h5"
    other.save_weights(path)
    with pytest.raises(ValueError, match=r"alpha=0\.35.*shape=\(3, 3, 3, 16\)"):
        fresh_model("mobilenet_unet", encoder_weights=str(path))


def test_mobilenet_freeze_encoder_trains_only_the_decoder(rng):
    import tensorflow as tf

    model = fresh_model("mobilenet_unet", freeze_encoder=True, head="binary")
    frozen = encoder_layers(model)
    assert frozen and all(not layer.trainable for layer in frozen)
    frozen_ids = {id(w) for layer in frozen for w in layer.weights}
    assert not frozen_ids & {id(w) for w in model.trainable_weights}
    assert frozen_ids <= {id(w) for w in model.non_trainable_weights}
    assert model.trainable_weights  # the decoder still trains
    # One training step: frozen kernels and batch-norm statistics stay put.
    before = [w.numpy().copy() for layer in frozen for w in layer.weights]
    decoder_before = [w.numpy().copy() for w in model.trainable_weights]
    images, masks = disks(n=2)
    with tf.GradientTape() as tape:
        loss = keras.losses.BinaryCrossentropy()(masks, model(images, training=True))
    grads = tape.gradient(loss, model.trainable_weights)
    keras.optimizers.Adam(1e-2).apply(grads, model.trainable_weights)
    after = [w.numpy() for layer in frozen for w in layer.weights]
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    assert not all(np.array_equal(w.numpy(), b)
                   for w, b in zip(model.trainable_weights, decoder_before, strict=True))


# --- blocks -------------------------------------------------------------------


def test_attention_gates_add_exactly_their_hand_counted_parameters():
    # Gate on a C-channel skip with G-channel gating and I = C // 2:
    # theta C*I (no bias) + phi G*I + I + psi I + 1.
    def gate(c, g):
        i = c // 2
        return c * i + g * i + i + i + 1

    # depth 2, filters 4: level 1 skip 8 gated by the 16-channel bottleneck,
    # level 0 skip 4 gated by the 8-channel level-1 decoder output.
    expected = gate(8, 16) + gate(4, 8)
    assert expected == 134
    difference = tiny_model("attention_unet").count_params() - tiny_model("unet").count_params()
    assert difference == expected


def test_attention_gate_scales_all_channels_of_a_pixel_by_one_coefficient(rng):
    skip = keras.Input((8, 8, 5))
    gating = keras.Input((4, 4, 7))
    gate = keras.Model([skip, gating], blocks.attention_gate(skip, gating, 3, name="g"))
    s = rng.random((1, 8, 8, 5), dtype=np.float32) + 0.5
    out = keras.ops.convert_to_numpy(gate([s, rng.random((1, 4, 4, 7), dtype=np.float32)]))
    ratio = out / s
    assert np.all((ratio > 0) & (ratio < 1))
    np.testing.assert_allclose(ratio, ratio[..., :1].repeat(5, axis=-1), rtol=1e-5)


def test_multires_block_widths_and_parameters():
    assert blocks.multires_split(32) == (8, 17, 26)  # int(53.44 * (.167, .333, .5))
    x = keras.Input((None, None, 2))
    y = blocks.multires_block(x, 6, name="b")  # W = 10.02 -> (1, 3, 5)
    assert y.shape[-1] == 9
    convs = (2 * 9) + (9 * 2 * 1) + (9 * 1 * 3) + (9 * 3 * 5)  # 1x1 shortcut, three 3x3
    bns = 4 * (9 + 1 + 3 + 5) + 4 * 9 + 4 * 9  # shortcut/convs, concat BN, output BN
    assert keras.Model(x, y).count_params() == convs + bns


def test_res_path_length_and_errors():
    x = keras.Input((None, None, 3))
    model = keras.Model(x, blocks.res_path(x, 4, 3, name="p"))
    assert sum(isinstance(la, keras.layers.Add) for la in model.layers) == 3
    assert model.output_shape == (None, None, None, 4)
    with pytest.raises(ValueError, match="length must be >= 1"):
        blocks.res_path(x, 4, 0, name="q")


def test_pix2pix_upsample_doubles_the_size():
    x = keras.Input((4, 6, 8))
    y = blocks.pix2pix_upsample(x, 5, dropout=0.5, name="u")
    model = keras.Model(x, y)
    assert model.output_shape == (None, 8, 12, 5)
    assert [type(la).__name__ for la in model.layers[1:]] == [
        "Conv2DTranspose", "BatchNormalization", "Dropout", "Activation"]
    assert model.count_params() == 3 * 3 * 8 * 5 + 4 * 5  # no bias; BN gamma, beta, mean, var


def test_mobilenet_encoder_batch_norm_momentum_is_configurable():
    from nuclib.models import mobilenet_unet

    model = mobilenet_unet(alpha=0.35, decoder_filters=(16, 8, 8, 8), bn_momentum=0.9,
                           name="bnm")
    norms = [layer for layer in model.layers
             if isinstance(layer, keras.layers.BatchNormalization) and "_encoder_" in layer.name]
    assert norms and all(layer.momentum == 0.9 for layer in norms)
    assert mobilenet_unet(alpha=0.35, decoder_filters=(16, 8, 8, 8)).get_layer(
        norms[0].name.replace("bnm", "mobilenet_unet")).momentum == 0.99
