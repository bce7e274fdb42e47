"""Compare the model factories: parameters, speed and a prediction each.

Builds every factory in ``nuclib.models.FACTORIES`` (U-Net, MobileNetV2
U-Net, Attention U-Net, MultiResUNet, UNet 3+, EfficientNet U-Net,
DeepLabV3+, Swin-UNet) with a three-class head at a similar, small size, and for each one

* counts its parameters,
* times inference (milliseconds per 256 x 256 image, in batches of 4) and
  training (seconds per step),
* trains it for the same number of steps on the same DSB2018 crops and
  segments the fluorescence sample image with it.

Figure ``compare_models.png``: the three numbers as bars, and each model's
prediction with its F1 score at IoU 0.5. With this short, equal budget the
ranking says how fast each architecture learns, not how good it gets; the
zoo's models are trained far longer (see the Model zoo page).

Run ``python examples/compare_models.py`` (several minutes on a 2-core CPU,
EfficientNet U-Net the slowest) or ``--fast`` (tiny models, two steps each,
about two minutes).
"""

from __future__ import annotations

import time

import numpy as np

from _common import SAMPLES, Example, dsb_root, figure

# Similar sizes: first-stage width 16 for the U-Net family; MobileNetV2 at width 0.35.
FULL_ARGS = {
    "unet": dict(depth=4, filters=16),
    "mobilenet_unet": dict(alpha=0.35, decoder_filters=(128, 64, 32, 16)),
    "attention_unet": dict(depth=4, filters=16),
    "multires_unet": dict(depth=4, filters=16),
    "unet3plus": dict(depth=4, filters=16),
    "efficientnet_unet": dict(encoder="EfficientNetB0"),
    "deeplabv3plus": dict(filters=16, aspp_filters=128, decoder_filters=128),
    # windows of 8 at patch 4 and 3 stages: sides in multiples of 4 * 8 * 4 = 128
    "swin_unet": dict(embed_dim=48, depths=(2, 2, 2), num_heads=(2, 4, 8)),
}
FULL = dict(n_train=120, crop=128, batch=8, epochs=6, steps=25, timing_runs=3)
# fast mode skips training (tracing a training step costs ~10 s per model)
FAST = dict(n_train=2, crop=64, batch=2, epochs=1, steps=2, timing_runs=1)


def time_inference(model, runs: int, size: int = 256) -> float:
    """Median milliseconds per ``size`` x ``size`` image, predicted in batches of 4."""
    batch = np.random.default_rng(0).random((4, size, size, 1), dtype=np.float32)
    model.predict_on_batch(batch)  # warm-up: tracing and memory allocation
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        model.predict_on_batch(batch)
        times.append(time.perf_counter() - started)
    return 1000 * float(np.median(times)) / len(batch)


def main(argv=None) -> None:
    ex = Example(__doc__.splitlines()[0], argv)

    import keras

    from nuclib import data, losses, models, viz
    from nuclib.metrics import matching
    from nuclib.segmenter import Segmenter

    size = FAST if ex.fast else FULL
    factory_args = models.SMALL_ARGS if ex.fast else FULL_ARGS
    pairs = data.folder_pairs(dsb_root() / "train")[::4][: size["n_train"]]
    loaded = data.load_pairs(pairs)  # read once, shared by every model
    sample = data.read_image(SAMPLES / "fluorescence.png")
    truth = data.read_labels(SAMPLES / "fluorescence_labels.png")
    # one square size for timing and prediction: every model sees a single input shape
    side = 96 if ex.fast else 256
    sample, truth = sample[:side, :side], truth[:side, :side]

    rows = []
    for name, factory in models.FACTORIES.items():
        keras.utils.set_random_seed(0)
        args = factory_args.get(name, {})
        model = factory(input_shape=(None, None, 1), head="three_class", **args)
        multiple = models.required_multiple(model)
        # guard for factory arguments whose side multiple exceeds these sizes
        # (swin_unet's defaults need sides of 256; the arguments above fit)
        if side % multiple or size["crop"] % multiple:
            print(f"{name}: skipped, its inputs must be multiples of {multiple} px "
                  f"(crops {size['crop']}, sample {side})")
            continue
        model.compile(optimizer=keras.optimizers.Adam(2e-3),
                      loss=losses.WeightedCategoricalCrossentropy(class_weights=(1.0, 1.0, 5.0)))
        dataset = data.make_dataset(pairs, data=loaded, crop_size=size["crop"],
                                    batch_size=size["batch"], target="three_class",
                                    augment=data.default_augment(seed=0), seed=0)
        inference_ms = time_inference(model, size["timing_runs"], side)
        losses_seen, step_seconds = [float("nan")], float("nan")
        if size["epochs"]:
            started = time.perf_counter()
            history = model.fit(dataset, epochs=size["epochs"], steps_per_epoch=size["steps"],
                                shuffle=False, verbose=0)
            step_seconds = (time.perf_counter() - started) / (size["epochs"] * size["steps"])
            losses_seen = history.history["loss"]
        # one tile covers the sample (MobileNetV2's receptive field needs tiles of 600+ px)
        segmenter = Segmenter(model, {"name": name, "head": "three_class",
                                      "tiling": {"tile_size": 1024}})
        labels = segmenter.segment(sample)
        f1 = matching(truth, labels, thresh=0.5).f1
        rows.append(dict(name=name, params=model.count_params(), inference_ms=inference_ms,
                         step_seconds=step_seconds, loss=losses_seen[-1], labels=labels, f1=f1))
        print(f"{name:>15}: {model.count_params():>9,} parameters, {inference_ms:7.1f} ms per "
              f"{side}x{side} image, {step_seconds:5.2f} s per training step, final loss "
              f"{losses_seen[-1]:.3f}, F1@0.5 on the sample {f1:.2f}")

    fig = figure((4 * len(rows), 7.6))
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 1.25])
    names = [r["name"] for r in rows]
    colors = [f"C{i}" for i in range(len(rows))]
    for ax, key, scale, title in zip(
            top.subplots(1, 3),
            ("params", "inference_ms", "step_seconds"), (1e-6, 1.0, 1.0),
            ("parameters (millions)", f"inference: ms per {side}² image",
             f"training: s per step (batch {size['batch']}, {size['crop']}² crops)")):
        values = [np.nan_to_num(r[key] * scale) for r in rows]
        ax.barh(names, values, color=colors)
        ax.invert_yaxis()
        ax.set_title(title, fontsize="medium")
        ax.grid(True, axis="x", alpha=0.3)
        for y, v in enumerate(values):
            ax.text(v, y, f" {v:.2f}" if v < 10 else f" {v:.0f}", va="center", fontsize="small")
        ax.set_xlim(0, max(max(values) * 1.25, 1e-3))
    steps = size["epochs"] * size["steps"]
    for ax, row in zip(bottom.subplots(1, len(rows)), rows):
        viz.overlay(sample, row["labels"], ax=ax, color="instances", linewidth=0.8,
                    title=f"{row['name']}: {int(row['labels'].max())} nuclei\n"
                          f"F1@0.5 {row['f1']:.2f} after {steps} steps")
    ex.save(fig, "compare_models")
    ex.done()


if __name__ == "__main__":
    main()
