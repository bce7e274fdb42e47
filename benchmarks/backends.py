"""Benchmark nuclib on every Keras backend: inference, training step, loader, and labels.

Keras picks its backend once per process, so each backend runs in its own
subprocess (this script with ``--worker``); JAX and PyTorch run with
TensorFlow hidden, as on a machine without it. The timed work runs in
rounds, one worker per backend per round, interleaved, and each figure is
the median over rounds, so that other load on the machine hits all
backends alike. Per backend, on this CPU:

* **inference**: the bundled ``dsb-3class`` network alone (``predict_on_batch``)
  on one 512x512 tile of the bright-field sample, after a warm-up call;
* **training step**: ``train_on_batch`` of ``unet(depth=4, filters=16)``
  (three-class head, weighted cross-entropy, Adam), batches of 8 crops of
  256x256 in float32;
* **loader**: batches per second of ``make_dataset(..., augment=default_augment())``
  with the loader the recipe picks on that backend (``tf.data`` on TensorFlow,
  the ``PyDataset`` elsewhere), as a ratio to that backend's training-step
  rate (the loader must keep up: target >= 2x);
* **labels**: every zoo model segments every image of ``val/`` (``engine="keras"``)
  once per backend; the labels are scored against TensorFlow's with nuclib's
  pooled AP@0.5 (target >= 0.98).

Ratios are TensorFlow's time divided by the backend's (above 1: faster).

Usage:
    python benchmarks/backends.py                 # 3 rounds, all of val/
    python benchmarks/backends.py --quick         # small sizes, 1 round, 4 val images
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Run as a script or through runpy (the workers): the helpers beside it and the tests'.
sys.path[:0] = [str(REPO / "benchmarks"), str(REPO)]
from _common import dsb2018_root, median_seconds, print_table  # noqa: E402
from tests.without_tensorflow import NO_TENSORFLOW, backend_env  # noqa: E402

BACKENDS = ("tensorflow", "jax", "torch")


# --- the worker: runs under one backend -------------------------------------------------

def time_inference(tile: int, repeats: int) -> float:
    import numpy as np

    import nuclib
    from nuclib.data import read_image
    from nuclib.data.normalize import percentile_normalize

    image = read_image(REPO / "examples" / "data" / "brightfield.png")[:tile, :tile]
    x = percentile_normalize(image)[None, ..., None].astype(np.float32)
    model = nuclib.load_pretrained("dsb-3class", engine="keras").model
    return median_seconds(lambda: model.predict_on_batch(x), warmup=1, repeats=repeats)


def time_training(crop: int, batch: int, depth: int, filters: int, repeats: int) -> dict:
    import keras
    import numpy as np

    from nuclib import data
    from nuclib.losses import WeightedCategoricalCrossentropy
    from nuclib.models import unet

    # The loader the recipe picks on this backend (make_dataset's default).
    pairs = data.folder_pairs(dsb2018_root() / "train")[:16]
    dataset = data.make_dataset(pairs, data=data.load_pairs(pairs, progress=False),
                                crop_size=crop, batch_size=batch, seed=0,
                                augment=data.default_augment(0))
    iterator = iter(dataset)
    batches = [tuple(np.asarray(t) for t in next(iterator)) for _ in range(4)]
    loader_seconds = median_seconds(lambda: next(iterator), warmup=2, repeats=max(repeats, 8))

    model = unet(head="three_class", depth=depth, filters=filters, batch_norm=True, dropout=0.1)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=WeightedCategoricalCrossentropy(class_weights=(1.0, 1.0, 5.0)))
    step = iter(range(10**9))
    step_seconds = median_seconds(lambda: model.train_on_batch(*batches[next(step) % 4]),
                                  warmup=2, repeats=repeats)
    return {"step_s": step_seconds, "loader_s": loader_seconds,
            "loader": type(dataset).__name__}


def write_labels(images: list[str], out: Path) -> None:
    import numpy as np

    import nuclib
    from nuclib.data import read_image

    labels = {}
    for entry in nuclib.list_pretrained():
        segmenter = nuclib.load_pretrained(entry["name"], engine="keras")
        for path in images:
            labels[f"{entry['name']}/{Path(path).stem}"] = segmenter.segment(
                read_image(path), progress=False)
    np.savez_compressed(out, **labels)


def worker(args) -> None:
    import keras

    result = {"backend": keras.backend.backend()}
    if args.task == "time":
        result["inference_s"] = time_inference(args.tile, args.repeats)
        result.update(time_training(args.crop, args.batch, args.depth, args.filters,
                                    args.repeats))
    else:
        write_labels(args.images, Path(args.out))
    result["tensorflow_imported"] = "tensorflow" in sys.modules
    print(json.dumps(result))


# --- the driver ---------------------------------------------------------------------------

def run_worker(backend: str, worker_args: list[str]) -> dict:
    hide = backend != "tensorflow"
    code = (NO_TENSORFLOW if hide else "import json\n") + (
        "import runpy, sys\n"
        f"sys.argv = [{__file__!r}, '--worker', *{worker_args!r}]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=backend_env(backend), cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"the {backend} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def val_images(limit: int | None) -> list[str]:
    from nuclib.data.io import folder_pairs

    images = [str(image) for image, _ in folder_pairs(dsb2018_root() / "val")]
    return images[:limit] if limit else images


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one round")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--task", choices=["time", "labels"], default="time",
                        help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--images", nargs="*", default=[], help=argparse.SUPPRESS)
    for name, default in (("tile", 512), ("crop", 256), ("batch", 8), ("depth", 4),
                          ("filters", 16), ("repeats", 5)):
        parser.add_argument(f"--{name}", type=int, default=default, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)

    sizes = (["--tile", "128", "--crop", "64", "--batch", "2", "--depth", "2", "--filters",
              "4", "--repeats", "2"] if args.quick else [])
    rounds = args.rounds or (1 if args.quick else 3)
    if "tensorflow" not in args.backends:
        args.backends.insert(0, "tensorflow")  # the baseline

    import numpy as np

    from nuclib.metrics import matching_dataset

    started = time.perf_counter()
    timings = {b: [] for b in args.backends}
    for _ in range(rounds):
        for backend in args.backends:
            timings[backend].append(run_worker(backend, ["--task", "time", *sizes]))

    images = val_images(4 if args.quick else None)
    with tempfile.TemporaryDirectory() as tmp:
        labels = {}
        for backend in args.backends:
            out = Path(tmp) / f"{backend}.npz"
            run_worker(backend, ["--task", "labels", "--out", str(out), "--images", *images])
            labels[backend] = dict(np.load(out))

    def median(backend, key):
        return statistics.median(r[key] for r in timings[backend])

    tf_infer, tf_step = median("tensorflow", "inference_s"), median("tensorflow", "step_s")
    models = sorted({key.split("/")[0] for key in labels["tensorflow"]})
    rows = []
    for backend in args.backends:
        infer, step, loader = (median(backend, k) for k in ("inference_s", "step_s",
                                                            "loader_s"))
        row = {"backend": backend,
               "TensorFlow imported": "yes" if timings[backend][0]["tensorflow_imported"]
               else "no",
               "inference ms": f"{infer * 1e3:.0f}", "vs TF": f"{tf_infer / infer:.2f}x",
               "train step ms": f"{step * 1e3:.0f}", "vs TF ": f"{tf_step / step:.2f}x",
               "loader": timings[backend][0]["loader"],
               "loader / step rate": f"{step / loader:.1f}x"}
        for model in models:
            keys = sorted(k for k in labels["tensorflow"] if k.startswith(model + "/"))
            score = matching_dataset([labels["tensorflow"][k] for k in keys],
                                     [labels[backend][k] for k in keys], thresh=0.5,
                                     progress=False)
            row[f"{model} AP50 vs TF"] = f"{score.accuracy:.4f}"
        rows.append(row)

    import keras
    print(f"\n## Keras backends ({'quick' if args.quick else 'full'} run)\n")
    print(f"{os.cpu_count()} CPU cores, Keras {keras.__version__}, {rounds} round(s), "
          f"labels on {len(images)} val/ images; "
          f"{time.perf_counter() - started:.0f} s in all.\n")
    print_table(rows)


if __name__ == "__main__":
    main()
