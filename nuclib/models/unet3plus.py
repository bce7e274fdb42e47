"""UNet 3+ (Huang et al. 2020): a U-Net whose decoder stages see every encoder and decoder scale."""

from __future__ import annotations

import keras
from keras import layers

from nuclib.models import blocks


def unet3plus_base(x, *, depth: int = 4, filters: int = 32, cat_filters: int | None = None,
                   kernel_size: int = 3, batch_norm: bool = True, dropout=0.0,
                   name: str = "unet3plus"):
    """Tensor-to-tensor UNet 3+ body: returns the finest decoder stage's features.

    The encoder is ``unet_base``'s (two convolutions per stage, max-pooling
    down, a bottleneck at stride ``2**depth``). Decoder stage ``i`` (from
    ``depth - 1`` to 0, 0 at full resolution) joins ``depth + 1`` maps by
    full-scale skip connections, each brought to stage ``i``'s size and
    projected by a 3x3 conv-BN-ReLU to ``cat_filters`` channels:

    1. every finer encoder stage ``j < i``, max-pooled by ``2**(i - j)``;
    2. encoder stage ``i`` itself;
    3. every coarser decoder stage ``j > i`` (the bottleneck for
       ``j = depth``), bilinearly up-sampled by ``2**(j - i)``.

    The ``depth + 1`` maps are concatenated and fused by a 3x3 conv-BN-ReLU
    of ``cat_filters * (depth + 1)`` channels, as in the paper.

    Args:
        x: ``(N, H, W, C)`` input tensor; H and W multiples of ``2**depth`` or None.
        depth, filters, cat_filters, kernel_size, batch_norm, dropout: as in
            ``unet3plus``.
        name: prefix of every layer name.

    Returns:
        ``(N, H, W, cat_filters * (depth + 1))`` tensor: decoder stage 0.

    Raises:
        ValueError: bad ``dropout`` rates (from ``blocks.stage_dropouts``).

    Example:
        >>> x = keras.Input((None, None, 1))
        >>> tuple(unet3plus_base(x, depth=2, filters=4, name="demo").shape)
        (None, None, None, 12)
    """
    cat = filters if cat_filters is None else cat_filters
    rates = blocks.stage_dropouts(dropout, depth)
    conv = dict(kernel_size=kernel_size, batch_norm=batch_norm)
    encoder = []
    for level in range(depth):
        x = blocks.conv_block(x, filters * 2**level, dropout=rates[level],
                              name=f"{name}_enc{level}", **conv)
        encoder.append(x)
        x = layers.MaxPooling2D(2, name=f"{name}_pool{level}")(x)
    x = blocks.conv_block(x, filters * 2**depth, dropout=rates[depth],
                          name=f"{name}_bottleneck", **conv)
    decoder = {depth: x}
    for i in reversed(range(depth)):
        parts = []
        for j in range(i):
            size = 2 ** (i - j)
            y = layers.MaxPooling2D(size, name=f"{name}_dec{i}_enc{j}_pool")(encoder[j])
            parts.append(blocks.conv_bn_act(y, cat, name=f"{name}_dec{i}_enc{j}", **conv))
        parts.append(blocks.conv_bn_act(encoder[i], cat, name=f"{name}_dec{i}_enc{i}", **conv))
        for j in range(i + 1, depth + 1):
            source = "bottleneck" if j == depth else f"dec{j}"
            y = layers.UpSampling2D(2 ** (j - i), interpolation="bilinear",
                                    name=f"{name}_dec{i}_{source}_up")(decoder[j])
            parts.append(blocks.conv_bn_act(y, cat, name=f"{name}_dec{i}_{source}", **conv))
        y = layers.Concatenate(name=f"{name}_dec{i}_concat")(parts)
        decoder[i] = blocks.conv_bn_act(y, cat * (depth + 1), name=f"{name}_dec{i}_fuse",
                                        **conv)
    return decoder[0]


