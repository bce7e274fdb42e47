"""Benchmark of nuclib's model factories: size, FLOPs and CPU inference speed per tile.

For each factory at the sizes a user would train, prints parameters, GFLOPs
per tile (convolutions counted from the layer graph, one multiply-add = 2
FLOPs; batch norm, activations and resizes are left out), CPU milliseconds
per tile at batch 8 (``model.predict_on_batch``, warm-up then median), the
achieved GFLOP/s, and that as a fraction of the machine's dense 3x3-conv
GFLOP/s measured in the same run (``_common.conv3x3_gflops``: 64 -> 64
channels on 128x128 tiles, batch 8; wider layers can exceed it).

Usage:
    python benchmarks/models.py            # 256x256x1 tiles, 5 repeats
    python benchmarks/models.py --quick    # 64x64 tiles, 1 repeat (seconds)
"""

from __future__ import annotations

import argparse
import os

from _common import conv3x3_gflops, matmul_gflops, median_seconds, print_table

# (label, factory, arguments): unet as trained for the zoo, the others near their defaults.
CONFIGS = [
    ("unet", "unet", dict(depth=4, filters=16)),
    ("unet", "unet", dict(depth=4, filters=32)),
    ("attention_unet", "attention_unet", dict(depth=4, filters=16)),
    ("multires_unet", "multires_unet", dict(depth=4, filters=32)),
    ("mobilenet_unet", "mobilenet_unet", dict(alpha=1.0)),
    ("mobilenet_unet", "mobilenet_unet", dict(alpha=0.35, decoder_filters=(128, 64, 32, 16))),
]


def conv_flops(model) -> int:
    """FLOPs of one forward pass of ``model``'s convolutions for one image.

    The model must have a static input shape (the output shape of every
    layer is read from the graph). Counts Conv2D (with groups),
    DepthwiseConv2D, SeparableConv2D and Conv2DTranspose; a multiply-add is 2
    FLOPs; biases, normalization and activations are ignored.

    Args:
        model: a built functional ``keras.Model`` with a static input shape.

    Returns:
        The FLOP count per image.

    Raises:
        ValueError: the model's spatial input size is not static.

    Example:
        >>> from nuclib.models import unet
        >>> conv_flops(unet(input_shape=(32, 32, 1), depth=1, filters=4))
        1785856
    """
    import keras

    if None in model.input_shape[1:3]:
        raise ValueError(f"model input shape {model.input_shape} is not static; build the "
                         "model with input_shape=(H, W, C) to count FLOPs")
    total = 0
    for layer in model.layers:
        if not isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
                                  keras.layers.SeparableConv2D, keras.layers.Conv2DTranspose)):
            continue
        _, h_in, w_in, c_in = layer.input.shape
        _, h_out, w_out, c_out = layer.output.shape
        kh, kw = layer.kernel_size
        if isinstance(layer, keras.layers.Conv2DTranspose):
            # every input pixel scatters a kh x kw x c_out patch
            total += 2 * h_in * w_in * kh * kw * c_in * c_out
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            total += 2 * h_out * w_out * kh * kw * c_in * layer.depth_multiplier
        elif isinstance(layer, keras.layers.SeparableConv2D):
            mid = c_in * layer.depth_multiplier
            total += 2 * h_out * w_out * (kh * kw * mid + mid * c_out)
        else:
            total += 2 * h_out * w_out * kh * kw * (c_in // layer.groups) * c_out
    return int(total)


def describe(args: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in args.items())


def run(*, size: int, batch: int, repeats: int, progress: bool = True) -> list[dict]:
    """Measure every entry of ``CONFIGS``; returns one table row per model."""
    import numpy as np
    import tensorflow as tf
    from tqdm import tqdm

    from nuclib import models

    tf.get_logger().setLevel("ERROR")  # one predict function per model is expected retracing

    def baseline():
        return conv3x3_gflops(size=min(size, 128), repeats=repeats)

    conv_before = baseline()
    x = np.random.default_rng(0).random((batch, size, size, 1), dtype=np.float32)
    rows = []
    for label, factory, args in tqdm(CONFIGS, desc="models", disable=not progress):
        model = models.FACTORIES[factory](input_shape=(size, size, 1), head="three_class",
                                          **args)
        flops = conv_flops(model)
        seconds = median_seconds(lambda m=model: m.predict_on_batch(x), warmup=2,
                                 repeats=repeats)
        rows.append({
            "model": label,
            "arguments": describe(args),
            "parameters": model.count_params(),
            "GFLOP/tile": flops / 1e9,
            "ms/tile": seconds / batch * 1e3,
            "GFLOP/s": flops * batch / seconds / 1e9,
        })
    # Measured before and after the models: the first TensorFlow work of a
    # process runs slow, and the higher rate is the fairer reference.
    conv_rate = max(conv_before, baseline())
    matmul_rate = matmul_gflops(n=1024 if size >= 128 else 256, repeats=repeats)
    for row in rows:
        row["fraction of 3x3 conv"] = row["GFLOP/s"] / conv_rate
    print(f"Baselines: dense 3x3 conv {conv_rate:.1f} GFLOP/s (64 -> 64 channels), matmul "
          f"{matmul_rate:.1f} GFLOP/s, {os.cpu_count()} logical CPUs\n")
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="64x64 tiles and 1 repeat: a seconds-long smoke run")
    parser.add_argument("--size", type=int, default=256, help="tile side (default 256)")
    parser.add_argument("--batch", type=int, default=8, help="tiles per call (default 8)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls (default 5)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    opts = parser.parse_args(argv)
    size, repeats = (64, 1) if opts.quick else (opts.size, opts.repeats)
    rows = run(size=size, batch=opts.batch, repeats=repeats, progress=not opts.no_progress)
    print(f"Model factories at {size}x{size}x1, three-class head, batch {opts.batch}, "
          f"float32 CPU inference (median of {repeats}):\n")
    print_table(rows)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
