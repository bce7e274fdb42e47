"""Data: image and label I/O, normalization, training targets, augmentation, tf.data.

Submodules: ``io`` (files and dataset layouts), ``normalize``, ``scale``
(nucleus size and zooming), ``targets``, ``splits`` (train / val / test),
``augment`` (joint image / label layers; the layers themselves live in
``geometric`` and ``intensity``), ``pipeline`` (``tf.data``, or a Keras
``PyDataset`` on every backend). Names load on first use, and TensorFlow is
imported only by what needs it (``tf.data`` pipelines, the TensorFlow kernels
of nuclib's own augmentation layers), so ``nuclib.data`` imports and its
PyDataset loader runs under ``KERAS_BACKEND=jax`` or ``torch`` without it.

Example:
    >>> from nuclib import data
    >>> pairs = data.folder_pairs("../shared/data/dsb2018/train")   # doctest: +SKIP
    >>> ds = data.make_dataset(pairs, augment=data.default_augment(seed=0))   # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "nuclib.data.io": [
        "read_image", "read_labels", "read_pair", "read_mask_folder", "read_dsb_objects",
        "write_image", "write_labels", "list_images", "folder_pairs", "file_list_pairs",
        "dsb_object_pairs", "IMAGE_SUFFIXES"],
    "nuclib.data.normalize": [
        "percentile_normalize", "standardize", "dataset_stats", "minmax_normalize",
        "to_grayscale", "to_hsv", "is_color", "prepare_image"],
    "nuclib.data.targets": [
        "three_class", "binary", "boundaries", "remove_small", "expand_labels",
        "star_distances", "star", "object_probability", "three_class_distance"],
    "nuclib.data.augment": [
        "JointAugment", "JointLayer", "default_augment", "strong_augment",
        "RandomFlipRotate90", "RandomDiscreteRotation", "RandomAffine",
        "RandomRadialDistortion", "RandomGridElastic", "RandomElastic", "RandomCrop",
        "RandomGamma", "RandomGaussianBlur", "RandomSharpen", "RandomGaussianNoise",
        "RandomPoissonNoise"],
    "nuclib.data.splits": ["split", "split_sizes"],
    "nuclib.data.scale": [
        "median_diameter", "scale_for_diameter", "rescale_image", "rescale_labels",
        "rescale_pair"],
    "nuclib.data.pipeline": [
        "make_dataset", "make_validation_dataset", "load_pairs", "pad_to_multiple",
        "labels_to_target_tf", "labels_to_target_np", "nucleus_centres", "ArrayBatches"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
_SUBMODULES = {"io", "normalize", "targets", "augment", "geometric", "intensity", "joint",
               "pipeline", "scale", "splits"}

__all__ = sorted(_WHERE)

if TYPE_CHECKING:  # pragma: no cover
    from nuclib.data.augment import (JointAugment, JointLayer, RandomAffine, RandomCrop,
                                     RandomDiscreteRotation, RandomElastic, RandomFlipRotate90,
                                     RandomGamma, RandomGaussianBlur, RandomGaussianNoise,
                                     RandomGridElastic, RandomPoissonNoise,
                                     RandomRadialDistortion, RandomSharpen, default_augment,
                                     strong_augment)
    from nuclib.data.io import (IMAGE_SUFFIXES, dsb_object_pairs, file_list_pairs,
                                folder_pairs, list_images, read_dsb_objects, read_image,
                                read_labels, read_mask_folder, read_pair, write_image,
                                write_labels)
    from nuclib.data.normalize import (dataset_stats, is_color, minmax_normalize,
                                       percentile_normalize, prepare_image, standardize,
                                       to_grayscale, to_hsv)
    from nuclib.data.pipeline import (ArrayBatches, labels_to_target_np, labels_to_target_tf,
                                      load_pairs, make_dataset, make_validation_dataset,
                                      nucleus_centres, pad_to_multiple)
    from nuclib.data.scale import (median_diameter, rescale_image, rescale_labels,
                                   rescale_pair, scale_for_diameter)
    from nuclib.data.splits import split, split_sizes
    from nuclib.data.targets import (binary, boundaries, expand_labels, object_probability,
                                     remove_small, star, star_distances, three_class,
                                     three_class_distance)


def __getattr__(name: str) -> Any:
    # Lazy loading: reading files must not pay TensorFlow's start-up time.
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"nuclib.data.{name}")
    raise AttributeError(f"module 'nuclib.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(__all__) | _SUBMODULES)
