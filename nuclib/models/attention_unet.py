"""Attention U-Net (Oktay et al. 2018): a U-Net whose skips pass additive attention gates."""

from __future__ import annotations

import keras
from keras import layers

from nuclib.models import blocks
from nuclib.models.unet import unet_encoder


def attention_unet_base(x, *, depth: int = 4, filters: int = 32, kernel_size: int = 3,
                        batch_norm: bool = True, dropout=0.0, upsampling: str = "transpose",
                        dilation: int = 1, first_kernel_size: int | None = None,
                        name: str = "attention_unet"):
    """Tensor-to-tensor Attention U-Net body: returns the last decoder feature map.

    The encoder and bottleneck are ``unet_encoder``'s, the decoder is
    ``unet_base``'s; before each skip is concatenated it passes an ``attention_gate`` driven by the
    decoder features one level coarser (the gating signal), with half the
    skip's channels as the attention space (as in the paper's code). Only
    ``dropout`` is checked here; ``attention_unet`` validates the rest.

    Args:
        x: ``(N, H, W, C)`` input tensor, H and W multiples of ``2**depth`` or None.
        depth, filters, kernel_size, batch_norm, dropout, upsampling, dilation,
            first_kernel_size: as in ``attention_unet``.
        name: prefix of the layer names.

    Returns:
        ``(N, H, W, filters)`` tensor: the last decoder stage, before the head.

    Raises:
        ValueError: bad ``dropout`` rates (from ``blocks.stage_dropouts``).

    Example:
        >>> x = keras.Input((None, None, 1))
        >>> attention_unet_base(x, depth=2, filters=8, name="m").shape[-1]
        8
    """
    x, skips = unet_encoder(x, depth=depth, filters=filters, kernel_size=kernel_size,
                            batch_norm=batch_norm, dropout=dropout, dilation=dilation,
                            first_kernel_size=first_kernel_size, name=name)
    conv = dict(kernel_size=kernel_size, batch_norm=batch_norm, dilation_rate=dilation)
    for level in reversed(range(depth)):
        width = filters * 2**level
        gated = blocks.attention_gate(skips[level], x, max(1, width // 2),
                                      name=f"{name}_att{level}")
        x = blocks.upsample(x, width, mode=upsampling, name=f"{name}_up{level}")
        x = layers.Concatenate(name=f"{name}_concat{level}")([x, gated])
        x = blocks.conv_block(x, width, name=f"{name}_dec{level}", **conv)
    return x


def attention_unet(*, input_shape=(None, None, 1), head: str = "three_class", depth: int = 4,
                   filters: int = 32, kernel_size: int = 3, batch_norm: bool = True,
                   dropout=0.0, upsampling: str = "transpose", dilation: int = 1,
                   first_kernel_size: int | None = None, logits: bool = False,
                   n_rays: int = 32, name: str = "attention_unet") -> keras.Model:
    """Build an Attention U-Net: ``unet`` plus additive attention gates on the skips.

    Inputs must have sides that are multiples of ``2**depth`` (the tiled
    inferencer and ``nuclib.models.predict`` pad for you). The gates add
    about 1-2 % parameters to the matching ``unet``. ``dilation``,
    ``first_kernel_size`` and ``dropout`` mean what they mean for ``unet``
    and, at their defaults, leave the network and its layer names as they
    were before these options existed.

    Args:
        input_shape: ``(H, W, C)``, channels-last, C in (1, 3); H and W may be None.
        head: one of ``nuclib.heads.HEADS``: ``"binary"`` (1 channel, sigmoid),
            ``"star"`` (probability + rays), ``"three_class_distance"`` or
            ``"three_class"`` (softmax over background / interior / boundary).
        depth: number of 2x down-sampling stages.
        filters: filters of the first stage; doubled at every stage.
        kernel_size: convolution kernel size.
        batch_norm: batch normalization after each convolution.
        dropout: a rate (float) for the deepest encoder stage and the
            bottleneck, or a sequence of ``depth + 1`` rates: one per encoder
            stage, shallowest first, then the bottleneck (a stage with rate 0
            gets no Dropout layer).
        upsampling: ``"transpose"`` (Conv2DTranspose) or ``"bilinear"``.
        dilation: dilation rate of every convolution of the encoder,
            bottleneck and decoder blocks (not of the attention gates, the
            up-sampling or the head).
        first_kernel_size: kernel size of the very first convolution (e.g. 7
            for a 7x7 stem); None uses ``kernel_size``.
        logits: return pre-activation logits instead of probabilities.
        n_rays: rays of a ``head=\"star\"`` (>= 3; ignored by other heads).
        name: model name, also the prefix of every layer name.

    Returns:
        A ``keras.Model`` mapping ``(N, H, W, C)`` to ``(N, H, W, head channels)``.

    Raises:
        ValueError: bad ``input_shape``, ``head``, ``depth``, ``filters``,
            ``upsampling``, ``dilation``, ``first_kernel_size`` or ``dropout``.

    Example:
        >>> model = attention_unet(input_shape=(None, None, 1), depth=2, filters=8)
        >>> model.output_shape
        (None, None, None, 3)
        >>> stem = attention_unet(depth=2, filters=8, first_kernel_size=7, dilation=2,
        ...                       dropout=[0.0, 0.1, 0.2])
        >>> stem.get_layer("attention_unet_enc0_1_conv").kernel_size
        (7, 7)
        >>> stem.get_layer("attention_unet_bottleneck_drop").rate
        0.2
    """
    inputs = blocks.unet_input(input_shape, head=head, depth=depth, filters=filters,
                               upsampling=upsampling, name=name)
    blocks.check_stage_options(depth=depth, dilation=dilation,
                               first_kernel_size=first_kernel_size, dropout=dropout)
    x = attention_unet_base(inputs, depth=depth, filters=filters, kernel_size=kernel_size,
                            batch_norm=batch_norm, dropout=dropout, upsampling=upsampling,
                            dilation=dilation, first_kernel_size=first_kernel_size, name=name)
    outputs = blocks.output_head(x, head, logits=logits, n_rays=n_rays,
                                 name=f"{name}_head")
    return keras.Model(inputs, outputs, name=name)
