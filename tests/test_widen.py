"""Net2WiderNet: a widened model computes what the narrow one computes, then learns on."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from nuclib.models import attention_unet, unet
from nuclib.models import widen


def _with_random_batch_norm_statistics(model, seed=0):
    # Fresh BatchNormalization layers have mean 0 and variance 1: copying them
    # wrongly would go unnoticed. Give every one its own statistics.
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 2, gamma.shape), rng.normal(0, 0.5, beta.shape),
                               rng.normal(0, 0.5, mean.shape), rng.uniform(0.5, 2, var.shape)])
    return model


@pytest.mark.parametrize("factory,args,factor", [
    (unet, {"depth": 2, "filters": 4, "dropout": 0.1}, 2),
    (unet, {"depth": 2, "filters": 4, "upsampling": "bilinear", "head": "binary"}, 3),
    (attention_unet, {"depth": 2, "filters": 4}, 2),
])
def test_the_widened_model_computes_the_same_function(factory, args, factor):
    narrow = _with_random_batch_norm_statistics(factory(**args))
    wide = widen(narrow, factory(**{**args, "filters": args["filters"] * factor}), seed=1)
    x = np.random.default_rng(2).uniform(0, 1, (2, 48, 64, 1)).astype("float32")
    np.testing.assert_allclose(np.asarray(wide(x)), np.asarray(narrow(x)), atol=1e-5)
    first = next(layer for layer in wide.layers if isinstance(layer, keras.layers.Conv2D))
    assert first.get_weights()[0].shape[-1] == 4 * factor


def test_the_copies_of_a_filter_learn_different_things():
    # Identical copies with identical outgoing weights would stay identical forever;
    # the random split of the outgoing weights makes their gradients differ.
    narrow = unet(depth=2, filters=4)
    wide = widen(narrow, unet(depth=2, filters=8), seed=0)
    first = next(layer for layer in wide.layers if isinstance(layer, keras.layers.Conv2D))
    kernel = first.get_weights()[0]
    np.testing.assert_array_equal(kernel[..., 0], kernel[..., 1])  # copies of filter 0
    wide.compile(optimizer=keras.optimizers.SGD(0.1), loss="categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (2, 32, 32, 1)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 3, (2, 32, 32)), 3)
    wide.train_on_batch(x, y)
    kernel = first.get_weights()[0]
    assert np.abs(kernel[..., 0] - kernel[..., 1]).max() > 1e-6


def test_models_that_do_not_correspond_are_refused():
    with pytest.raises(ValueError, match="different layers"):
        widen(unet(depth=2, filters=4), unet(depth=3, filters=8))
    with pytest.raises(ValueError, match="6 channels is not a multiple of 4"):
        widen(unet(depth=2, filters=4), unet(depth=2, filters=6))


def _depthwise_model(channels):
    inputs = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(channels, 3, padding="same")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    return keras.Model(inputs, keras.layers.Conv2D(1, 1)(x))


def test_layers_it_cannot_widen_are_named():
    with pytest.raises(ValueError, match="'depthwise_conv2d.*' \\(DepthwiseConv2D\\) cannot be "
                                         "widened"):
        widen(_depthwise_model(2), _depthwise_model(4))
