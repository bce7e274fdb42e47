"""Write what every model factory, loss, training metric and zoo model gives on one backend.

``tests/test_cross_backend.py`` runs this script once per Keras backend
(TensorFlow first, then JAX and PyTorch with TensorFlow hidden) and compares
the files. Inputs are drawn from NumPy with fixed seeds, so every backend sees
the same values; the factories' weights are initialized once, by the first run,
and loaded by the others, because Keras's seeded initializers draw different
numbers on each backend.

Usage::

    KERAS_BACKEND=torch python tests/cross_backend_outputs.py OUT_DIR [--images A.png B.png]

writes ``OUT_DIR/<backend>.npz`` (and ``OUT_DIR/weights/`` if it is missing).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import keras
import numpy as np

import nuclib
from nuclib import losses, models
from nuclib.data import read_image
from nuclib.data.pipeline import labels_to_target_np
from nuclib.lazy_weights import initializers_deferred
from nuclib.metrics.training import ClassPrecision, ClassRecall, DiceCoefficient, JaccardIndex

N_RAYS = 8

# (name, factory, arguments): every factory, and every head on the U-Net; the newer
# factories at their nuclib.models.SMALL_ARGS (sides multiples of 32 fit all of them).
FACTORIES = [
    ("unet-three_class", "unet", dict(head="three_class", depth=2, filters=4)),
    ("unet-binary", "unet", dict(head="binary", depth=2, filters=4, upsampling="bilinear")),
    ("unet-star", "unet", dict(head="star", depth=2, filters=4, n_rays=N_RAYS)),
    ("unet-three_class_distance", "unet", dict(head="three_class_distance", depth=2, filters=4)),
    ("attention_unet-star", "attention_unet", dict(head="star", depth=2, filters=4,
                                                   n_rays=N_RAYS)),
    ("multires_unet-three_class", "multires_unet", dict(head="three_class", depth=2, filters=4)),
    ("mobilenet_unet-binary", "mobilenet_unet", dict(head="binary", alpha=0.35,
                                                     decoder_filters=(16, 8, 8, 4))),
    *[(f"{factory}-three_class", factory, dict(head="three_class", **models.SMALL_ARGS[factory]))
      for factory in ("unet3plus", "deeplabv3plus", "swin_unet", "efficientnet_unet")],
]

# (name, loss, head of its prediction): every loss class, on the head it trains.
LOSSES = [
    ("wcce", lambda: losses.WeightedCategoricalCrossentropy((1, 1, 5)), "three_class"),
    ("dice", lambda: losses.Dice(class_weights=(0, 1, 1)), "three_class"),
    ("jaccard", lambda: losses.Jaccard(), "three_class"),
    ("tversky", lambda: losses.Tversky(), "three_class"),
    ("focal", lambda: losses.Focal(), "three_class"),
    ("combined", lambda: losses.WeightedCategoricalCrossentropy() + 0.5 * losses.Dice(),
     "three_class"),
    ("bce_dice", lambda: losses.BCEDice(), "binary"),
    ("wbce", lambda: losses.WeightedBinaryCrossentropy((1, 1e6)), "binary"),
    ("dice_binary", lambda: losses.Dice(), "binary"),
    ("focal_binary", lambda: losses.Focal(), "binary"),
    ("star", lambda: losses.StarLoss(), "star"),
    ("three_class_distance", lambda: losses.ThreeClassDistanceLoss(), "three_class_distance"),
]

METRICS = [
    ("dice", lambda: DiceCoefficient(), "three_class"),
    ("precision_boundary", lambda: ClassPrecision(2), "three_class"),
    ("recall_interior", lambda: ClassRecall(1), "three_class"),
    ("dice_binary", lambda: DiceCoefficient(), "binary"),
    ("jaccard_binary", lambda: JaccardIndex(), "binary"),
]


def touching_labels(rng, shape=(2, 32, 32)) -> np.ndarray:
    """Blocky instance labels with touching objects and an ignored strip."""
    coarse = rng.integers(0, 9, (shape[0], shape[1] // 4, shape[2] // 4))
    labels = np.kron(coarse, np.ones((1, 4, 4), int)).astype(np.int32)[..., None]
    labels[:, -2:] = -1
    return labels


def predictions(rng, head: str, shape) -> np.ndarray:
    """Plausible outputs of ``head``: softmax classes, sigmoid probabilities, distances."""
    def softmax(z):
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    def sigmoid(z):
        return 1.0 / (1.0 + np.exp(-z))

    n, h, w = shape
    if head == "three_class":
        out = softmax(rng.normal(size=(n, h, w, 3)))
    elif head == "binary":
        out = sigmoid(rng.normal(size=(n, h, w, 1)))
    elif head == "star":
        out = np.concatenate([sigmoid(rng.normal(size=(n, h, w, 1))),
                              np.exp(rng.normal(size=(n, h, w, N_RAYS)))], axis=-1)
    else:
        out = np.concatenate([softmax(rng.normal(size=(n, h, w, 3))),
                              rng.random((n, h, w, 1))], axis=-1)
    return out.astype(np.float32)


def loss_and_metric_values(out: dict) -> None:
    rng = np.random.default_rng(1)
    labels = touching_labels(rng)
    heads = ("three_class", "binary", "star", "three_class_distance")
    truth = {head: labels_to_target_np(labels, head, n_rays=N_RAYS) for head in heads}
    guess = {head: predictions(rng, head, labels.shape[:3]) for head in heads}
    for name, make, head in LOSSES:
        loss = make()
        y_true, y_pred = (keras.ops.convert_to_tensor(v) for v in (truth[head], guess[head]))
        out[f"loss/{name}"] = keras.ops.convert_to_numpy(loss(y_true, y_pred))
        out[f"loss/{name}/per_image"] = keras.ops.convert_to_numpy(loss.call(y_true, y_pred))
    for name, make, head in METRICS:
        metric = make()
        for i in range(labels.shape[0]):  # pooled over two batches
            metric.update_state(truth[head][i:i + 1], guess[head][i:i + 1])
        out[f"metric/{name}"] = keras.ops.convert_to_numpy(metric.result())


def factory_outputs(out: dict, weights: Path) -> None:
    weights.mkdir(exist_ok=True)
    x = np.random.default_rng(2).random((2, 32, 32, 1), dtype=np.float32)
    for name, factory, kwargs in FACTORIES:
        path = weights / f"{name}.weights.h5"
        if path.exists():
            with initializers_deferred():  # TensorFlow's weights: no initializer runs
                model = models.FACTORIES[factory](**kwargs)
                model.load_weights(path)
        else:
            model = models.FACTORIES[factory](**kwargs)
            model.save_weights(path)
        out[f"model/{name}"] = keras.ops.convert_to_numpy(model(x, training=False))


def zoo_labels(out: dict, images: list[str]) -> None:
    for entry in nuclib.list_pretrained():
        name = entry["name"]
        segmenter = nuclib.load_pretrained(name, engine="keras")
        for i, path in enumerate(images):
            out[f"zoo/{name}/{i}"] = segmenter.segment(read_image(path))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--images", nargs="*", default=[])
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    out: dict[str, np.ndarray] = {}
    loss_and_metric_values(out)
    factory_outputs(out, args.out / "weights")
    zoo_labels(out, args.images)
    out["tensorflow_imported"] = np.array("tensorflow" in sys.modules)
    np.savez(args.out / f"{keras.backend.backend()}.npz", **out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
