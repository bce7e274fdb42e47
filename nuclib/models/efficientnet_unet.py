"""U-Net with a ``keras.applications`` EfficientNet (B0-B7, V2) encoder."""

from __future__ import annotations

import keras
from keras import layers

from nuclib.models import blocks

ENCODERS = tuple(f"EfficientNetB{i}" for i in range(8)) + tuple(
    f"EfficientNetV2{v}" for v in ("B0", "B1", "B2", "B3", "S", "M", "L"))
# The encoder's features at strides 2, 4, 8 and 16 are the inputs of these
# blocks (the last output of the previous stage); stride 32 is the top layer.
# Both families name their blocks this way.
SKIP_BLOCKS = ("block2a_expand_conv", "block3a_expand_conv", "block4a_expand_conv",
               "block6a_expand_conv")
BOTTLENECK_LAYER = "top_activation"
STRIDE = 32


def check_encoder(encoder: str) -> None:
    """Raise ``ValueError`` unless ``encoder`` is one of ``ENCODERS``.

    Args:
        encoder: a ``keras.applications`` EfficientNet constructor name.

    Raises:
        ValueError: an unknown encoder, listing the known ones.

    Example:
        >>> check_encoder("EfficientNetB0")
    """
    if encoder not in ENCODERS:
        raise ValueError(f"unknown encoder {encoder!r}; expected one of {ENCODERS}")


def efficientnet_encoder(x, *, encoder: str = "EfficientNetB0", weights=None,
                         bn_momentum: float | None = 0.99, name: str):
    """Run a ``keras.applications`` EfficientNet on a 3-channel [0, 1] tensor, in place.

    The application's layers are created on ``x``'s graph (not nested) and
    renamed ``f"{name}_<keras name>"``, as ``mobilenet_encoder`` does. The
    Keras EfficientNets rescale [0, 255] inputs themselves (their first
    layers), so a ``Rescaling(255)`` named ``f"{name}_to_255"`` comes first:
    nuclib's [0, 1] images then reach the network as Keras expects, with or
    without ImageNet weights.

    Args:
        x: ``(N, H, W, 3)`` Keras tensor, H and W multiples of 32 or None.
        encoder: one of ``ENCODERS``.
        weights: None (random), ``"imagenet"`` (downloaded by Keras when
            online, then cached) or the path of a weights file of
            ``keras.applications.<encoder>(include_top=False)``.
        bn_momentum: momentum of the encoder's batch norms (None keeps Keras':
            0.99 for B0-B7, 0.9 for V2).
        name: prefix of the layer names, e.g. ``"efficientnet_unet_encoder"``.

    Returns:
        ``(features, encoder_layers)``: ``{stride: tensor}`` for strides 2, 4,
        8, 16 and 32, and the list of the encoder's layers.

    Raises:
        ValueError: an unknown ``encoder`` or a weights file that does not fit it.
        FileNotFoundError: ``weights`` is a path that does not exist.
        ConnectionError: ``"imagenet"`` offline without a cached copy (the
            message says how to pass a local file).

    Example:
        >>> x = keras.Input((None, None, 3))
        >>> features, _ = efficientnet_encoder(x, name="m_encoder")
        >>> {s: t.shape[-1] for s, t in features.items()}
        {2: 16, 4: 24, 8: 40, 16: 112, 32: 1280}
    """
    check_encoder(encoder)
    to_255 = layers.Rescaling(255.0, name=f"{name}_to_255")
    scaled = to_255(x)
    backbone = blocks.application_backbone(encoder, scaled, weights=weights)
    tensors = [backbone.get_layer(n).input for n in SKIP_BLOCKS]
    tensors.append(backbone.get_layer(BOTTLENECK_LAYER).output)
    encoder_layers = blocks.adopt_layers(backbone, scaled, name=name, bn_momentum=bn_momentum)
    return dict(zip((2, 4, 8, 16, 32), tensors)), [to_255, *encoder_layers]


def rgb_input(input_shape, *, divisor: int, name: str):
    """The model's ``keras.Input`` and its 3-channel version (a grayscale input repeated).

    Args:
        input_shape: ``(H, W, C)``, C in (1, 3); sides, if given, multiples of ``divisor``.
        divisor: the model's side multiple.
        name: model name; layers ``f"{name}_input"`` and ``f"{name}_gray_to_rgb"``.

    Returns:
        ``(inputs, rgb)``: the input tensor and the 3-channel tensor (``inputs`` if C = 3).

    Raises:
        ValueError: a bad ``input_shape`` (from ``blocks.check_input_shape``).

    Example:
        >>> inputs, rgb = rgb_input((None, None, 1), divisor=32, name="m")
        >>> rgb.shape[-1]
        3
    """
    shape = blocks.check_input_shape(input_shape, divisor=divisor)
    inputs = keras.Input(shape, name=f"{name}_input")
    if shape[2] == 3:
        return inputs, inputs
    # A weight-free repeat, so that 3-channel (ImageNet) weights load unchanged.
    return inputs, layers.Concatenate(name=f"{name}_gray_to_rgb")([inputs, inputs, inputs])