def unet3plus(*, input_shape=(None, None, 1), head: str = "three_class", depth: int = 4,
              filters: int = 32, cat_filters: int | None = None, kernel_size: int = 3,
              batch_norm: bool = True, dropout=0.0, logits: bool = False, n_rays: int = 32,
              name: str = "unet3plus") -> keras.Model:
    """Build a UNet 3+ (full-scale skip connections; see ``unet3plus_base``).

    Inputs must have sides that are multiples of ``2**depth`` (the tiled
    inferencer and ``nuclib.models.predict`` pad for you). The model has one
    output, at full resolution; for the paper's deep supervision, train
    ``unet3plus_deep_supervision(model)`` (which shares every layer with
    ``model``) and keep using ``model``. The paper's classification-guided
    module is left out (an image-level "any organ here?" classifier).

    Args:
        input_shape: ``(H, W, C)``, channels-last, C in (1, 3); H and W may be None.
        head: one of ``nuclib.heads.HEADS``.
        depth: number of 2x down-sampling stages (4 in the paper: 5 scales).
        filters: filters of the first encoder stage; doubled at every stage
            (the paper's are 64).
        cat_filters: channels of each full-scale skip (the paper's 64);
            None: ``filters``. Decoder stages have ``cat_filters * (depth + 1)``.
        kernel_size: convolution kernel size.
        batch_norm: batch normalization after each convolution.
        dropout: a rate for the deepest encoder stage and the bottleneck, or
            ``depth + 1`` rates (encoder stages shallowest first, then the
            bottleneck), as in ``unet``.
        logits: return pre-activation logits instead of probabilities.
        n_rays: rays of a ``head=\"star\"`` (>= 3; ignored by other heads).
        name: model name, also the prefix of every layer name.

    Returns:
        A ``keras.Model`` mapping ``(N, H, W, C)`` to ``(N, H, W, head channels)``.

    Raises:
        ValueError: bad ``input_shape``, ``head``, ``depth``, ``filters``,
            ``cat_filters`` or ``dropout``.

    Example:
        >>> model = unet3plus(input_shape=(None, None, 1), depth=2, filters=4)
        >>> model.output_shape
        (None, None, None, 3)
    """
    if cat_filters is not None and (isinstance(cat_filters, bool)
                                    or not isinstance(cat_filters, int) or cat_filters < 1):
        raise ValueError(f"cat_filters must be a whole number >= 1 or None, got {cat_filters!r}")
    inputs = blocks.unet_input(input_shape, head=head, depth=depth, filters=filters,
                               upsampling="bilinear", name=name)
    x = unet3plus_base(inputs, depth=depth, filters=filters, cat_filters=cat_filters,
                       kernel_size=kernel_size, batch_norm=batch_norm, dropout=dropout,
                       name=name)
    outputs = blocks.output_head(x, head, logits=logits, n_rays=n_rays, name=f"{name}_head")
    return keras.Model(inputs, outputs, name=name)


def unet3plus_deep_supervision(model, *, head: str = "three_class", logits: bool = False,
                               n_rays: int = 32) -> keras.Model:
    """A training model with the paper's deep supervision, sharing its layers with ``model``.

    Every coarser decoder stage and the bottleneck of a ``unet3plus`` model
    gets a side output: a 3x3 convolution, bilinear up-sampling to full
    resolution and the same head as the model's. The returned model's
    outputs are ``[model's output, side output of stage 1, ..., of the
    bottleneck]``; train it with one loss per output (the same loss for
    all, as in the paper), then predict and save with ``model`` itself,
    which has been trained along and keeps its single output.

    Args:
        model: a model built by ``unet3plus``.
        head: the model's head (one of ``nuclib.heads.HEADS``).
        logits: side outputs without their final activation.
        n_rays: rays of a ``head=\"star\"``.

    Returns:
        A ``keras.Model`` with ``depth + 1`` outputs, all ``(N, H, W, head channels)``.

    Raises:
        ValueError: ``model`` is not a ``unet3plus`` model, or its output
            does not have the channels of ``head``.

    Example:
        >>> model = unet3plus(depth=2, filters=4)
        >>> training = unet3plus_deep_supervision(model)
        >>> [tuple(o.shape) for o in training.outputs][-1]
        (None, None, None, 3)
    """
    name = model.name
    channels = blocks.head_channels(head, n_rays)
    if model.output_shape[-1] != channels:
        raise ValueError(f"model {name!r} has {model.output_shape[-1]} output channels; "
                         f"head {head!r} has {channels}: pass the model's own head")
    names = {layer.name for layer in model.layers}
    if f"{name}_dec0_fuse_conv" not in names or f"{name}_bottleneck_2_conv" not in names:
        raise ValueError(f"model {name!r} is not a unet3plus model (no {name}_dec0_fuse and "
                         f"{name}_bottleneck layers); build it with nuclib.models.unet3plus")
    depth = 1
    while f"{name}_dec{depth}_fuse_conv" in names:
        depth += 1
    cat = model.get_layer(f"{name}_dec0_fuse_conv").filters // (depth + 1)
    stages = [f"{name}_dec{i}_fuse" for i in range(1, depth)] + [f"{name}_bottleneck_2"]
    outputs = [model.output]
    for level, stage in enumerate(stages, start=1):
        y = layers.Conv2D(cat, 3, padding="same", name=f"{name}_side{level}_conv")(
            _unit_output(model, stage, names))
        y = layers.UpSampling2D(2**level, interpolation="bilinear",
                                name=f"{name}_side{level}_up")(y)
        outputs.append(blocks.output_head(y, head, logits=logits, n_rays=n_rays,
                                          name=f"{name}_side{level}_head"))
    return keras.Model(model.input, outputs, name=f"{name}_deep_supervision")


def _unit_output(model, prefix: str, names: set):
    """The output of the conv-BN-activation unit whose layers are named ``prefix_*``."""
    for suffix in ("_relu", "_bn", "_conv"):
        if prefix + suffix in names:
            return model.get_layer(prefix + suffix).output
    raise ValueError(f"model {model.name!r} has no layer {prefix}_conv")
