"""Benchmark the training input pipeline against the training step it feeds.

The pipeline must never be the bottleneck: on this machine it should deliver
augmented training batches at least twice as fast as the model consumes them.

Measured in one process, on images of ``shared/data/dsb2018/train``:

* the baseline: training steps per second of ``unet(depth=4, filters=16)``
  (three-class head, weighted cross-entropy, Adam) on batches of 8 crops of
  256x256, fed from memory (``train_on_batch`` on batches the pipeline made);
  in float32 and, as the training recipe uses it, ``mixed_bfloat16``;
* batches per second of ``make_dataset(..., augment=default_augment())``, and
  for comparison without augmentation and with ``strong_augment()``; the
  ratio to the training step rate is the figure that matters (target >= 2);
* ``model.fit`` steps per second fed by the pipeline, against fed from
  in-memory batches: how much the pipeline slows real training when both
  share the two cores (1.0 = not at all).

Run ``python benchmarks/pipeline.py`` (a few minutes on 2 cores) or
``--quick`` for a seconds-long smoke run (small crops, a small model, few
batches). Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from _common import conv3x3_gflops, markdown_table, median_seconds

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DSB = Path(os.environ.get("NUCLIB_DSB2018",
                          Path(__file__).resolve().parents[2] / "shared" / "data" / "dsb2018"))


def batches_per_second(dataset, n: int, warmup: int) -> float:
    """Rate at which ``dataset`` yields batches, after ``warmup`` batches (tracing, buffers)."""
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(n):
        next(iterator)
    return n / (time.perf_counter() - start)


def build_model(depth: int, filters: int):
    import keras

    from nuclib.losses import WeightedCategoricalCrossentropy
    from nuclib.models import unet

    model = unet(input_shape=(None, None, 1), head="three_class", depth=depth, filters=filters,
                 batch_norm=True, dropout=0.1)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=WeightedCategoricalCrossentropy(class_weights=(1.0, 1.0, 5.0)))
    return model


def train_steps_per_second(batches, depth: int, filters: int, policy: str, n: int,
                           warmup: int) -> float:
    """``train_on_batch`` steps per second on in-memory batches under a dtype policy."""
    import keras

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = build_model(depth, filters)
        step = iter(range(10**9))

        def train_step():
            model.train_on_batch(*batches[next(step) % len(batches)])

        return 1.0 / median_seconds(train_step, warmup=warmup, repeats=n)
    finally:
        keras.mixed_precision.set_global_policy(previous)


def fit_steps_per_second(dataset, depth: int, filters: int, steps: int) -> float:
    """``model.fit`` steps per second on ``dataset`` (after a one-epoch warm-up)."""
    model = build_model(depth, filters)
    model.fit(dataset, epochs=1, steps_per_epoch=max(steps // 4, 1), verbose=0, shuffle=False)
    start = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
    return steps / (time.perf_counter() - start)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    parser.add_argument("--images", type=int, default=None,
                        help="training images to load (default 128; 6 with --quick)")
    args = parser.parse_args(argv)

    import tensorflow as tf

    from nuclib import data

    q = args.quick
    n_images = args.images or (6 if q else 128)
    crop, batch = (64, 2) if q else (256, 8)
    depth, filters = (2, 4) if q else (4, 16)
    n_batches, warmup = (4, 2) if q else (60, 10)
    n_steps, step_warmup = (3, 1) if q else (20, 3)
    policies = ["float32"] if q else ["float32", "mixed_bfloat16"]

    pairs = data.folder_pairs(DSB / "train")[:n_images]
    started = time.perf_counter()
    loaded = data.load_pairs(pairs)
    load_seconds = time.perf_counter() - started
    megapixels = sum(lab.size for lab in loaded[1]) / 1e6

    def pipeline(augment, deterministic=None, sampling="image", target="three_class"):
        return data.make_dataset(pairs, crop_size=crop, batch_size=batch, seed=0, data=loaded,
                                 augment=augment, deterministic=deterministic,
                                 sampling=sampling, target=target)

    # Seeded pipelines augment one batch at a time (reproducible); the parallel rows show
    # what giving that up buys.
    rates = {
        "crops only (no augmentation)": batches_per_second(pipeline(None), n_batches, warmup),
        "crops around nuclei (sampling='nucleus')": batches_per_second(
            pipeline(None, sampling="nucleus"), n_batches, warmup),
        "default_augment()": batches_per_second(pipeline(data.default_augment(0)), n_batches,
                                                warmup),
        "default_augment(), parallel (deterministic=False)": batches_per_second(
            pipeline(data.default_augment(0), deterministic=False), n_batches, warmup),
        "default_augment(), star targets (32 rays)": batches_per_second(
            pipeline(data.default_augment(0), target="star"), n_batches, warmup),
        "default_augment(), three-class + distance targets": batches_per_second(
            pipeline(data.default_augment(0), target="three_class_distance"), n_batches,
            warmup),
        "strong_augment()": batches_per_second(pipeline(data.strong_augment(0)), n_batches,
                                               warmup),
        "strong_augment(), parallel (deterministic=False)": batches_per_second(
            pipeline(data.strong_augment(0), deterministic=False), n_batches, warmup),
    }
    batches = [(x.numpy(), y.numpy())
               for x, y in pipeline(data.default_augment(1)).take(max(n_steps, 4))]
    steps = {p: train_steps_per_second(batches, depth, filters, p, n_steps, step_warmup)
             for p in policies}
    baseline_policy = policies[-1]
    baseline = steps[baseline_policy]

    in_memory = tf.data.Dataset.from_tensor_slices(
        tuple(map(lambda k: tf.concat([b[k] for b in batches], 0), (0, 1)))).batch(
        batch).repeat()
    fit_memory = fit_steps_per_second(in_memory, depth, filters, n_steps * 2)
    fit_pipeline = fit_steps_per_second(pipeline(data.default_augment(2)), depth, filters,
                                        n_steps * 2)

    gflops = conv3x3_gflops(size=32, channels=16, batch=2, repeats=2) if q else conv3x3_gflops()

    print(f"\n## Input pipeline vs training step ({'quick' if q else 'full'} run)\n")
    print(f"{len(pairs)} DSB2018 training images ({megapixels:.1f} Mpx) decoded and "
          f"normalized once in {load_seconds:.1f} s ({load_seconds / len(pairs) * 1e3:.0f} ms "
          f"per image). Batches of {batch} crops of {crop}x{crop}; model "
          f"unet(depth={depth}, filters={filters}); {os.cpu_count()} CPU cores "
          f"({gflops:.3g} GFLOP/s on a 3x3 convolution); TensorFlow {tf.__version__}.\n")
    ratio_column = f"ratio to training step ({baseline_policy})"
    rows = [{"measurement": f"training step, {p} (in-memory batches)",
             "rate": f"{r:.2f} steps/s", ratio_column: f"{r / baseline:.2f}x"}
            for p, r in steps.items()]
    rows += [{"measurement": f"pipeline, {name}", "rate": f"{r:.1f} batches/s",
              ratio_column: (f"**{r / baseline:.1f}x**" if name == "default_augment()"
                             else f"{r / baseline:.1f}x")}
             for name, r in rates.items()]
    print(markdown_table(rows))
    ratio = rates["default_augment()"] / baseline
    print(f"\nPipeline with default_augment() / training step rate: {ratio:.1f}x "
          f"(target >= 2x: {'met' if ratio >= 2 else 'NOT met'}).\n")
    column = "end-to-end (float32, both on the same cores)"
    print(markdown_table([
        {column: "model.fit fed from in-memory batches", "rate": f"{fit_memory:.2f} steps/s",
         "ratio to in-memory": "1.00"},
        {column: "model.fit fed by make_dataset + default_augment()",
         "rate": f"{fit_pipeline:.2f} steps/s",
         "ratio to in-memory": f"{fit_pipeline / fit_memory:.2f}"},
    ]))


if __name__ == "__main__":
    main()