def efficientnet_unet(*, input_shape=(None, None, 1), head: str = "three_class",
                      encoder: str = "EfficientNetB0", encoder_weights=None,
                      freeze_encoder: bool = False, decoder_filters=(256, 128, 64, 32, 16),
                      dropout: float = 0.0, upsampling: str = "transpose",
                      bn_momentum: float | None = 0.99, logits: bool = False,
                      n_rays: int = 32, name: str = "efficientnet_unet") -> keras.Model:
    """Build a U-Net with an EfficientNet encoder (``keras.applications``).

    The encoder (``efficientnet_encoder``) gives skips at strides 16, 8, 4
    and 2 and the stride-32 top activation. Each of the five decoder stages
    up-samples by 2 (``blocks.upsample``), concatenates the matching skip
    (the last stage has none: it is at full resolution) and runs a
    ``blocks.conv_block``. A 1-channel input is repeated to 3 channels, so
    ImageNet weights load unchanged; encoder layers are named
    ``f"{name}_encoder_<Keras name>"``, as in ``mobilenet_unet``.

    Inputs must have sides that are multiples of 32 (the tiled inferencer
    and ``nuclib.models.predict`` pad for you). The encoder's
    squeeze-and-excitation blocks average over the whole image, so the
    receptive field is the image: ``TiledInferencer`` tiles it
    approximately (``nuclib.postprocess.tiling.default_overlap``; tiles
    average over themselves, and it warns once).

    Args:
        input_shape: ``(H, W, C)``, channels-last, C in (1, 3); H and W may be None.
        head: one of ``nuclib.heads.HEADS``.
        encoder: one of ``ENCODERS`` (``"EfficientNetB0"`` ... ``"EfficientNetB7"``,
            ``"EfficientNetV2B0"`` ... ``"EfficientNetV2L"``).
        encoder_weights: None (random), ``"imagenet"`` (downloaded through
            Keras when online, then cached) or a path to a weights file of
            ``keras.applications.<encoder>(include_top=False)`` (offline: pass
            the file).
        freeze_encoder: make the encoder's layers non-trainable.
        decoder_filters: filters of the five decoder stages, coarsest first.
        dropout: dropout rate inside the four skip-joining decoder blocks.
        upsampling: ``"transpose"`` (Conv2DTranspose) or ``"bilinear"``.
        bn_momentum: momentum of the encoder's batch norms (None keeps Keras').
        logits: return pre-activation logits instead of probabilities.
        n_rays: rays of a ``head=\"star\"`` (>= 3; ignored by other heads).
        name: model name, also the prefix of every layer name.

    Returns:
        A ``keras.Model`` mapping ``(N, H, W, C)`` to ``(N, H, W, head channels)``.

    Raises:
        ValueError: bad ``input_shape``, ``head``, ``encoder``, ``decoder_filters``,
            ``dropout``, ``upsampling`` or a weights file that does not fit.
        FileNotFoundError: ``encoder_weights`` is a path that does not exist.
        ConnectionError: ``encoder_weights="imagenet"`` offline, with no cached copy.

    Example:
        >>> model = efficientnet_unet(input_shape=(None, None, 1),
        ...                           decoder_filters=(32, 16, 16, 8, 8))
        >>> model.output_shape
        (None, None, None, 3)
    """
    check_encoder(encoder)
    decoder_filters = tuple(decoder_filters)
    if len(decoder_filters) != 5 or not all(isinstance(f, int) and f >= 1
                                            for f in decoder_filters):
        raise ValueError(f"decoder_filters {decoder_filters} must be 5 positive filter counts, "
                         "coarsest first, e.g. (256, 128, 64, 32, 16)")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    if upsampling not in blocks.UPSAMPLING_MODES:
        raise ValueError(f"unknown upsampling {upsampling!r}; expected one of "
                         f"{blocks.UPSAMPLING_MODES}")
    blocks.check_head(head, n_rays)
    inputs, rgb = rgb_input(input_shape, divisor=STRIDE, name=name)
    features, encoder_layers = efficientnet_encoder(rgb, encoder=encoder,
                                                    weights=encoder_weights,
                                                    bn_momentum=bn_momentum,
                                                    name=f"{name}_encoder")
    if freeze_encoder:
        for layer in encoder_layers:
            layer.trainable = False
    x = features[32]
    for level, filters in enumerate(decoder_filters):
        x = blocks.upsample(x, filters, mode=upsampling, name=f"{name}_up{level}")
        skip = features.get(STRIDE // 2 ** (level + 1))
        if skip is not None:
            x = layers.Concatenate(name=f"{name}_concat{level}")([x, skip])
        x = blocks.conv_block(x, filters, dropout=dropout if skip is not None else 0.0,
                              name=f"{name}_dec{level}")
    outputs = blocks.output_head(x, head, logits=logits, n_rays=n_rays, name=f"{name}_head")
    return keras.Model(inputs, outputs, name=name)
