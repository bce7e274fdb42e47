"""DeepLabV3+ (Chen et al. 2018): atrous spatial pyramid pooling and a light decoder."""

from __future__ import annotations

import keras
from keras import layers

from nuclib.models import blocks
from nuclib.models.efficientnet_unet import efficientnet_encoder, rgb_input

OUTPUT_STRIDES = (8, 16)


def deeplab_encoder(x, *, filters: int = 32, output_stride: int = 16, batch_norm: bool = True,
                    name: str):
    """A small convolutional encoder with DeepLab's atrous last stages.

    Five stages of two 3x3 conv-BN-ReLU layers with ``filters``, 2x, 4x, 8x
    and 8x ``filters`` channels. Stages 0-3 start with a stride-2
    convolution until the output stride is reached; the stages after that
    keep the resolution and dilate their convolutions instead (rate 2, then
    4), as DeepLab does with its ResNet: at output stride 16 stage 4 has rate
    2, at 8 stages 3 and 4 have rates 2 and 4.

    Args:
        x: ``(N, H, W, C)`` tensor, H and W multiples of ``output_stride`` or None.
        filters: channels of the first stage; doubled per stage up to ``8 * filters``.
        output_stride: 8 or 16, the stride of the returned high-level features.
        batch_norm: batch normalization after each convolution.
        name: prefix of the layer names.

    Returns:
        ``(low_level, high_level)``: the stride-4 features (``2 * filters``
        channels) and the stride-``output_stride`` features (``8 * filters``).

    Example:
        >>> x = keras.Input((None, None, 1))
        >>> low, high = deeplab_encoder(x, filters=4, name="m_enc")
        >>> low.shape[-1], high.shape[-1]
        (8, 32)
    """
    stride, rate, low = 1, 1, None
    for stage in range(5):
        width = filters * 2 ** min(stage, 3)
        step = 2 if stage < 4 and stride < output_stride else 1
        if step == 1:
            rate *= 2
        stride *= step
        x = blocks.conv_bn_act(x, width, strides=step, dilation_rate=1 if step == 2 else rate,
                               batch_norm=batch_norm, name=f"{name}{stage}_1")
        x = blocks.conv_bn_act(x, width, dilation_rate=rate, batch_norm=batch_norm,
                               name=f"{name}{stage}_2")
        if stride == 4 and low is None:
            low = x
    return low, x


def aspp(x, filters: int, *, rates=(6, 12, 18), image_pooling: bool = False,
         dropout: float = 0.1, name: str):
    """Atrous spatial pyramid pooling: a 1x1 and three atrous 3x3 branches, fused by a 1x1.

    Every branch is conv-BN-ReLU with ``filters`` channels; their
    concatenation is projected back to ``filters`` channels by a 1x1
    conv-BN-ReLU, then dropout. With ``image_pooling`` an image-level branch
    (global average, 1x1 conv-BN-ReLU) is added; its projection is added to
    that of the other branches (the same as concatenating it, broadcast,
    before a 1x1 convolution), which keeps the model free of resizing to a
    dynamic size.

    Args:
        x: ``(N, h, w, C)`` features.
        filters: channels of every branch and of the output.
        rates: dilation rates of the three atrous branches.
        image_pooling: add the image-level branch (the receptive field then
            is the whole image).
        dropout: dropout rate after the projection; 0 adds no Dropout layer.
        name: prefix of the layer names.

    Returns:
        ``(N, h, w, filters)`` tensor.

    Example:
        >>> x = keras.Input((None, None, 32))
        >>> aspp(x, 16, name="m_aspp").shape[-1]
        16
    """
    branches = [blocks.conv_bn_act(x, filters, kernel_size=1, name=f"{name}_1x1")]
    for rate in rates:
        branches.append(blocks.conv_bn_act(x, filters, dilation_rate=rate,
                                           name=f"{name}_rate{rate}"))
    y = layers.Concatenate(name=f"{name}_concat")(branches)
    y = layers.Conv2D(filters, 1, use_bias=False, kernel_initializer="he_normal",
                      name=f"{name}_project_conv")(y)
    if image_pooling:
        pooled = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_image_pool")(x)
        pooled = blocks.conv_bn_act(pooled, filters, kernel_size=1, name=f"{name}_image")
        pooled = layers.Conv2D(filters, 1, use_bias=False, kernel_initializer="he_normal",
                               name=f"{name}_image_project")(pooled)
        y = layers.Add(name=f"{name}_image_add")([y, pooled])
    y = layers.BatchNormalization(name=f"{name}_project_bn")(y)
    y = layers.Activation("relu", name=f"{name}_project_relu")(y)
    if dropout > 0:
        y = layers.Dropout(dropout, name=f"{name}_drop")(y)
    return y


