"""Benchmark tiled inference and block-wise segmentation.

Measures, on the zoo's U-Net (depth 4, 16 filters, three-class head):

* megapixels per second of ``TiledInferencer`` (blend="crop", exact overlap)
  for 2048x2048 and 8192x8192 images, against whole-image prediction of the
  2048x2048 image (the baseline; 8192x8192 does not fit in one pass), for
  several tile sizes and tile batch sizes (1 vs the default 8);
* the achieved convolution GFLOP/s (FLOPs actually executed, including the
  tiles' overlap) as a fraction of the machine's convolution GFLOP/s,
  measured in the same process on plain Conv2D layers;
* the peak memory (tracemalloc, anonymous RSS and total RSS, sampled) of
  ``segment_large`` on a 16384x16384 uint8 memmap with a cheap threshold +
  connected-components ``segment_fn``, writing into a uint32 memmap
  (target: under 3 GB).

Run ``python benchmarks/tiling.py`` (about 15 minutes on 2 cores; the 256-px
tiles on 2048x2048 take most of it: with a ~107 px overlap per side they keep
only 32x32 px of each tile) or ``--quick`` for a seconds-long smoke run on a small
model and small images. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# --------------------------------------------------------------------------- timing & FLOPs
def best_time(fn, repeats: int = 1, warmup: int = 0) -> float:
    """Smallest wall time (seconds) of ``repeats`` calls of ``fn`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def conv_gflops(quick: bool) -> tuple[float, str]:
    """The machine's convolution throughput: best GFLOP/s over a few 3x3 Conv2D shapes."""
    import keras

    shapes = [(4, 128, 128, 32)] if quick else [(8, 256, 256, 16), (8, 128, 128, 64),
                                                (4, 64, 64, 256)]
    best, label = 0.0, ""
    for n, h, w, c in shapes:
        inputs = keras.Input((h, w, c))
        model = keras.Model(inputs, keras.layers.Conv2D(c, 3, padding="same")(inputs))
        x = np.random.default_rng(0).random((n, h, w, c), dtype=np.float32)
        seconds = best_time(lambda: model.predict_on_batch(x), repeats=3, warmup=1)
        gflops = 2 * 9 * c * c * n * h * w / seconds / 1e9
        if gflops > best:
            best, label = gflops, f"Conv2D 3x3 {c}->{c} on {n}x{h}x{w}"
    return best, label


def flops_per_pixel(model) -> float:
    """Multiply-adds x 2 per input pixel of a fully convolutional Keras model."""
    jumps: dict[int, float] = {}
    total = 0.0
    for op in model.operations:
        inbound = [jumps[id(t._keras_history[0])] for node in op._inbound_nodes
                   for t in node.input_tensors if id(t._keras_history[0]) in jumps]
        jump = max(inbound) if inbound else 1.0
        kind = type(op).__name__
        kernel = getattr(op, "kernel", None)
        if kind in ("Conv2D", "SeparableConv2D", "DepthwiseConv2D"):
            jump *= op.strides[0]
        if kernel is not None and kind in ("Conv2D", "Conv2DTranspose", "Dense"):
            # Conv2D: per output pixel at the new jump; transpose: per input pixel.
            per = 2 * math.prod(kernel.shape)
            total += per / jump**2
        if kind == "Conv2DTranspose":
            jump /= op.strides[0]
        elif kind in ("MaxPooling2D", "AveragePooling2D"):
            jump *= op.strides[0]
        elif kind == "UpSampling2D":
            jump /= op.size[0]
        jumps[id(op)] = jump
    return total


# --------------------------------------------------------------------------- tiled inference
def tiled_rows(quick: bool) -> list[dict]:
    from nuclib.models import unet
    from nuclib.postprocess.tiling import TiledInferencer

    if quick:
        model = unet(depth=2, filters=8, head="three_class")
        sizes, whole_size = (256, 384), 256
        configs = [(64, 8), (64, 1), (128, 2)]
        skip_large = set()
    else:
        model = unet(depth=4, filters=16, head="three_class")
        sizes, whole_size = (2048, 8192), 2048
        configs = [(256, 8), (256, 1), (512, 4), (1024, 1), (1024, 2)]
        # 15-60 min each on 8192x8192; the 2048x2048 rows show their rate.
        skip_large = {(256, 8), (256, 1), (512, 4)}
    per_pixel = flops_per_pixel(model)
    rows = []
    rng = np.random.default_rng(0)

    image = rng.random((whole_size, whole_size, 1), dtype=np.float32)
    seconds = best_time(lambda: model.predict_on_batch(image[None]), repeats=1, warmup=1)
    rows.append(dict(size=whole_size, method="whole image", tile="-", batch=1, seconds=seconds,
                     executed=whole_size**2))
    for size in sizes:
        image = rng.random((size, size, 1), dtype=np.float32)
        for tile, batch in configs:
            if size > whole_size and (tile, batch) in skip_large:
                continue
            inferencer = TiledInferencer(model, tile_size=tile, batch_size=batch, progress=False)
            (tile_h, tile_w), origins = inferencer.tile_origins((size, size))
            model.predict_on_batch(np.zeros((batch, tile, tile, 1), np.float32))  # trace once
            seconds = best_time(lambda: inferencer.predict(image))
            rows.append(dict(size=size, method="tiled (crop)", tile=tile, batch=batch,
                             seconds=seconds, executed=len(origins) * tile_h * tile_w,
                             overlap=inferencer.overlap))
    baseline = rows[0]["seconds"] / whole_size**2
    for row in rows:
        row["mpx_s"] = row["size"] ** 2 / row["seconds"] / 1e6
        row["vs_whole"] = (row["size"] ** 2 / row["seconds"]) * baseline
        row["gflops"] = row["executed"] * per_pixel / row["seconds"] / 1e9
        row["useful"] = row["size"] ** 2 / row["executed"]
    return rows, per_pixel


# --------------------------------------------------------------------------- segment_large memory
def _memory_sampler(stop: threading.Event, peaks: dict) -> None:
    while not stop.is_set():
        status = Path("/proc/self/status").read_text().splitlines()
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon"):
                peaks[key] = max(peaks.get(key, 0), int(value.split()[0]) * 1024)
        stop.wait(0.05)


def _segment_large_child(side: int, block_size: int, queue) -> None:
    from scipy import ndimage

    from nuclib.postprocess.tiling import segment_large

    with tempfile.TemporaryDirectory() as folder:
        image = np.lib.format.open_memmap(Path(folder) / "image.npy", mode="w+", dtype=np.uint8,
                                          shape=(side, side))
        yy, xx = np.mgrid[:64, :64]
        pattern = (((yy - 32) ** 2 + (xx - 32) ** 2) < 20**2).astype(np.uint8) * 200
        row = np.tile(pattern, (1, side // 64))
        for y in range(0, side, 64):  # disks on a 64-px grid, written strip by strip
            image[y:y + 64] = row
        image.flush()
        del image
        image = np.load(Path(folder) / "image.npy", mmap_mode="r")
        out = np.lib.format.open_memmap(Path(folder) / "labels.npy", mode="w+",
                                        dtype=np.uint32, shape=(side, side))

        def segment_fn(block):
            return ndimage.label(block > 100)[0]

        peaks: dict = {}
        stop = threading.Event()
        sampler = threading.Thread(target=_memory_sampler, args=(stop, peaks), daemon=True)
        sampler.start()
        tracemalloc.start()
        start = time.perf_counter()
        segment_large(image, segment_fn, block_size=block_size, min_overlap=128, out=out,
                      progress=False)
        seconds = time.perf_counter() - start
        traced = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        stop.set()
        sampler.join()
        n_objects = int(out.max())
        queue.put(dict(side=side, block=block_size, seconds=seconds, traced=traced,
                       anon=peaks.get("RssAnon", 0), rss=peaks.get("VmRSS", 0),
                       objects=n_objects, expected=(side // 64) ** 2))


def segment_large_memory(quick: bool) -> dict:
    """Run segment_large in a fresh process so its peaks are not mixed with TensorFlow's."""
    side, block = (2048, 512) if quick else (16384, 2048)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_segment_large_child, args=(side, block, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


# --------------------------------------------------------------------------- report
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds")
    args = parser.parse_args()

    memory = segment_large_memory(args.quick)  # first: before TensorFlow loads here
    peak, conv_label = conv_gflops(args.quick)
    rows, per_pixel = tiled_rows(args.quick)

    model_name = "unet(depth=2, filters=8)" if args.quick else "unet(depth=4, filters=16)"
    print(f"\n### Tiled inference, {model_name}, three-class head, CPU"
          f" ({os.cpu_count()} cores)\n")
    print(f"Machine convolution throughput: {peak:.1f} GFLOP/s ({conv_label}); model: "
          f"{per_pixel / 1e3:.1f} kFLOP per pixel; overlap (receptive-field radius): "
          f"{rows[1].get('overlap')} px.\n")
    print("| image | method | tile | batch | seconds | MP/s | vs whole image | "
          "useful px / executed px | GFLOP/s executed | fraction of conv GFLOP/s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['size']}x{r['size']} | {r['method']} | {r['tile']} | {r['batch']} | "
              f"{r['seconds']:.2f} | {r['mpx_s']:.3f} | {r['vs_whole']:.2f}x | "
              f"{r['useful']:.2f} | {r['gflops']:.1f} | {r['gflops'] / peak:.0%} |")

    gb = 1024**3
    side = memory["side"]
    print(f"\n### segment_large on a {side}x{side} uint8 memmap "
          f"(block {memory['block']}, min_overlap 128, threshold + ndimage.label)\n")
    print("| objects found / drawn | seconds | MP/s | tracemalloc peak | anonymous RSS peak | "
          "total RSS peak (incl. mapped file pages) | image + labels on disk |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {memory['objects']} / {memory['expected']} | {memory['seconds']:.1f} | "
          f"{side**2 / memory['seconds'] / 1e6:.1f} | {memory['traced'] / gb:.2f} GB | "
          f"{memory['anon'] / gb:.2f} GB | {memory['rss'] / gb:.2f} GB | "
          f"{side**2 * 5 / gb:.2f} GB |")


if __name__ == "__main__":
    main()
