"""Benchmark of the inference engines on the dsb-3class network: Keras, OpenVINO, ONNX Runtime.

Times the bundled ``dsb-3class`` U-Net alone (no tiling, no
post-processing) on one 1024x1024x1 tile, the zoo's default tile size,
with each engine of ``nuclib.engines``:

* ``keras``: ``model.predict_on_batch`` (TensorFlow, oneDNN), the baseline;
* ``openvino f32``: ``OpenVINOEngine`` as the Segmenter uses it, compiled
  once with dynamic batch, height and width;
* ``openvino f32 static``: the same network reshaped to the tile's shape and
  compiled for it (what a per-shape cache would hold), to decide between the two;
* ``openvino bf16``: ``INFERENCE_PRECISION_HINT=bf16``, only on CPUs with
  AVX512-BF16 or AMX (``/proc/cpuinfo`` flags ``avx512_bf16`` / ``amx_bf16``);
  elsewhere OpenVINO would run bf16 emulated or fall back to f32, so the row
  is reported as skipped;
* ``openvino int8``: the network quantized to int8 by NNCF's post-training
  quantization, calibrated on 20 DSB2018 train images at the model's scale
  (needs ``pip install nncf`` and ``../shared/data/dsb2018``);
* ``onnxruntime``: ``ONNXRuntimeEngine`` (tf2onnx conversion, CPU provider).

The engines are timed interleaved in one process (one call of each per
round, median over rounds) so that other load on the machine hits all of
them alike. Each is called once untimed first (conversion, compilation and
first-shape set-up, reported as "set-up s"). Ratios are Keras' time divided
by the engine's (above 1: faster than Keras); "max Δp" is the largest
probability difference to Keras on the tile. "GFLOP/s" is the network's
convolution FLOPs on the tile (``models.conv_flops``) per second, and
"of conv peak" divides it by the same engine's rate on four dense 3x3
convolutions, 64 -> 64 channels on a batch of eight 128x128 inputs (the
machine's conv peak as that engine reaches it, ``conv_peaks``). The input
is the bright-field sample image (``examples/data/brightfield.png``,
1024x1024) normalized as the Segmenter does.

``--batches`` times instead the default engine at batch 1, 2, 4 and 8 of
256x256 tiles: whether ``segment_many`` would gain by stacking small images
into one network call.

Usage:
    python benchmarks/engines.py             # 1024x1024 tile, 5 rounds
    python benchmarks/engines.py --quick     # 256x256 tile, 1 round (seconds)
    python benchmarks/engines.py --batches   # batch sizes of the default engine
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
from _common import print_table

REPO = Path(__file__).resolve().parents[1]


def cpu_flags() -> set[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def openvino_variant(model, precision, prepare):
    """An ``OpenVINOEngine`` whose read network goes through ``prepare(ov_model)`` before
    compilation (reshaped to a static shape, or quantized)."""
    from nuclib.engines import OpenVINOEngine

    class Variant(OpenVINOEngine):
        def _compile(self, xml):
            import openvino as ov

            core = ov.Core()
            ov_model = prepare(core.read_model(xml.read_bytes(), ov.Tensor(
                np.fromfile(xml.with_suffix(".bin"), np.uint8))))
            return core.compile_model(ov_model, self.device,
                                      {"INFERENCE_PRECISION_HINT": self.precision})

    return Variant(model, precision=precision)


def reshaped_to(shape):
    """A ``prepare`` step for ``openvino_variant``: the network with a static input shape."""
    def prepare(ov_model):
        ov_model.reshape(list(shape))
        return ov_model

    return prepare


def calibration_tiles(seg, count: int = 20) -> list[np.ndarray]:
    """``count`` DSB2018 train images as the network sees them (normalized, zoomed)."""
    from nuclib.data.io import read_image
    from nuclib.data.scale import rescale_image, scale_for_diameter

    dsb = Path(os.environ.get("NUCLIB_DSB2018", REPO.parent / "shared" / "data" / "dsb2018"))
    files = sorted((dsb / "train" / "images").glob("*.png"))
    tiles = []
    for path in files[:: max(1, len(files) // count)][:count]:
        image = read_image(path)
        factor = scale_for_diameter(seg.estimate_diameter(image, progress=False),
                                    seg.config["diameter"])
        x = rescale_image(seg.preprocess(image), factor)
        h, w = (np.array(x.shape[:2]) // 16) * 16
        tiles.append(np.ascontiguousarray(x[None, :h, :w], dtype=np.float32))
    return tiles


def int8(seg):
    """The OpenVINO engine on the network quantized to int8 by NNCF (20 calibration images)."""
    import nncf

    tiles = calibration_tiles(seg)
    return openvino_variant(seg.model, "f32", lambda m: nncf.quantize(
        m, nncf.Dataset(tiles), subset_size=len(tiles)))


def engines(seg, shape):
    """``(label, predictor or None, note)`` for every engine to time."""
    import importlib.util

    from nuclib.engines import ONNXRuntimeEngine, OpenVINOEngine, cpu_computes_bfloat16

    model = seg.model
    rows = [("keras", model.predict_on_batch, ""),
            ("openvino f32", OpenVINOEngine(model, precision="f32"), "dynamic H/W, compiled once"),
            ("openvino f32 static", openvino_variant(model, "f32", reshaped_to(shape)),
             "reshaped to the tile")]
    if cpu_computes_bfloat16():
        rows.append(("openvino bf16", OpenVINOEngine(model, precision="bf16"), ""))
    else:
        rows.append(("openvino bf16", None,
                     "skipped: this CPU has neither avx512_bf16 nor amx_bf16"))
    if importlib.util.find_spec("nncf") is not None:
        rows.append(("openvino int8", int8(seg), "NNCF, 20 DSB2018 train images"))
    else:
        rows.append(("openvino int8", None, "skipped: pip install nncf"))
    rows.append(("onnxruntime", ONNXRuntimeEngine(model), "CPU execution provider"))
    return rows


def conv_peaks(rounds: int, layers: int = 4) -> dict[str, float]:
    """GFLOP/s of each engine on dense 3x3 convolutions: ``layers`` of them, 64 -> 64
    channels with ReLU, on a batch of eight 128 x 128 inputs (one Keras model,
    converted like the network, so that layout changes at its ends weigh little)."""
    import keras

    from _common import median_seconds
    from nuclib.engines import ONNXRuntimeEngine, OpenVINOEngine, cpu_computes_bfloat16

    size, channels, batch = 128, 64, 8
    inputs = x = keras.Input((size, size, channels))
    for _ in range(layers):
        x = keras.layers.Conv2D(channels, 3, padding="same", activation="relu")(x)
    dense = keras.Model(inputs, x)
    data = np.random.default_rng(0).random((batch, size, size, channels), dtype=np.float32)
    flops = layers * 2 * batch * size * size * 9 * channels * channels
    engines = {"keras": dense.predict_on_batch,
               "openvino f32": OpenVINOEngine(dense, precision="f32"),
               "onnxruntime": ONNXRuntimeEngine(dense)}
    if cpu_computes_bfloat16():
        engines["openvino bf16"] = OpenVINOEngine(dense, precision="bf16")
    peaks = {label: flops / median_seconds(lambda e=engine: e(data), warmup=2,
                                           repeats=max(rounds, 3)) / 1e9
             for label, engine in engines.items()}
    peaks["openvino f32 static"] = peaks["openvino f32"]
    return peaks


def run(*, size: int, rounds: int) -> list[dict]:
    import nuclib
    from models import conv_flops
    from nuclib.data.io import read_image
    from nuclib.models import FACTORIES

    seg = nuclib.load_pretrained("dsb-3class")
    flops = conv_flops(FACTORIES[seg.about["architecture"]](
        input_shape=(size, size, 1), **seg.about["architecture_args"]))
    image = read_image(REPO / "examples" / "data" / "brightfield.png")
    x = seg.preprocess(image)[:size, :size][None]
    x = np.ascontiguousarray(np.pad(x, ((0, 0), (0, size - x.shape[1]), (0, size - x.shape[2]),
                                        (0, 0)), mode="reflect"))
    candidates = engines(seg, x.shape)
    setup, outputs = {}, {}
    for label, fn, _ in candidates:
        if fn is None:
            continue
        start = time.perf_counter()
        outputs[label] = np.asarray(fn(x), dtype=np.float32)
        setup[label] = time.perf_counter() - start
    times = {label: [] for label in setup}
    for _ in range(rounds):  # interleaved: one call of each engine per round
        for label, fn, _ in candidates:
            if fn is None:
                continue
            start = time.perf_counter()
            fn(x)
            times[label].append(time.perf_counter() - start)
    keras_s = statistics.median(times["keras"])
    peaks = conv_peaks(rounds)
    rows = []
    for label, fn, note in candidates:
        if fn is None:
            rows.append({"engine": label, "s / tile": "-", "vs keras": "-", "max Δp": "-",
                         "set-up s": "-", "GFLOP/s": "-", "of conv peak": "-", "note": note})
            continue
        seconds = statistics.median(times[label])
        rate = flops / seconds / 1e9
        peak = peaks.get(label)
        rows.append({"engine": label, "s / tile": seconds, "vs keras": keras_s / seconds,
                     "max Δp": float(np.abs(outputs[label] - outputs["keras"]).max()),
                     "set-up s": setup[label], "GFLOP/s": rate,
                     "of conv peak": f"{rate / peak:.0%} of {peak:.0f}" if peak else "-",
                     "note": note})
    return rows


def batch_rows(*, size: int, rounds: int, batches=(1, 2, 4, 8)) -> list[dict]:
    """Milliseconds per image of the default engine at several batch sizes of ``size``² tiles:
    whether batching small images in one network call would pay."""
    import nuclib
    from _common import median_seconds

    seg = nuclib.load_pretrained("dsb-3class")
    run = seg.inferencer(progress=False)._predict_batch  # the engine the Segmenter uses
    rows = []
    for batch in batches:
        x = np.random.default_rng(batch).random((batch, size, size, 1), dtype=np.float32)
        seconds = median_seconds(lambda x=x: run(x), warmup=2, repeats=max(rounds, 3))
        precision = getattr(run, "precision", "f32")
        rows.append({"engine": f"{seg.engine} ({precision})", "batch": batch,
                     "ms per image": seconds / batch * 1e3})
    base = rows[0]["ms per image"]
    for row in rows:
        row["vs batch 1"] = f"{base / row['ms per image']:.2f}x"
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a 256x256 tile and 1 round: a seconds-long smoke run")
    parser.add_argument("--size", type=int, default=1024,
                        help="tile side, a multiple of 16 (default 1024)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--batches", action="store_true",
                        help="instead: ms per image of the default engine at batch 1, 2, 4 "
                             "and 8 of 256x256 tiles (does batching small images pay?)")
    opts = parser.parse_args(argv)
    if opts.batches:
        print(f"{cpu_name()}, {os.cpu_count()} logical CPUs:\n")
        print_table(batch_rows(size=256, rounds=opts.rounds))
        return
    size, rounds = (256, 1) if opts.quick else (opts.size, opts.rounds)
    rows = run(size=size, rounds=rounds)
    flags = cpu_flags()
    isa = ("AMX" if "amx_bf16" in flags else "AVX512-BF16" if "avx512_bf16" in flags
           else "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2")
    print(f"dsb-3class network on one {size}x{size}x1 tile, batch 1, median of {rounds} "
          f"interleaved rounds; {cpu_name()}, {os.cpu_count()} logical CPUs, {isa}:\n")
    print_table(rows)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