def deeplabv3plus_base(low_level, high_level, *, output_stride: int = 16,
                       aspp_filters: int = 256, atrous_rates=(6, 12, 18),
                       image_pooling: bool = False, low_level_filters: int = 48,
                       decoder_filters: int = 256, dropout: float = 0.1,
                       name: str = "deeplabv3plus"):
    """Tensor-to-tensor DeepLabV3+ head on an encoder's features: ASPP, then the decoder.

    1. ASPP on the high-level features (rates given for output stride 16,
       doubled at 8, as in the paper).
    2. Bilinear up-sampling to stride 4; the low-level features pass a 1x1
       conv-BN-ReLU to ``low_level_filters`` channels and are concatenated.
    3. Two 3x3 conv-BN-ReLU of ``decoder_filters``, then bilinear
       up-sampling by 4 to the input resolution.

    Args:
        low_level: ``(N, H/4, W/4, C1)`` encoder features.
        high_level: ``(N, H/s, W/s, C2)`` encoder features, ``s = output_stride``.
        output_stride: 8 or 16.
        aspp_filters, atrous_rates, image_pooling, low_level_filters,
            decoder_filters, dropout: as in ``deeplabv3plus``.
        name: prefix of the layer names.

    Returns:
        ``(N, H, W, decoder_filters)`` tensor.

    Example:
        >>> low, high = keras.Input((None, None, 8)), keras.Input((None, None, 32))
        >>> deeplabv3plus_base(low, high, aspp_filters=16, decoder_filters=8,
        ...                    name="m").shape[-1]
        8
    """
    scale = 16 // output_stride
    x = aspp(high_level, aspp_filters, rates=tuple(r * scale for r in atrous_rates),
             image_pooling=image_pooling, dropout=dropout, name=f"{name}_aspp")
    x = layers.UpSampling2D(output_stride // 4, interpolation="bilinear",
                            name=f"{name}_aspp_up")(x)
    low = blocks.conv_bn_act(low_level, low_level_filters, kernel_size=1,
                             name=f"{name}_low_level")
    x = layers.Concatenate(name=f"{name}_concat")([x, low])
    x = blocks.conv_bn_act(x, decoder_filters, name=f"{name}_dec_1")
    x = blocks.conv_bn_act(x, decoder_filters, name=f"{name}_dec_2")
    return layers.UpSampling2D(4, interpolation="bilinear", name=f"{name}_up")(x)


