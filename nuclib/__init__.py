"""nuclib: cell nucleus segmentation for microscopy images with Keras 3.

Importing ``nuclib`` is cheap: TensorFlow, Keras and the subpackages load
on first use.

Example:
    >>> import nuclib
    >>> seg = nuclib.load_pretrained("dsb-3class")      # doctest: +SKIP
    >>> labels = seg.segment(image)                     # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from nuclib._version import __version__

__all__ = [
    "__version__",
    "Segmenter",
    "SegmenterConfig",
    "load_pretrained",
    "list_pretrained",
    "segment_files",
    "models",
    "losses",
    "data",
    "postprocess",
    "metrics",
    "zoo",
    "viz",
    "train",
]

_SUBMODULES = {"models", "losses", "data", "postprocess", "metrics", "zoo", "viz", "train"}
_ATTRIBUTES = {
    "Segmenter": "nuclib.segmenter",
    "SegmenterConfig": "nuclib.config",
    "load_pretrained": "nuclib.zoo",
    "list_pretrained": "nuclib.zoo",
    "segment_files": "nuclib.distributed",
}

if TYPE_CHECKING:  # pragma: no cover
    from nuclib import data, losses, metrics, models, postprocess, train, viz, zoo
    from nuclib.config import SegmenterConfig
    from nuclib.distributed import segment_files
    from nuclib.segmenter import Segmenter
    from nuclib.zoo import list_pretrained, load_pretrained


def __getattr__(name: str) -> Any:
    # Lazy loading keeps `import nuclib` free of TensorFlow start-up cost.
    if name in _SUBMODULES:
        return importlib.import_module(f"nuclib.{name}")
    if name in _ATTRIBUTES:
        return getattr(importlib.import_module(_ATTRIBUTES[name]), name)
    raise AttributeError(f"module 'nuclib' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
