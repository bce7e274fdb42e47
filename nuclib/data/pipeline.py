"""``tf.data`` pipelines that feed (image, target) batches to ``model.fit``.

Images are decoded and normalized once, kept in memory, cropped in NumPy
(cheap slicing) and augmented and turned into targets inside the TensorFlow
graph, with parallel map and prefetch so both cores stay busy.

Example:
    >>> from nuclib import data
    >>> pairs = data.folder_pairs("../shared/data/dsb2018/train")      # doctest: +SKIP
    >>> ds = data.make_dataset(pairs, crop_size=256, batch_size=8,
    ...                        augment=data.default_augment(seed=0))    # doctest: +SKIP
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from nuclib.data.io import read_image, read_labels
from nuclib.data.normalize import prepare_image

TARGET_KINDS = ("three_class", "binary")
IGNORE = -1


def load_pairs(pairs, *, channels: int = 1, preprocess: Callable | None = None,
               progress: bool = False):
    """Read and normalize every (image, label) pair once.

    Returns:
        Two lists: float32 HxWxC images and int32 HxW labels.

    Raises:
        ValueError: unreadable files, or an image and its labels of different
            sizes (both files named).
    """
    from tqdm.auto import tqdm

    prep = preprocess or (lambda im: prepare_image(im, channels=channels))
    images, labels = [], []
    for image_path, label_path in tqdm(list(pairs), desc="loading", disable=not progress):
        image = read_image(image_path)
        lab = read_labels(label_path)
        if image.shape[:2] != lab.shape:
            raise ValueError(f"image {image_path} is {image.shape[:2]} but its labels "
                             f"{label_path} are {lab.shape}; expected the same height and width")
        images.append(prep(image))
        labels.append(lab)
    return images, labels


def _random_crop(image, labels, size: int, rng: np.random.Generator):
    """Crop (or pad with ignored pixels) to ``size`` x ``size``."""
    h, w = labels.shape
    ph, pw = max(size - h, 0), max(size - w, 0)
    if ph or pw:
        image = np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="reflect" if min(h, w) > 1 else "edge")
        labels = np.pad(labels, ((0, ph), (0, pw)), constant_values=IGNORE)
        h, w = labels.shape
    y = rng.integers(0, h - size + 1)
    x = rng.integers(0, w - size + 1)
    return image[y:y + size, x:x + size], labels[y:y + size, x:x + size]


def inner_boundary_tf(labels):
    """TF twin of ``targets.boundaries(labels, mode="inner")`` for ``(N, H, W, 1)`` labels.

    A labelled pixel is boundary if a 4-neighbour has another id; ignored
    (negative) neighbours and the image border do not count.
    """
    padded = tf.pad(labels, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
    h, w = tf.shape(labels)[1], tf.shape(labels)[2]
    edge = tf.zeros_like(labels, dtype=tf.bool)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        neighbour = padded[:, dy:dy + h, dx:dx + w]
        edge |= (neighbour != labels) & (neighbour >= 0)
    return edge & (labels > 0)


def labels_to_target_tf(labels, target: str):
    """Integer class targets (``-1`` = ignore) from ``(N, H, W, 1)`` instance labels."""
    labels = tf.cast(labels, tf.int32)
    if target == "binary":
        out = tf.cast(labels > 0, tf.int32)
    else:
        out = tf.where(labels > 0, 1, 0)
        out = tf.where(inner_boundary_tf(labels), 2, out)
    return tf.where(labels < 0, IGNORE, out)


def make_dataset(pairs: Sequence, *, crop_size: int | None = 256, batch_size: int = 8,
                 target: str = "three_class", augment: Callable | None = None,
                 shuffle: bool = True, repeat: bool = True, channels: int = 1,
                 preprocess: Callable | None = None, seed: int | None = None,
                 data=None, progress: bool = False) -> tf.data.Dataset:
    """Build a ``tf.data.Dataset`` of ``(images, targets)`` batches.

    Targets are integer class maps ``(N, H, W, 1)`` (three-class: 0 background,
    1 interior, 2 boundary; binary: 0/1) with ``-1`` marking padded pixels
    that the losses ignore.

    Args:
        pairs: (image_path, label_path) pairs, e.g. from ``folder_pairs``.
        crop_size: random crop side; images smaller than it are padded. ``None``
            yields whole images one at a time (validation; ``batch_size`` is 1).
        batch_size: images per batch.
        target: ``"three_class"`` or ``"binary"``.
        augment: a joint augmentation (e.g. ``default_augment()``) or None.
        shuffle: random image order / random crops.
        repeat: repeat forever (use ``steps_per_epoch`` in ``fit``).
        channels: model input channels (1 or 3).
        preprocess: image → float32 HxWxC function; default ``prepare_image``.
        seed: makes crops and order reproducible.
        data: already loaded ``(images, labels)`` lists, to skip reading.

    Returns:
        A batched, prefetched ``tf.data.Dataset``.

    Raises:
        ValueError: unknown target, no pairs, or bad files.
    """
    if target not in TARGET_KINDS:
        raise ValueError(f"unknown target {target!r}; expected one of {TARGET_KINDS}")
    images, labels = data if data is not None else load_pairs(
        pairs, channels=channels, preprocess=preprocess, progress=progress)
    if not images:
        raise ValueError("no (image, label) pairs given; expected at least one")
    c = images[0].shape[-1]

    if crop_size is None:
        def whole():
            for im, lab in zip(images, labels):
                yield im, lab[..., None]
        ds = tf.data.Dataset.from_generator(whole, output_signature=(
            tf.TensorSpec((None, None, c), tf.float32), tf.TensorSpec((None, None, 1), tf.int32)))
        ds = ds.batch(1)
    else:
        def crops():
            rng = np.random.default_rng(seed)
            n = len(images)
            while True:
                order = rng.permutation(n) if shuffle else np.arange(n)
                for i in order:
                    im, lab = _random_crop(images[i], labels[i], crop_size, rng)
                    yield im, lab[..., None]
                if not repeat:
                    return
        ds = tf.data.Dataset.from_generator(crops, output_signature=(
            tf.TensorSpec((crop_size, crop_size, c), tf.float32),
            tf.TensorSpec((crop_size, crop_size, 1), tf.int32)))
        ds = ds.batch(batch_size, drop_remainder=repeat)
    if augment is not None:
        def _augment(im, lab):
            out = augment({"images": im, "labels": lab}, training=True)
            return out["images"], out["labels"]
        ds = ds.map(_augment, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.map(lambda im, lab: (im, labels_to_target_tf(lab, target)),
                num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