def _positive_int(value, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a whole number >= 1, got {value!r}")


def deeplabv3plus(*, input_shape=(None, None, 1), head: str = "three_class",
                  filters: int = 32, encoder: str | None = None, encoder_weights=None,
                  freeze_encoder: bool = False, output_stride: int = 16,
                  atrous_rates=(6, 12, 18), aspp_filters: int = 256,
                  low_level_filters: int = 48, decoder_filters: int = 256,
                  image_pooling: bool = False, dropout: float = 0.1, logits: bool = False,
                  n_rays: int = 32, name: str = "deeplabv3plus") -> keras.Model:
    """Build a DeepLabV3+: an encoder, ASPP, and a decoder joining low-level features.

    The encoder is ``deeplab_encoder`` (a small convolutional one, atrous at
    its end) or, with ``encoder="EfficientNetB0"`` etc., a
    ``keras.applications`` EfficientNet (``efficientnet_encoder``: its
    stride-4 and stride-16 features, output stride 16). See
    ``deeplabv3plus_base`` for the rest.

    Inputs must have sides that are multiples of ``output_stride`` (16 by
    default; the tiled inferencer and ``nuclib.models.predict`` pad for
    you). The receptive field is large (rate-18 convolutions at stride 16),
    so tiles need wide overlaps. The paper's image-level pooling branch is
    off by default: it makes every pixel depend on the whole image, which
    tiled inference cannot reproduce (``TiledInferencer`` then tiles
    approximately, each tile pooling over itself, and warns); with an
    EfficientNet encoder that is the case anyway (squeeze-and-excitation).

    Args:
        input_shape: ``(H, W, C)``, channels-last, C in (1, 3); H and W may be None.
        head: one of ``nuclib.heads.HEADS``.
        filters: first-stage channels of the own encoder (ignored with ``encoder``).
        encoder: None (the own encoder) or an EfficientNet name from
            ``nuclib.models.efficientnet_unet.ENCODERS``.
        encoder_weights: with ``encoder``: None, ``"imagenet"`` or a weights file
            (as in ``efficientnet_unet``).
        freeze_encoder: make the EfficientNet encoder's layers non-trainable.
        output_stride: 16 or 8 (own encoder only): stride of the ASPP's input.
        atrous_rates: the three ASPP dilation rates at output stride 16.
        aspp_filters: channels of the ASPP branches and output.
        low_level_filters: channels the stride-4 features are reduced to.
        decoder_filters: channels of the decoder's two 3x3 convolutions.
        image_pooling: add ASPP's image-level branch (see above).
        dropout: dropout rate after the ASPP.
        logits: return pre-activation logits instead of probabilities.
        n_rays: rays of a ``head=\"star\"`` (>= 3; ignored by other heads).
        name: model name, also the prefix of every layer name.

    Returns:
        A ``keras.Model`` mapping ``(N, H, W, C)`` to ``(N, H, W, head channels)``.

    Raises:
        ValueError: bad ``input_shape``, ``head``, ``filters``, ``encoder``,
            ``output_stride``, ``atrous_rates``, filter counts, ``dropout`` or
            a weights file that does not fit.
        FileNotFoundError: ``encoder_weights`` is a path that does not exist.
        ConnectionError: ``encoder_weights="imagenet"`` offline, with no cached copy.

    Example:
        >>> model = deeplabv3plus(input_shape=(None, None, 1), filters=4, aspp_filters=16,
        ...                       low_level_filters=8, decoder_filters=16)
        >>> model.output_shape
        (None, None, None, 3)
    """
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(f"output_stride must be one of {OUTPUT_STRIDES}, got {output_stride!r}")
    if encoder is not None and output_stride != 16:
        raise ValueError(f"output_stride={output_stride} needs the own encoder; an "
                         f"EfficientNet encoder ({encoder!r}) gives output stride 16")
    atrous_rates = tuple(atrous_rates)
    if len(atrous_rates) != 3:
        raise ValueError(f"atrous_rates {atrous_rates} must be three dilation rates, "
                         "e.g. (6, 12, 18)")
    for rate in atrous_rates:
        _positive_int(rate, "every atrous rate")
    for value, what in ((filters, "filters"), (aspp_filters, "aspp_filters"),
                        (low_level_filters, "low_level_filters"),
                        (decoder_filters, "decoder_filters")):
        _positive_int(value, what)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    blocks.check_head(head, n_rays)
    if encoder is None:
        if encoder_weights is not None or freeze_encoder:
            raise ValueError("encoder_weights and freeze_encoder need an EfficientNet "
                             "encoder=; the own encoder starts from random weights")
        shape = blocks.check_input_shape(input_shape, divisor=output_stride)
        inputs = keras.Input(shape, name=f"{name}_input")
        low, high = deeplab_encoder(inputs, filters=filters, output_stride=output_stride,
                                    name=f"{name}_enc")
    else:
        inputs, rgb = rgb_input(input_shape, divisor=output_stride, name=name)
        features, encoder_layers = efficientnet_encoder(rgb, encoder=encoder,
                                                        weights=encoder_weights,
                                                        name=f"{name}_encoder")
        if freeze_encoder:
            for layer in encoder_layers:
                layer.trainable = False
        low, high = features[4], features[16]
    x = deeplabv3plus_base(low, high, output_stride=output_stride, aspp_filters=aspp_filters,
                           atrous_rates=atrous_rates, image_pooling=image_pooling,
                           low_level_filters=low_level_filters,
                           decoder_filters=decoder_filters, dropout=dropout, name=name)
    outputs = blocks.output_head(x, head, logits=logits, n_rays=n_rays, name=f"{name}_head")
    return keras.Model(inputs, outputs, name=name)
