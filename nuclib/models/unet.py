"""Classic U-Net (Ronneberger et al. 2015), as used by unet4nuclei."""

from __future__ import annotations

import keras
from keras import layers

from nuclib.models import blocks


def unet_base(x, *, depth: int = 4, filters: int = 32, kernel_size: int = 3,
              batch_norm: bool = True, dropout: float = 0.0, upsampling: str = "transpose",
              name: str = "unet"):
    """Tensor-to-tensor U-Net body: returns the last decoder feature map.

    Dropout (if any) is applied in the two deepest stages (the deepest
    encoder stage and the bottleneck), where the U-Net paper put it. No
    argument is checked here; ``unet`` validates them.

    Args:
        x: ``(N, H, W, C)`` input tensor; H and W multiples of ``2**depth``.
        depth: number of 2x down-sampling stages.
        filters: filters of the first stage; doubled at every stage.
        kernel_size: convolution kernel size.
        batch_norm: batch normalization after each convolution.
        dropout: dropout rate of the two deepest stages.
        upsampling: ``"transpose"`` or ``"bilinear"``.
        name: prefix of every layer name.

    Returns:
        ``(N, H, W, filters)`` tensor: the last decoder stage's features.

    Raises:
        ValueError: an unknown ``upsampling`` mode (from ``blocks.upsample``).

    Example:
        >>> x = keras.Input((None, None, 1))
        >>> tuple(unet_base(x, depth=2, filters=8, name="demo").shape)
        (None, None, None, 8)
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
        x = blocks.upsample(x, filters * 2**level, mode=upsampling, name=f"{name}_up{level}")
        x = layers.Concatenate(name=f"{name}_concat{level}")([x, skips[level]])
        x = blocks.conv_block(x, filters * 2**level, kernel_size=kernel_size,
                              batch_norm=batch_norm, name=f"{name}_dec{level}")
    return x


def unet(*, input_shape=(None, None, 1), head: str = "three_class", depth: int = 4,
         filters: int = 32, kernel_size: int = 3, batch_norm: bool = True,
         dropout: float = 0.0, upsampling: str = "transpose", logits: bool = False, n_rays: int = 32,
         name: str = "unet") -> keras.Model:
    """Build a classic U-Net.

    Inputs must have sides that are multiples of ``2**depth`` (the tiled
    inferencer and ``nuclib.models.predict`` pad for you).

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
        ValueError: bad ``input_shape``, ``head``, ``depth`` or ``upsampling``.

    Example:
        >>> model = unet(input_shape=(None, None, 1), head="three_class", depth=2, filters=8)
        >>> model.output_shape
        (None, None, None, 3)
    """
    inputs = blocks.unet_input(input_shape, head=head, depth=depth, filters=filters,
                               upsampling=upsampling, name=name)
    x = unet_base(inputs, depth=depth, filters=filters, kernel_size=kernel_size,
                  batch_norm=batch_norm, dropout=dropout, upsampling=upsampling, name=name)
    outputs = blocks.output_head(x, head, logits=logits, n_rays=n_rays,
                                 name=f"{name}_head")
    return keras.Model(inputs, outputs, name=name)
