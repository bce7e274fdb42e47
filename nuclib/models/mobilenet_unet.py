"""U-Net with a MobileNetV2 encoder and a pix2pix decoder (the TensorFlow segmentation tutorial)."""

from __future__ import annotations

import keras
from keras import layers

from nuclib.models import blocks

# Encoder feature maps used as skips, finest first, and the bottleneck; their
# strides are 2, 4, 8, 16 and 32.
SKIP_LAYERS = ("block_1_expand_relu", "block_3_expand_relu", "block_6_expand_relu",
               "block_13_expand_relu")
BOTTLENECK_LAYER = "block_16_project"
STRIDE = 32


def mobilenet_encoder(x, *, alpha: float = 1.0, weights=None, bn_momentum: float = 0.99,
                      name: str):
    """Run a ``keras.applications.MobileNetV2`` encoder on a 3-channel tensor in place.

    The MobileNetV2 layers are created on ``x``'s graph (not nested as a
    sub-model) and renamed ``f"{name}_<keras name>"``, so a model built on
    them is flat and every layer carries the model's prefix.

    Args:
        x: ``(N, H, W, 3)`` Keras tensor, H and W multiples of 32 or None.
        alpha: MobileNetV2 width multiplier.
        weights: None (random initialization), ``"imagenet"`` (downloaded by
            Keras on first use, then read from its cache) or a path to a weights
            file of ``MobileNetV2(include_top=False, alpha=alpha)``: a Keras 3
            ``.weights.h5`` file or a legacy Keras 2 ``.h5`` file such as
            ``mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5``.
        bn_momentum: momentum of the encoder's batch-norm moving statistics.
            MobileNetV2's own 0.999 lets them lag the weights for thousands of
            steps, so a model trained from scratch for a few thousand steps
            predicts badly in inference mode; 0.99 catches up in hundreds.
        name: prefix of the layer names, e.g. ``"mobilenet_unet_encoder"``.

    Returns:
        ``(skips, bottleneck, encoder_layers)``: the four skip tensors (strides
        2, 4, 8, 16), the stride-32 tensor and the list of the encoder's layers.

    Raises:
        FileNotFoundError: ``weights`` is a path that does not exist.
        ValueError: the weights file does not fit this encoder.
        ConnectionError: ``"imagenet"`` weights that are not cached cannot be
            downloaded (offline); the message says how to pass a local file.

    Example:
        >>> x = keras.Input((None, None, 3))
        >>> skips, bottom, _ = mobilenet_encoder(x, alpha=0.35, name="m_encoder")
        >>> [s.shape[-1] for s in skips], bottom.shape[-1]
        ([48, 48, 96, 192], 112)
    """
    backbone = blocks.application_backbone("MobileNetV2", x, alpha=alpha, weights=weights)
    outputs = [backbone.get_layer(n).output for n in (*SKIP_LAYERS, BOTTLENECK_LAYER)]
    encoder_layers = blocks.adopt_layers(backbone, x, name=name, bn_momentum=bn_momentum)
    return outputs[:-1], outputs[-1], encoder_layers


