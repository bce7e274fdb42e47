"""Train a small three-class U-Net on a subset of DSB2018 and plot what it learned.

The building blocks of ``nuclib train`` used by hand, step by step:

1. ``data.folder_pairs`` finds (image, labels) pairs; ``data.make_dataset``
   crops, augments (``data.default_augment``: images and labels together) and
   turns labels into three-class targets (background, interior, boundary)
   inside ``tf.data``; ``data.make_validation_dataset`` covers the validation
   images tile by tile;
2. ``models.unet`` builds the network, ``losses.WeightedCategoricalCrossentropy``
   weighs the thin boundary class up;
3. ``model.fit`` trains; ``postprocess.optimize_thresholds`` then tunes the
   post-processing on validation images;
4. ``Segmenter(model, config).save(folder)`` writes a model directory that
   ``nuclib.load_pretrained(folder)`` and ``nuclib segment --model folder``
   understand (``evaluate_models.py`` uses it).

Figures: ``train_curves.png`` (loss and Dice per epoch, training and
validation) and ``train_prediction.png`` (a validation image, its truth, the
predicted probabilities and instances).

Run ``python examples/train_unet.py`` (about 5 minutes on a 2-core CPU) or
``--fast`` (a few steps on 8 images, seconds). The data folder is
``../shared/data/dsb2018`` beside the repository, or ``NUCLIB_DSB2018``.
"""

from __future__ import annotations

import json
import time
import warnings

import numpy as np

from _common import Example, dsb_root, figure

MODEL_DIR_NAME = "example-unet"

# Sizes of the two modes: the full run gives a usable model in a few CPU minutes.
FULL = dict(n_train=160, n_val=16, crop=128, batch=8, depth=3, filters=16, epochs=12, steps=25)
FAST = dict(n_train=8, n_val=2, crop=64, batch=4, depth=2, filters=4, epochs=2, steps=2)


def train_small(ex: Example) -> dict:
    """Train, tune and save the example model; return what the figures need."""
    import keras

    from nuclib import data, losses, models
    from nuclib.metrics import DiceCoefficient
    from nuclib.postprocess import optimize_thresholds
    from nuclib.segmenter import Segmenter

    size = FAST if ex.fast else FULL
    keras.utils.set_random_seed(0)
    root = dsb_root()
    # every third image: a spread over the sorted ids, so all modalities appear
    train_pairs = data.folder_pairs(root / "train")[::3][: size["n_train"]]
    val_pairs = data.folder_pairs(root / "val")[: size["n_val"]]
    print(f"training on {len(train_pairs)} images, validating on {len(val_pairs)}")

    train_ds = data.make_dataset(train_pairs, crop_size=size["crop"], batch_size=size["batch"],
                                 target="three_class", augment=data.default_augment(seed=0),
                                 seed=0)
    # validation: every labelled pixel once per epoch, in tiles, no augmentation
    val_ds = data.make_validation_dataset(val_pairs, tile_size=size["crop"],
                                          batch_size=size["batch"], target="three_class")

    model = models.unet(input_shape=(None, None, 1), head="three_class",
                        depth=size["depth"], filters=size["filters"], name="example_unet")
    model.compile(optimizer=keras.optimizers.Adam(2e-3),
                  loss=losses.WeightedCategoricalCrossentropy(class_weights=(1.0, 1.0, 5.0)),
                  metrics=[DiceCoefficient()])
    print(f"U-Net: depth {size['depth']}, {size['filters']} filters, "
          f"{model.count_params():,} parameters")
    # Keras warns when the (finite, by design) validation set ends; that is expected here.
    warnings.filterwarnings("ignore", message="Your input ran out of data")
    started = time.perf_counter()
    history = model.fit(train_ds, validation_data=val_ds, epochs=size["epochs"],
                        steps_per_epoch=size["steps"],
                        shuffle=False,  # make_dataset shuffles; this silences Keras' warning
                        verbose=2)
    seconds = time.perf_counter() - started
    print(f"trained {size['epochs']} epochs x {size['steps']} steps in {seconds:.0f} s")

    segmenter = Segmenter(model, {"name": MODEL_DIR_NAME, "head": "three_class",
                                  "architecture": "unet",
                                  "description": "U-Net trained by examples/train_unet.py"})
    val_images = [data.read_image(p) for p, _ in val_pairs]
    val_truths = [data.read_labels(p) for _, p in val_pairs]
    val_probs = [segmenter.predict(im) for im in val_images]
    tuned = optimize_thresholds(val_probs, val_truths, kind="three_class", score="ap50")
    segmenter.config["postprocess"] = tuned["params"]
    print(f"post-processing tuned on validation: AP@0.5 {tuned['default_score']:.3f} -> "
          f"{tuned['score']:.3f} with {json.dumps(tuned['params'])}")
    model_dir = segmenter.save(ex.work / MODEL_DIR_NAME, overwrite=True)
    print(f"saved {model_dir}; load it with nuclib.load_pretrained({str(model_dir)!r})")
    return dict(history=history.history, segmenter=segmenter, images=val_images,
                truths=val_truths, probs=val_probs, seconds=seconds, model_dir=model_dir)


def plot_curves(history: dict):
    from nuclib import viz

    # loss and Dice, training and validation, with the epoch of the lowest val_loss marked
    fig = viz.plot_training_history(history, figsize=(9, 3.4))
    titles = {"loss": "loss (weighted cross-entropy)",
              "dice_coefficient": "Dice of the nucleus pixels"}
    for ax in fig.axes:
        ax.set_title(titles.get(ax.get_title(), ax.get_title()))
    return fig


def plot_prediction(image, truth, probs, labels):
    from nuclib import viz
    from nuclib.metrics import matching

    score = matching(truth, labels, thresh=0.5)
    fig = figure((13, 3.6))
    axes = fig.subplots(1, 4)
    viz.overlay(image, truth, ax=axes[0], color="instances", title=f"truth: {int(truth.max())} nuclei")
    axes[1].imshow(probs[..., [2, 1, 0]] * np.array([1.0, 1.0, 0.35]), interpolation="nearest")
    axes[1].set_title("probabilities\n(interior green, boundary red)")
    axes[1].set_axis_off()
    viz.overlay(image, labels, ax=axes[2], color="instances",
                title=f"prediction: {int(labels.max())} nuclei")
    viz.error_map(image, truth, labels, ax=axes[3],
                  title=f"errors at IoU 0.5 (F1 {score.f1:.2f})")
    return fig


def main(argv=None) -> None:
    ex = Example(__doc__.splitlines()[0], argv)
    result = train_small(ex)
    ex.save(plot_curves(result["history"]), "train_curves")
    # a typical validation image: the one with the median number of nuclei
    counts = [len(np.unique(t[t > 0])) for t in result["truths"]]
    i = int(np.argsort(counts)[len(counts) // 2])
    labels = result["segmenter"].postprocess(result["probs"][i])
    ex.save(plot_prediction(result["images"][i], result["truths"][i], result["probs"][i], labels),
            "train_prediction")
    ex.done()


if __name__ == "__main__":
    main()
