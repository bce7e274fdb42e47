"""Grow a trained model into a wider one that computes the same function (Net2WiderNet).

Training a wide U-Net from scratch costs several times the compute of the
narrow one; starting it from a trained narrow model (Chen, Goodfellow and
Shlens 2016, "Net2Net") keeps everything the narrow model learned and lets
the extra filters learn what it could not.
"""

from __future__ import annotations

import numpy as np

# Layers whose weights ``widen`` knows how to grow, and which kernel axes are
# (input, output) channels.
_KERNEL_AXES = {"Conv2D": (2, 3), "Conv2DTranspose": (3, 2)}
_PER_CHANNEL = {"BatchNormalization"}


def _factor(new: int, old: int, what: str) -> int:
    if new % old:
        raise ValueError(f"{what}: {new} channels is not a multiple of {old}; widen needs "
                         "the wide model's widths to be whole multiples of the narrow one's")
    return new // old


def _grow_kernel(old: np.ndarray, new_shape: tuple, axes: tuple[int, int], rng,
                 what: str) -> np.ndarray:
    """Copy every output channel ``k`` times; split each input channel over its copies."""
    in_axis, out_axis = axes
    out_k = _factor(new_shape[out_axis], old.shape[out_axis], what)
    in_k = _factor(new_shape[in_axis], old.shape[in_axis], what)
    grown = np.repeat(old, out_k, axis=out_axis)
    grown = np.repeat(grown, in_k, axis=in_axis)
    if in_k > 1:
        # Random shares summing to 1 over the k copies of an input channel:
        # the sum (the function) is unchanged, and the copies get different
        # outgoing weights, hence different gradients (no symmetry to stay in).
        shares = rng.uniform(0.25, 0.75, size=grown.shape)
        view = np.moveaxis(shares, in_axis, 0)
        view = view.reshape(view.shape[0] // in_k, in_k, *view.shape[1:])
        view = view / view.sum(axis=1, keepdims=True)
        shares = np.moveaxis(view.reshape(-1, *view.shape[2:]), 0, in_axis)
        grown = grown * shares
    return grown.astype(old.dtype)


def widen(narrow, wide, *, seed: int = 0, check: bool = True):
    """Copy a trained model's function into a wider model of the same architecture.

    ``wide`` must come from the same factory with the same arguments except
    that every internal width is a whole multiple of ``narrow``'s (for a
    U-Net: ``filters=32`` instead of ``16``). Each filter of ``narrow`` is
    copied into that many filters of ``wide``, and the next layer's weights
    on the copies are split at random so that they sum to the original
    weight: ``wide`` computes what ``narrow`` computes, and fine-tuning
    starts where ``narrow`` left off.

    Supports Conv2D, Conv2DTranspose, BatchNormalization and layers without
    weights, wherever channels only pass through element-wise operations and
    concatenations (the classic U-Net, the Attention U-Net). MultiResUNet's
    rounded block widths are not whole multiples of each other, and the
    MobileNetV2 encoder has fixed widths: neither can be widened.

    Args:
        narrow: the trained ``keras.Model``.
        wide: a freshly built wider ``keras.Model``; its weights are overwritten.
        seed: seed of the random weight split.
        check: run both models on a random image and raise if they disagree.

    Returns:
        ``wide``, with its new weights.

    Raises:
        ValueError: the models' layers do not correspond, a layer type cannot
            be widened, widths are not whole multiples, or (with ``check``) the
            widened model computes something else.

    Example:
        >>> from nuclib.models import unet, widen
        >>> narrow = unet(depth=2, filters=4)
        >>> wide = widen(narrow, unet(depth=2, filters=8))
        >>> wide.count_params() > narrow.count_params()
        True
    """
    rng = np.random.default_rng(seed)
    # Layers correspond by position (names carry the model name, which may differ).
    pairs = list(zip(narrow.layers, wide.layers))
    if len(narrow.layers) != len(wide.layers) or any(
            type(a) is not type(b) for a, b in pairs):
        raise ValueError(f"widen: the models have different layers ({len(narrow.layers)} vs "
                         f"{len(wide.layers)}, or of other types); build the wide model with "
                         "the same factory and arguments except its widths")
    for old_layer, layer in pairs:
        old = [np.asarray(w) for w in old_layer.get_weights()]
        if not old:
            continue
        kind = type(layer).__name__
        new_shapes = [tuple(w.shape) for w in layer.weights]
        what = f"widen: layer {layer.name!r} ({kind})"
        if kind in _KERNEL_AXES:
            grown = [_grow_kernel(old[0], new_shapes[0], _KERNEL_AXES[kind], rng, what)]
            grown += [np.repeat(b, _factor(s[0], b.shape[0], what)) for b, s in
                      zip(old[1:], new_shapes[1:])]
        elif kind in _PER_CHANNEL:
            grown = [np.repeat(w, _factor(s[0], w.shape[0], what)) for w, s in
                     zip(old, new_shapes)]
        else:
            raise ValueError(f"{what} cannot be widened; supported: "
                             f"{sorted(_KERNEL_AXES) + sorted(_PER_CHANNEL)}")
        layer.set_weights(grown)
    if check:
        _check_same_function(narrow, wide, rng)
    return wide


def _check_same_function(narrow, wide, rng) -> None:
    from nuclib.models.utils import required_multiple

    side = max(32, required_multiple(narrow))
    x = rng.uniform(0, 1, size=(1, side, side, narrow.input_shape[-1])).astype("float32")
    a = np.asarray(narrow(x, training=False), np.float32)
    b = np.asarray(wide(x, training=False), np.float32)
    # Mixed-precision layers compute in bfloat16 (3 significant digits).
    low_precision = any("16" in str(layer.dtype_policy.compute_dtype)
                        for model in (narrow, wide) for layer in model.layers)
    tol = 5e-2 if low_precision else 1e-4
    diff = float(np.max(np.abs(a - b)))
    if diff > tol:
        raise ValueError(f"widen: the widened model's output differs from the original by "
                         f"{diff:.3g} (tolerance {tol}); this architecture does not widen "
                         "channel by channel")
