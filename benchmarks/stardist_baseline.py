"""Train the StarDist2D model that ``benchmarks/zoo.py --stardist`` races against.

The speed target of nuclib's engines is "twice as fast as StarDist's
``predict_instances`` on the fluorescence images of DSB2018 ``val/``". The
published ``2D_versatile_fluo`` weights cannot be downloaded here, so this
script trains a StarDist2D of the same configuration (32 rays, grid 2x2,
a depth-3 U-Net with 32 base filters: StarDist's defaults, which
``2D_versatile_fluo`` uses) on the fluorescence images of ``train/`` with
StarDist's own recipe: percentile normalization (1, 99.8), random 90°
rotations and flips, 256x256 patches, batch 4, Adam at 3e-4. It trains for
a number of steps (fixed, so that a busy machine slows it without cutting
it short), then StarDist's ``optimize_thresholds`` tunes the
probability and NMS thresholds on the fluorescence images of ``val/``, as
nuclib's finalize tunes its own.

Network cost does not depend on the weights, but StarDist's NMS does (it
visits every pixel above the probability threshold), so the model must be
trained for the race to be fair; its accuracy is printed beside the speed
by ``zoo.py``.

Usage:
    python benchmarks/stardist_baseline.py --steps 400         # -> runs/stardist/fluo
    python benchmarks/stardist_baseline.py --steps 5500 --name fluo-6000 \\
        --init runs/stardist/fluo                            # 5500 more steps on top of it
    python benchmarks/zoo.py --model dsb-3class --no-variants --group fluorescence \\
        --stardist runs/stardist/fluo

Needs ``stardist`` (in nuclib's ``[test]`` extra) and ``../shared/data/dsb2018``
(or ``NUCLIB_DSB2018``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from _common import dsb2018_root

ROOT = Path(__file__).resolve().parents[1]
PATCH = 256


def fluorescence_pairs(split: str, limit: int | None = None):
    """(normalized images, labels) of one split's fluorescence images."""
    from csbdeep.utils import normalize

    from nuclib.data import folder_pairs, read_image, read_labels
    from nuclib.evaluation import read_modalities

    dsb = dsb2018_root()
    modality = read_modalities(dsb)
    pairs = [p for p in folder_pairs(dsb / split) if modality[p[0].stem] == "fluorescence"]
    pairs = pairs[:limit] if limit else pairs
    images, labels = [], []
    for image_path, label_path in pairs:
        image = read_image(image_path).astype(np.float32)
        image = image.mean(axis=-1) if image.ndim == 3 else image  # grey, as StarDist's fluo
        images.append(normalize(image, 1, 99.8, axis=(0, 1)))
        labels.append(read_labels(label_path))
    return images, labels


def augment(x, y):
    """StarDist's example augmentation: a random 90° rotation and flip, on both."""
    k = np.random.randint(4)
    x, y = np.rot90(x, k), np.rot90(y, k)
    if np.random.rand() < 0.5:
        x, y = np.fliplr(x), np.fliplr(y)
    return x.copy(), y.copy()


def pad_to_patch(images, labels):
    """Images smaller than a patch are reflect-padded (labels with 0) to it."""
    out_x, out_y = [], []
    for x, y in zip(images, labels):
        pad = [(0, max(0, PATCH - s)) for s in x.shape]
        out_x.append(np.pad(x, pad, mode="reflect"))
        out_y.append(np.pad(y, pad))
    return out_x, out_y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=400,
                        help="training steps (batches of 4 patches), in epochs of 50")
    parser.add_argument("--out", default=str(ROOT / "runs" / "stardist"))
    parser.add_argument("--name", default="fluo")
    parser.add_argument("--quick", action="store_true", help="8 images, a few steps: a smoke run")
    parser.add_argument("--init", metavar="DIR",
                        help="start from the last weights of this StarDist model folder "
                             "(same configuration), to train it longer")
    args = parser.parse_args()
    if args.init and not (Path(args.init) / "weights_last.h5").is_file():
        raise SystemExit(f"--init {args.init}: no weights_last.h5 there; expected a StarDist "
                         "model folder this script trained")

    from stardist.models import Config2D, StarDist2D

    np.random.seed(0)
    limit = 8 if args.quick else None
    x_train, y_train = pad_to_patch(*fluorescence_pairs("train", limit))
    x_val, y_val = fluorescence_pairs("val", limit)
    print(f"{len(x_train)} training and {len(x_val)} validation images (fluorescence)")
    steps_per_epoch, epochs = (2, 2) if args.quick else (50, max(1, args.steps // 50))
    config = Config2D(n_rays=32, grid=(2, 2), n_channel_in=1, train_patch_size=(PATCH, PATCH),
                      train_batch_size=4, train_learning_rate=3e-4, train_epochs=epochs,
                      train_steps_per_epoch=steps_per_epoch, train_tensorboard=False)
    out = Path(args.out)
    if (out / args.name).exists():
        raise FileExistsError(f"{out / args.name} exists; delete it or pass another --name")
    model = StarDist2D(config, name=args.name, basedir=str(out))
    if args.init:
        model.keras_model.load_weights(str(Path(args.init) / "weights_last.h5"))
    started = time.time()
    # Validation patches: the first (padded) crops of the val images, as StarDist's examples.
    x_check, y_check = pad_to_patch(x_val, y_val)
    model.train(x_train, y_train, validation_data=([x[:PATCH, :PATCH] for x in x_check],
                                                   [y[:PATCH, :PATCH] for y in y_check]),
                augmenter=augment)
    trained = time.time() - started
    model.optimize_thresholds(x_val, y_val)
    start = f" on top of {args.init}" if args.init else ""
    print(f"trained {steps_per_epoch * epochs} steps{start} in {trained / 60:.1f} min; thresholds {model.thresholds}; saved to "
          f"{out / args.name}")


if __name__ == "__main__":
    main()
