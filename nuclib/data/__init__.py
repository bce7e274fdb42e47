"""Data: image and label I/O, normalization, training targets, augmentation, tf.data.

Example:
    >>> from nuclib import data
    >>> pairs = data.folder_pairs("../shared/data/dsb2018/train")   # doctest: +SKIP
"""

from nuclib.data.augment import JointAugment, default_augment
from nuclib.data.io import (folder_pairs, list_images, read_image, read_labels, write_image,
                            write_labels)
from nuclib.data.normalize import (minmax_normalize, percentile_normalize, prepare_image,
                                   standardize, to_grayscale)
from nuclib.data.pipeline import load_pairs, make_dataset
from nuclib.data.targets import binary, boundaries, remove_small, three_class

__all__ = [
    "read_image", "read_labels", "write_image", "write_labels", "list_images", "folder_pairs",
    "percentile_normalize", "standardize", "minmax_normalize", "to_grayscale", "prepare_image",
    "three_class", "binary", "boundaries", "remove_small",
    "JointAugment", "default_augment",
    "make_dataset", "load_pairs",
]
