"""Swin-UNet (Cao et al. 2021): a U-shaped network of Swin transformer blocks.

Tokens stay in image layout, ``(N, H, W, C)``, all the way: layer norms and
linear layers act on the last axis, and the three custom layers below
(windowed attention, the patch merging and expanding rearrangements) are
written with ``keras.ops`` only, for any ``H`` and ``W`` that are multiples of
the model's side multiple, on TensorFlow, JAX and PyTorch.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from nuclib.models import blocks


def _relative_position_index(window_size: int) -> np.ndarray:
    """``(L, L)`` index into the ``(2w - 1)**2`` relative-position table, ``L = w * w``."""
    coords = np.stack(np.meshgrid(np.arange(window_size), np.arange(window_size),
                                  indexing="ij")).reshape(2, -1)
    relative = coords[:, :, None] - coords[:, None, :] + window_size - 1
    return (relative[0] * (2 * window_size - 1) + relative[1]).astype("int32")


@keras.saving.register_keras_serializable(package="nuclib")
class WindowAttention(keras.layers.Layer):
    """Multi-head self-attention inside non-overlapping windows, optionally shifted (Swin).

    Takes the query, key and value projections ``(N, H, W, 3C)`` (a ``Dense``
    of ``3C`` before this layer, a ``Dense`` output projection after it: both
    act per pixel, so they commute with the shift) and returns the attended
    values ``(N, H, W, C)``, heads concatenated. With ``shift_size`` the
    tokens are rolled by ``-shift_size`` on both axes first (and back after),
    and attention between tokens that came from different regions of the
    rolled image is masked, as in the Swin paper; the mask is computed from
    the tensor's run-time shape. A learned relative-position bias
    (``(2w - 1)**2`` values per head) is added to the attention logits.

    ``H`` and ``W`` must be multiples of ``window_size`` (the attribute
    ``side_multiple`` tells ``nuclib.models.required_multiple``). Each output
    token depends on tokens at most ``window_size - 1`` away (its window, or
    its shifted window): the attribute ``conv_footprint`` tells
    ``receptive_field_radius`` so (``nuclib.graph``).

    Args:
        num_heads: attention heads; ``C`` must be a multiple of it.
        window_size: window side in tokens.
        shift_size: roll of the shifted-window variant, ``0 <= shift_size < window_size``.
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``).

    Raises:
        ValueError: bad sizes, or an input whose channels are not ``3 * num_heads * d``.

    Example:
        >>> layer = WindowAttention(num_heads=2, window_size=4, shift_size=2)
        >>> tuple(layer(np.zeros((1, 8, 12, 24), "float32")).shape)
        (1, 8, 12, 8)
    """

    def __init__(self, num_heads: int, window_size: int, shift_size: int = 0, **kwargs):
        super().__init__(**kwargs)
        if num_heads < 1 or window_size < 1 or not 0 <= shift_size < window_size:
            raise ValueError(f"WindowAttention needs num_heads >= 1, window_size >= 1 and "
                             f"0 <= shift_size < window_size; got num_heads={num_heads}, "
                             f"window_size={window_size}, shift_size={shift_size}")
        self.num_heads = int(num_heads)
        self.window_size = int(window_size)
        self.shift_size = int(shift_size)
        self.side_multiple = self.window_size
        # A token attends to tokens of its window, plain or shifted: at most
        # window_size - 1 tokens away on each side, as a (2w - 1)-wide 'same'
        # convolution sees (nuclib.graph: the tiled inferencer's overlap).
        self.conv_footprint = ("Conv2D", 2 * self.window_size - 1, 1, "same")
        self._index = _relative_position_index(self.window_size).reshape(-1)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None or channels % (3 * self.num_heads):
            raise ValueError(f"WindowAttention input has {channels} channels; expected "
                             f"3 * num_heads * head_dim (query, key, value) with "
                             f"num_heads={self.num_heads}")
        self.relative_position_bias = self.add_weight(
            name="relative_position_bias", shape=((2 * self.window_size - 1) ** 2,
                                                  self.num_heads),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] // 3)

    def _region_mask(self, height, width, dtype):
        """``(windows, L, L)``: 0 between tokens of one region of the rolled image, else -100."""
        w, s = self.window_size, self.shift_size

        def regions(size):
            # Rows (or columns) [0, size - w), [size - w, size - s), [size - s, size).
            index = ops.arange(size)
            return (ops.cast(index >= size - w, "int32")
                    + ops.cast(index >= size - s, "int32"))

        region = regions(height)[:, None] * 3 + regions(width)[None, :]
        region = ops.reshape(region, (height // w, w, width // w, w))
        region = ops.reshape(ops.transpose(region, (0, 2, 1, 3)), (-1, w * w))
        different = ops.not_equal(region[:, :, None], region[:, None, :])
        return ops.where(different, ops.cast(-100.0, dtype), ops.cast(0.0, dtype))

    def call(self, qkv):
        w, s, heads = self.window_size, self.shift_size, self.num_heads
        shape = ops.shape(qkv)
        n, height, width = shape[0], shape[1], shape[2]
        channels = qkv.shape[-1] // 3
        head_dim = channels // heads
        tokens = w * w
        if s:
            qkv = ops.roll(qkv, shift=(-s, -s), axis=(1, 2))
        rows, cols = height // w, width // w
        x = ops.reshape(qkv, (n, rows, w, cols, w, 3, heads, head_dim))
        x = ops.transpose(x, (5, 0, 1, 3, 6, 2, 4, 7))  # 3, n, rows, cols, heads, w, w, d
        x = ops.reshape(x, (3, -1, heads, tokens, head_dim))
        q, k, v = x[0], x[1], x[2]
        attn = ops.matmul(q * ops.cast(head_dim ** -0.5, q.dtype),
                          ops.transpose(k, (0, 1, 3, 2)))  # windows, heads, L, L
        bias = ops.take(self.relative_position_bias, ops.convert_to_tensor(self._index), axis=0)
        bias = ops.transpose(ops.reshape(bias, (tokens, tokens, heads)), (2, 0, 1))
        attn = attn + ops.cast(bias, attn.dtype)[None]
        if s:
            mask = self._region_mask(height, width, attn.dtype)  # rows * cols, L, L
            attn = ops.reshape(attn, (n, rows * cols, heads, tokens, tokens))
            attn = ops.reshape(attn + mask[None, :, None], (-1, heads, tokens, tokens))
        out = ops.matmul(ops.softmax(attn, axis=-1), v)  # windows, heads, L, d
        out = ops.reshape(out, (n, rows, cols, heads, w, w, head_dim))
        out = ops.transpose(out, (0, 1, 4, 2, 5, 3, 6))  # n, rows, w, cols, w, heads, d
        out = ops.reshape(out, (n, height, width, channels))
        if s:
            out = ops.roll(out, shift=(s, s), axis=(1, 2))
        return out

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads,
                "window_size": self.window_size, "shift_size": self.shift_size}


@keras.saving.register_keras_serializable(package="nuclib")
class SpaceToDepth(keras.layers.Layer):
    """Patch merging's rearrangement: each ``b x b`` block of pixels becomes one pixel.

    ``(N, H, W, C)`` → ``(N, H/b, W/b, b*b*C)``; for ``b = 2`` the channel
    order is Swin's ``[x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2]]``
    (column offset major, row offset minor).

    Args:
        block_size: ``b``; H and W must be multiples of it.
        **kwargs: ``keras.layers.Layer`` arguments.

    Raises:
        ValueError: ``block_size < 1``.

    Example:
        >>> tuple(SpaceToDepth(2)(np.zeros((1, 4, 6, 3), "float32")).shape)
        (1, 2, 3, 12)
    """

    def __init__(self, block_size: int = 2, **kwargs):
        super().__init__(**kwargs)
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        self.block_size = int(block_size)
        self.spatial_stride = (self.block_size, self.block_size)
        self.conv_footprint = ("Conv2D", self.block_size, self.block_size, "valid")

    def compute_output_shape(self, input_shape):
        b = self.block_size
        n, h, w, c = input_shape
        return (n, None if h is None else h // b, None if w is None else w // b, c * b * b)

    def call(self, x):
        b = self.block_size
        shape = ops.shape(x)
        n, h, w, c = shape[0], shape[1], shape[2], x.shape[-1]
        x = ops.reshape(x, (n, h // b, b, w // b, b, c))
        x = ops.transpose(x, (0, 1, 3, 4, 2, 5))  # n, h/b, w/b, column offset, row offset, c
        return ops.reshape(x, (n, h // b, w // b, b * b * c))

    def get_config(self):
        return {**super().get_config(), "block_size": self.block_size}


@keras.saving.register_keras_serializable(package="nuclib")
class DepthToSpace(keras.layers.Layer):
    """Patch expanding's rearrangement: each pixel's channels become a ``b x b`` block.

    ``(N, H, W, b*b*C)`` → ``(N, b*H, b*W, C)``, channels ordered (row
    offset, column offset, channel) as in Swin-UNet's ``PatchExpand``.

    Args:
        block_size: ``b``; the input channels must be a multiple of ``b * b``.
        **kwargs: ``keras.layers.Layer`` arguments.

    Raises:
        ValueError: ``block_size < 1``.

    Example:
        >>> tuple(DepthToSpace(2)(np.zeros((1, 2, 3, 12), "float32")).shape)
        (1, 4, 6, 3)
    """

    def __init__(self, block_size: int = 2, **kwargs):
        super().__init__(**kwargs)
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        self.block_size = int(block_size)
        self.spatial_stride = (1 / self.block_size, 1 / self.block_size)
        self.conv_footprint = ("Conv2DTranspose", self.block_size, self.block_size, "valid")

    def compute_output_shape(self, input_shape):
        b = self.block_size
        n, h, w, c = input_shape
        return (n, None if h is None else h * b, None if w is None else w * b, c // (b * b))

    def call(self, x):
        b = self.block_size
        shape = ops.shape(x)
        n, h, w = shape[0], shape[1], shape[2]
        c = x.shape[-1] // (b * b)
        x = ops.reshape(x, (n, h, w, b, b, c))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))  # n, h, row offset, w, column offset, c
        return ops.reshape(x, (n, h * b, w * b, c))

    def get_config(self):
        return {**super().get_config(), "block_size": self.block_size}


def _norm(x, name: str):
    return layers.LayerNormalization(epsilon=1e-5, name=name)(x)


def swin_block(x, dim: int, *, num_heads: int, window_size: int, shift_size: int = 0,
               mlp_ratio: float = 4.0, dropout: float = 0.0, name: str):
    """One Swin transformer block: (shifted) window attention and an MLP, pre-normed, residual.

    ``x + proj(WindowAttention(qkv(norm1(x))))``, then
    ``x + fc2(gelu(fc1(norm2(x))))`` with ``mlp_ratio * dim`` hidden units.

    Args:
        x: ``(N, H, W, dim)`` tokens, H and W multiples of ``window_size``.
        dim: channels.
        num_heads: attention heads (``dim`` a multiple of it).
        window_size: attention window side.
        shift_size: window shift (``window_size // 2`` in every second block).
        mlp_ratio: hidden width of the MLP over ``dim``.
        dropout: dropout after the attention projection and the MLP; 0 adds none.
        name: prefix of the layer names.

    Returns:
        ``(N, H, W, dim)`` tensor.

    Example:
        >>> x = keras.Input((None, None, 8))
        >>> swin_block(x, 8, num_heads=2, window_size=4, name="m_block").shape[-1]
        8
    """
    y = _norm(x, f"{name}_norm1")
    y = layers.Dense(3 * dim, name=f"{name}_qkv")(y)
    y = WindowAttention(num_heads, window_size, shift_size, name=f"{name}_attn")(y)
    y = layers.Dense(dim, name=f"{name}_proj")(y)
    if dropout > 0:
        y = layers.Dropout(dropout, name=f"{name}_attn_drop")(y)
    x = layers.Add(name=f"{name}_add1")([x, y])
    y = _norm(x, f"{name}_norm2")
    y = layers.Dense(int(dim * mlp_ratio), name=f"{name}_fc1")(y)
    y = layers.Activation("gelu", name=f"{name}_gelu")(y)
    y = layers.Dense(dim, name=f"{name}_fc2")(y)
    if dropout > 0:
        y = layers.Dropout(dropout, name=f"{name}_mlp_drop")(y)
    return layers.Add(name=f"{name}_add2")([x, y])


def _stage(x, dim, depth, *, num_heads, window_size, mlp_ratio, dropout, name):
    for i in range(depth):
        shift = window_size // 2 if i % 2 else 0
        x = swin_block(x, dim, num_heads=num_heads, window_size=window_size, shift_size=shift,
                       mlp_ratio=mlp_ratio, dropout=dropout, name=f"{name}_block{i}")
    return x


def swin_unet_base(x, *, patch_size: int = 4, embed_dim: int = 96, depths=(2, 2, 2, 2),
                   num_heads=(3, 6, 12, 24), window_size: int = 8, mlp_ratio: float = 4.0,
                   dropout: float = 0.0, name: str = "swin_unet"):
    """Tensor-to-tensor Swin-UNet body: returns full-resolution features of ``embed_dim`` channels.

    1. Patch embedding: a ``patch_size`` x ``patch_size`` convolution with
       that stride to ``embed_dim`` channels, then a layer norm.
    2. Encoder stage ``i`` (``i < len(depths) - 1``): its input is kept as
       the skip, ``depths[i]`` Swin blocks (``embed_dim * 2**i`` channels,
       ``num_heads[i]`` heads, every second one shifted by half a window),
       then patch merging (``SpaceToDepth(2)``, layer norm, a linear layer
       to twice the channels).
    3. Bottleneck: the last stage's blocks and a layer norm.
    4. Decoder stage ``i`` (from ``len(depths) - 2`` to 0): patch expanding
       (a linear layer to twice the channels, ``DepthToSpace(2)``, layer
       norm: half the channels at twice the size), concatenation with the
       skip, a linear layer back to ``embed_dim * 2**i`` channels and
       ``depths[i]`` Swin blocks.
    5. A layer norm and the final patch expanding by ``patch_size`` (linear
       to ``patch_size**2 * embed_dim``, ``DepthToSpace``, layer norm).

    Args:
        x: ``(N, H, W, C)`` tensor, H and W multiples of
            ``patch_size * 2**(len(depths) - 1) * window_size``.
        patch_size, embed_dim, depths, num_heads, window_size, mlp_ratio,
            dropout: as in ``swin_unet``.
        name: prefix of the layer names.

    Returns:
        ``(N, H, W, embed_dim)`` tensor.

    Example:
        >>> x = keras.Input((None, None, 1))
        >>> swin_unet_base(x, patch_size=2, embed_dim=8, depths=(2, 2), num_heads=(1, 2),
        ...                window_size=4, name="m").shape[-1]
        8
    """
    stages = len(depths)
    common = dict(window_size=window_size, mlp_ratio=mlp_ratio, dropout=dropout)
    # A random bias, not zeros: with zeros, a patch of exact zeros (the black
    # background of fluorescence images) stays an all-zero vector through every
    # block, each layer norm then sees zero variance and multiplies its gradient
    # by 1 / sqrt(epsilon); some twenty of them overflow to inf on the first step.
    x = layers.Conv2D(embed_dim, patch_size, strides=patch_size,
                      bias_initializer=keras.initializers.RandomNormal(stddev=0.02),
                      name=f"{name}_patch_embed")(x)
    x = _norm(x, f"{name}_patch_embed_norm")
    skips = []
    for i in range(stages - 1):
        dim = embed_dim * 2**i
        skips.append(x)
        x = _stage(x, dim, depths[i], num_heads=num_heads[i], name=f"{name}_enc{i}", **common)
        x = SpaceToDepth(2, name=f"{name}_enc{i}_merge")(x)
        x = _norm(x, f"{name}_enc{i}_merge_norm")
        x = layers.Dense(2 * dim, use_bias=False, name=f"{name}_enc{i}_merge_reduce")(x)
    last = stages - 1
    x = _stage(x, embed_dim * 2**last, depths[last], num_heads=num_heads[last],
               name=f"{name}_bottleneck", **common)
    x = _norm(x, f"{name}_bottleneck_norm")
    for i in reversed(range(stages - 1)):
        dim = embed_dim * 2**i
        x = layers.Dense(4 * dim, use_bias=False, name=f"{name}_dec{i}_expand")(x)
        x = DepthToSpace(2, name=f"{name}_dec{i}_expand_rearrange")(x)
        x = _norm(x, f"{name}_dec{i}_expand_norm")
        x = layers.Concatenate(name=f"{name}_dec{i}_concat")([x, skips[i]])
        x = layers.Dense(dim, name=f"{name}_dec{i}_reduce")(x)
        x = _stage(x, dim, depths[i], num_heads=num_heads[i], name=f"{name}_dec{i}", **common)
    x = _norm(x, f"{name}_dec_norm")
    x = layers.Dense(patch_size**2 * embed_dim, use_bias=False,
                     name=f"{name}_final_expand")(x)
    x = DepthToSpace(patch_size, name=f"{name}_final_expand_rearrange")(x)
    return _norm(x, f"{name}_final_expand_norm")


def side_multiple(*, patch_size: int = 4, depths=(2, 2, 2, 2), window_size: int = 8) -> int:
    """The multiple of a Swin-UNet's input sides: ``patch_size * 2**(stages - 1) * window_size``.

    Every stage's token grid must tile into whole windows, the coarsest
    being ``2**(stages - 1)`` times coarser than the patch grid.

    Args:
        patch_size, depths, window_size: as in ``swin_unet``.

    Returns:
        The side multiple in pixels (256 for the defaults).

    Example:
        >>> side_multiple(patch_size=2, depths=(2, 2), window_size=4)
        16
    """
    return int(patch_size) * 2 ** (len(depths) - 1) * int(window_size)


def swin_unet(*, input_shape=(None, None, 1), head: str = "three_class", patch_size: int = 4,
              embed_dim: int = 96, depths=(2, 2, 2, 2), num_heads=(3, 6, 12, 24),
              window_size: int = 8, mlp_ratio: float = 4.0, dropout: float = 0.0,
              logits: bool = False, n_rays: int = 32, name: str = "swin_unet") -> keras.Model:
    """Build a Swin-UNet (see ``swin_unet_base``): Swin transformer encoder and decoder with skips.

    The defaults are the paper's Swin-T sized network (27 M parameters)
    except the window: 8 instead of 7, so that the side multiple is a power
    of two. Inputs must have sides that are multiples of
    ``side_multiple(...) = patch_size * 2**(len(depths) - 1) * window_size``
    (256 for the defaults; ``nuclib.models.required_multiple`` finds it, the
    tiled inferencer and ``nuclib.models.predict`` pad for you), so that
    tiles, whose origins are multiples of it, see the windows the whole
    image sees. Every attention block at stage ``l`` widens the receptive
    field by up to ``(window_size - 1) * patch_size * 2**l`` pixels on each
    side (``receptive_field_radius`` adds them up from the graph: 1,263 px
    for the defaults, 51 px for ``nuclib.models.SMALL_ARGS["swin_unet"]``).
    With that overlap, ``TiledInferencer(blend="crop")`` reproduces the whole
    image's prediction (of the image padded the same way) to float round-off:
    a token's window, plain or shifted, is the same in a tile as in the whole
    image unless it lies within ``window_size - 1`` tokens of the tile's
    edge, which the overlap keeps out of the tile's core (``tests/test_tiling.py``
    checks 1e-4 at several tiles). Tiles must then be at least
    ``2 * radius + side multiple`` (2,782 px for the defaults); with a
    smaller explicit ``overlap=`` tiles differ from the whole image near
    their seams (use ``blend="linear"`` to hide them).
    Transformers like larger training sets and longer schedules than the
    U-Nets; there are no pretrained weights.

    Args:
        input_shape: ``(H, W, C)``, channels-last, C in (1, 3); H and W may be None.
        head: one of ``nuclib.heads.HEADS``.
        patch_size: side of the embedded patches (the stride of the first layer).
        embed_dim: channels of the first stage; doubled at every stage.
        depths: Swin blocks per stage, finest first; the last stage is the
            bottleneck, the others appear once in the encoder and once in
            the decoder.
        num_heads: attention heads per stage (``embed_dim * 2**i`` must be a multiple).
        window_size: attention window side in tokens.
        mlp_ratio: MLP hidden width over the channels.
        dropout: dropout after every attention projection and MLP.
        logits: return pre-activation logits instead of probabilities.
        n_rays: rays of a ``head=\"star\"`` (>= 3; ignored by other heads).
        name: model name, also the prefix of every layer name.

    Returns:
        A ``keras.Model`` mapping ``(N, H, W, C)`` to ``(N, H, W, head channels)``.

    Raises:
        ValueError: bad ``input_shape``, ``head``, ``patch_size``, ``embed_dim``,
            ``depths``, ``num_heads``, ``window_size``, ``mlp_ratio`` or ``dropout``.

    Example:
        >>> model = swin_unet(input_shape=(None, None, 1), patch_size=2, embed_dim=8,
        ...                   depths=(2, 2), num_heads=(1, 2), window_size=4)
        >>> model.output_shape
        (None, None, None, 3)
    """
    for value, what in ((patch_size, "patch_size"), (embed_dim, "embed_dim"),
                        (window_size, "window_size")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{what} must be a whole number >= 1, got {value!r}")
    depths, num_heads = tuple(depths), tuple(num_heads)
    if not depths or not all(isinstance(d, int) and d >= 1 for d in depths):
        raise ValueError(f"depths {depths} must be one or more block counts >= 1, finest "
                         "stage first, e.g. (2, 2, 2, 2)")
    if len(num_heads) != len(depths):
        raise ValueError(f"num_heads {num_heads} must have one head count per stage, as "
                         f"depths {depths} has ({len(depths)})")
    for i, heads in enumerate(num_heads):
        dim = embed_dim * 2**i
        if not isinstance(heads, int) or heads < 1 or dim % heads:
            raise ValueError(f"num_heads[{i}] = {heads!r} must divide stage {i}'s "
                             f"{dim} channels (embed_dim * 2**{i})")
    if not mlp_ratio > 0:
        raise ValueError(f"mlp_ratio must be > 0, got {mlp_ratio!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    blocks.check_head(head, n_rays)
    multiple = side_multiple(patch_size=patch_size, depths=depths, window_size=window_size)
    shape = blocks.check_input_shape(input_shape, divisor=multiple)
    inputs = keras.Input(shape, name=f"{name}_input")
    x = swin_unet_base(inputs, patch_size=patch_size, embed_dim=embed_dim, depths=depths,
                       num_heads=num_heads, window_size=window_size, mlp_ratio=mlp_ratio,
                       dropout=dropout, name=name)
    outputs = blocks.output_head(x, head, logits=logits, n_rays=n_rays, name=f"{name}_head")
    return keras.Model(inputs, outputs, name=name)
