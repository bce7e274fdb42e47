"""Attention U-Net (Oktay et al. 2018): a U-Net whose skips pass additive attention gates."""

from __future__ import annotations

import keras
from keras import layers

from nuclib.models import blocks


def attention_unet_base(x, *, depth: int = 4, filters: int = 32, kernel_size: int = 3,
                        batch_norm: bool = True, dropout: float = 0.0,
                        upsampling: str = "transpose", name: str = "attention_unet"):
    """Tensor-to-tensor Attention U-Net body: returns the last decoder feature map.

    The encoder, bottleneck and decoder are those of ``unet_base``; before each
    skip is concatenated it passes an ``attention_gate`` driven by the
    decoder features one level coarser (the gating signal), with half the
    skip's channels as the attention space (as in the paper's code).

    Args:
        x: ``(N, H, W, C)`` input tensor, H and W multiples of ``2**depth`` or None.
        depth, filters, kernel_size, batch_norm, dropout, upsampling: as in
            ``attention_unet``.
        name: prefix of the layer names.

    Returns:
        ``(N, H, W, filters)`` tensor: the last decoder stage, before the head.

    Example:
        >>> x = keras.Input((None, None, 1))
        >>> attention_unet_base(x, depth=2, filters=8, name="m").shape[-1]
        8
    """
    skips = []
    for level in range(depth):
        drop = dropout if level >= depth - 1 else 0.0
        x = blocks.conv_block(x, filters * 2**level, kernel_size=kernel_size,
                              batch_norm=batch_norm, dropout=drop, name=f"{name}_enc{level}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"{name}_pool{level}")(x)
    x = blocks.conv_block(x, filters * 2**depth, kernel_size=kernel_size, batch_norm=batch_norm,
                          dropout=dropout, name=f"{name}_bottleneck")
    for level in reversed(range(depth)):
        width = filters * 2**level
        gated = blocks.attention_gate(skips[level], x, max(1, width // 2),
                                      name=f"{name}_att{level}")
        x = blocks.upsample(x, width, mode=upsampling, name=f"{name}_up{level}")
        x = layers.Concatenate(name=f"{name}_concat{level}")([x, gated])
        x = blocks.conv_block(x, width, kernel_size=kernel_size, batch_norm=batch_norm,
                              name=f"{name}_dec{level}")
    return x


def attention_unet(*, input_shape=(None, None, 1), head: str = "three_class", depth: int = 4,
                   filters: int = 32, kernel_size: int = 3, batch_norm: bool = True,
                   dropout: float = 0.0, upsampling: str = "transpose", logits: bool = False, n_rays: int = 32,
                   name: str = "attention_unet") -> keras.Model:
    """Build an Attention U-Net: ``unet`` plus additive attention gates on the skips.

    Inputs must have sides that are multiples of ``2**depth`` (the tiled
    inferencer and ``nuclib.models.predict`` pad for you). The gates add
    about 1-2 % parameters to the matching ``unet``.

    Args:
        input_shape: ``(H, W, C)``, channels-last, C in (1, 3); H and W may be None.
        head: ``"binary"`` (1 channel, sigmoid), ``"star"`` (probability + rays) or ``"three_class"``
            (softmax over background / interior / boundary).
        depth: number of 2x down-sampling stages.
        filters: filters of the first stage; doubled at every stage.
        kernel_size: convolution kernel size.
        batch_norm: batch normalization after each convolution.
        dropout: dropout rate in the deepest encoder stage and the bottleneck.
        upsampling: ``"transpose"`` (Conv2DTranspose) or ``"bilinear"``.
        logits: return pre-activation logits instead of probabilities.
        n_rays: rays of a ``head=\"star\"`` (>= 3; ignored by other heads).
        name: model name, also the prefix of every layer name.

    Returns:
        A ``keras.Model`` mapping ``(N, H, W, C)`` to ``(N, H, W, 1 or 3)``.

    Raises:
        ValueError: bad ``input_shape``, ``head``, ``depth``, ``filters`` or ``upsampling``.

    Example:
        >>> model = attention_unet(input_shape=(None, None, 1), depth=2, filters=8)
        >>> model.output_shape
        (None, None, None, 3)
    """
    inputs = blocks.unet_input(input_shape, head=head, depth=depth, filters=filters,
                               upsampling=upsampling, name=name)
    x = attention_unet_base(inputs, depth=depth, filters=filters, kernel_size=kernel_size,
                            batch_norm=batch_norm, dropout=dropout, upsampling=upsampling,
                            name=name)
    outputs = blocks.output_head(x, head, logits=logits, n_rays=n_rays,
                                 name=f"{name}_head")
    return keras.Model(inputs, outputs, name=name)