def mobilenet_unet(*, input_shape=(None, None, 1), head: str = "binary", alpha: float = 1.0,
                   encoder_weights=None, freeze_encoder: bool = False, dropout: float = 0.0,
                   decoder_filters=(512, 256, 128, 64), bn_momentum: float = 0.99,
                   logits: bool = False, n_rays: int = 32, name: str = "mobilenet_unet") -> keras.Model:
    """Build a U-Net with a MobileNetV2 encoder and a pix2pix decoder.

    The encoder is ``keras.applications.MobileNetV2(include_top=False)``
    with skips at ``block_1/3/6/13_expand_relu`` and the bottleneck at
    ``block_16_project``. Each decoder step is a ``pix2pix_upsample`` followed
    by concatenation with the matching skip; a last ``pix2pix_upsample``
    returns to the input resolution before the head. A 1-channel input is
    repeated to 3 channels (a weight-free ``Concatenate``) so 3-channel
    weights load unchanged. Encoder layers are named
    ``f"{name}_encoder_<MobileNetV2 name>"``.

    Inputs must have sides that are multiples of 32 (the tiled inferencer and
    ``nuclib.models.predict`` pad for you). ImageNet weights were trained on
    inputs scaled to [-1, 1]; nuclib's [0, 1] normalization is close enough for
    fine-tuning, but a frozen encoder sees shifted statistics.

    Args:
        input_shape: ``(H, W, C)``, channels-last, C in (1, 3); H and W may be None.
        head: ``"binary"`` (1 channel, sigmoid), ``"star"`` (probability + rays) or ``"three_class"``
            (softmax over background / interior / boundary).
        alpha: MobileNetV2 width multiplier.
        encoder_weights: None (random), ``"imagenet"`` (downloaded through
            Keras when online, then cached; ``alpha`` in 0.35, 0.5, 0.75, 1.0,
            1.3, 1.4) or a path to MobileNetV2 ``include_top=False`` weights
            for the same ``alpha`` (offline, pass the downloaded file).
        freeze_encoder: make the encoder's layers non-trainable (its batch
            norms then also run in inference mode).
        dropout: dropout rate in the four skip-joining decoder blocks.
        decoder_filters: filters of the four decoder blocks, coarsest first;
            the last also sets the width of the final up-sampling block.
        bn_momentum: momentum of the encoder's batch-norm statistics (see
            ``mobilenet_encoder``; 0.99 instead of MobileNetV2's 0.999).
        logits: return pre-activation logits instead of probabilities.
        n_rays: rays of a ``head=\"star\"`` (>= 3; ignored by other heads).
        name: model name, also the prefix of every layer name.

    Returns:
        A ``keras.Model`` mapping ``(N, H, W, C)`` to ``(N, H, W, 1 or 3)``.

    Raises:
        ValueError: bad ``input_shape``, ``head``, ``alpha``, ``decoder_filters``
            or a weights file that does not fit the encoder.
        FileNotFoundError: ``encoder_weights`` does not exist.
        ConnectionError: ``encoder_weights="imagenet"`` offline, with no cached copy.

    Example:
        >>> model = mobilenet_unet(input_shape=(None, None, 1), alpha=0.35,
        ...                        decoder_filters=(64, 32, 16, 8))
        >>> model.output_shape
        (None, None, None, 1)
    """
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    decoder_filters = tuple(decoder_filters)
    if len(decoder_filters) != len(SKIP_LAYERS) or min(decoder_filters) < 1:
        raise ValueError(f"decoder_filters {decoder_filters} must be {len(SKIP_LAYERS)} "
                         "positive filter counts, coarsest first, e.g. (512, 256, 128, 64)")
    blocks.check_head(head)
    shape = blocks.check_input_shape(input_shape, divisor=STRIDE)
    inputs = keras.Input(shape, name=f"{name}_input")
    rgb = inputs
    if shape[2] == 1:
        rgb = layers.Concatenate(name=f"{name}_gray_to_rgb")([inputs, inputs, inputs])
    skips, x, encoder_layers = mobilenet_encoder(rgb, alpha=alpha, weights=encoder_weights,
                                                 bn_momentum=bn_momentum,
                                                 name=f"{name}_encoder")
    if freeze_encoder:
        for layer in encoder_layers:
            layer.trainable = False
    for level, (filters, skip) in enumerate(zip(decoder_filters, reversed(skips))):
        x = blocks.pix2pix_upsample(x, filters, dropout=dropout, name=f"{name}_up{level}")
        x = layers.Concatenate(name=f"{name}_concat{level}")([x, skip])
    x = blocks.pix2pix_upsample(x, decoder_filters[-1], name=f"{name}_up{len(skips)}")
    outputs = blocks.output_head(x, head, logits=logits, n_rays=n_rays,
                                 name=f"{name}_head")
    return keras.Model(inputs, outputs, name=name)
