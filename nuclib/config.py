"""``SegmenterConfig``: what a ``Segmenter`` needs at run time, typed and checked.

A model directory keeps three kinds of information apart, as StarDist keeps
``config.json`` apart from ``thresholds.json``:

- **settings** (this module): head, input channels, normalization,
  inversion, post-processing, tiling, nucleus size, TTA, engine. They decide
  what the Segmenter does to an image, and each is checked when set.
- **about**: what the model is (description, architecture and its
  arguments, parameter count, licence); read by model cards and packages.
- **record**: what happened to it (scores on the validation images,
  training stages and history, notes); written by training, never read
  when segmenting (``record.json``, see ``nuclib.model_dir``).

``split_config`` sorts an old-style flat dict (``nuclib.json`` of format 1,
or a dict a user wrote by hand) into the three.

The settings are a dataclass whose fields are the keys of ``nuclib.json``.
Assigning a field checks it (``config.diameter = -1`` raises), so a
Segmenter never runs with settings it would refuse to load. Item access
(``config["tiling"]["tile_size"]``, ``config["diameter"] = 17``) is the same
thing by the ``nuclib.json`` key, for code written against the old dict.

This module imports nothing heavy at import time; the checks of
post-processing parameters and engines load their rooms when they run.

Example:
    >>> config = SegmenterConfig(head="binary", diameter=20)
    >>> config.tiling.tile_size, config["normalize"]["high"]
    (1024, 99.8)
    >>> config.tiling = {"tile_size": 512}     # a dict updates the table
    >>> config.tiling
    Tiling(tile_size=512, overlap=None, batch_size=1, blend='crop')
    >>> config.input_channels = 2
    Traceback (most recent call last):
    ...
    ValueError: input_channels must be 1 or 3, got 2
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from numbers import Real
from typing import Any

from nuclib.heads import check_head

__all__ = ["SegmenterConfig", "Normalization", "Tiling", "split_config", "RECORD_KEYS",
           "SETTINGS_KEYS"]

# Keys of what happened to a model (training, evaluation): its record.
RECORD_KEYS = ("scores", "training", "notes", "speed")
# Keys the model directory itself keeps (not settings, not about the model).
BOOKKEEPING_KEYS = ("format_version", "nuclib_version", "files")


class _ByKey:
    """Item access by field name, for code written against the old config dict."""

    def __getitem__(self, key: str):
        if key not in self._fields():
            raise KeyError(self._unknown(key))
        return getattr(self, key)

    def get(self, key: str, default=None):
        return getattr(self, key) if key in self._fields() else default

    def __contains__(self, key) -> bool:
        return key in self._fields()

    def keys(self) -> tuple[str, ...]:
        return self._fields()

    @classmethod
    def _fields(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def _unknown(cls, key) -> str:
        return f"{key!r} is not a {cls.__name__} setting; expected one of {cls._fields()}"

    @classmethod
    def coerce(cls, value, current=None):
        """``value`` as this table: itself, or a dict updating ``current`` (else the defaults)."""
        if isinstance(value, cls):
            return value
        if not isinstance(value, dict):
            raise ValueError(f"expected a {cls.__name__} or a dict of {cls._fields()}, "
                             f"got {value!r}")
        unknown = sorted(set(value) - set(cls._fields()))
        if unknown:
            raise ValueError(f"{', '.join(map(repr, unknown))}: " + cls._unknown(unknown[0])
                             .split("; ", 1)[1])
        return dataclasses.replace(current or cls(), **value)


@dataclass(frozen=True)
class Normalization(_ByKey):
    """Percentile normalization: ``low`` → 0 and ``high`` → 1 (``nuclib.data.prepare_image``).

    Raises:
        ValueError: percentiles outside 0..100 or ``low >= high``.

    Example:
        >>> Normalization(0.5, 99.5).high
        99.5
    """

    low: float = 1.0
    high: float = 99.8

    def __post_init__(self):
        for name in ("low", "high"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Real):
                raise ValueError(f"normalize {name} must be a percentile (number), got {value!r}")
        if not 0 <= self.low < self.high <= 100:
            raise ValueError(f"normalize percentiles must satisfy 0 <= low < high <= 100, got "
                             f"low={self.low}, high={self.high}")


@dataclass(frozen=True)
class Tiling(_ByKey):
    """How big images are cut for the network (``nuclib.postprocess.TiledInferencer``).

    Args:
        tile_size: tile side in pixels, or ``(height, width)``.
        overlap: pixels each tile shares with its neighbours; None: the
            network's receptive field (tiled equals untiled).
        batch_size: tiles per network call.
        blend: ``"crop"`` (each pixel from the tile it is deepest in) or a
            blend of ``nuclib.postprocess.tiling.BLENDS``.
        buckets: pad images to shape buckets (``nuclib.postprocess.tiling.shape_bucket``)
            so that compiled engines prepare few input shapes (off: on 2 CPU
            cores it saves OpenVINO no time, ``benchmarks/shape_buckets.py``).

    Raises:
        ValueError: a size that is not a positive whole number, a negative
            overlap, an overlap that leaves no new pixels per tile, or an
            unknown blend.

    Example:
        >>> Tiling(tile_size=256, overlap=32).overlap
        32
    """

    tile_size: int | tuple[int, int] = 1024
    overlap: int | None = None
    batch_size: int = 1
    blend: str = "crop"
    buckets: bool = False

    def __post_init__(self):
        from nuclib.postprocess.tiling import BLENDS

        sides = self.tile_size if isinstance(self.tile_size, (tuple, list)) else (self.tile_size,)
        if isinstance(self.tile_size, list):
            object.__setattr__(self, "tile_size", tuple(self.tile_size))
        if len(sides) not in (1, 2) or not all(_whole(s) and s >= 1 for s in sides):
            raise ValueError(f"tiling tile_size must be a positive whole number of pixels or "
                             f"(height, width), got {self.tile_size!r}")
        if self.overlap is not None:
            if not _whole(self.overlap) or self.overlap < 0:
                raise ValueError(f"tiling overlap must be a whole number of pixels >= 0 or "
                                 f"None, got {self.overlap!r}")
            if 2 * self.overlap >= min(sides):
                raise ValueError(f"tiling overlap {self.overlap} leaves no pixels of their own "
                                 f"to tiles of {self.tile_size}; expected overlap < "
                                 f"tile_size / 2")
        if not _whole(self.batch_size) or self.batch_size < 1:
            raise ValueError(f"tiling batch_size must be a whole number >= 1, "
                             f"got {self.batch_size!r}")
        if self.blend not in BLENDS:
            raise ValueError(f"unknown tiling blend {self.blend!r}; expected one of {BLENDS}")
        if not isinstance(self.buckets, bool):
            raise ValueError(f"tiling buckets must be true or false, got {self.buckets!r}")


def _whole(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, Real) and float(value).is_integer()


def _check_name(value):
    if not isinstance(value, str) or not value:
        raise ValueError(f"name must be a non-empty string, got {value!r}")
    return value


def _check_channels(value):
    if isinstance(value, bool) or value not in (1, 3):
        raise ValueError(f"input_channels must be 1 or 3, got {value!r}")
    return int(value)


def _check_invert(value):
    if value not in ("auto", True, False) or isinstance(value, Real) and \
            not isinstance(value, bool):
        raise ValueError(f"invert must be 'auto', true or false, got {value!r}")
    return value


def _check_diameter(value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Real) or not value > 0:
        raise ValueError(f"diameter must be a positive number of pixels (the nucleus size the "
                         f"model was trained at) or None, got {value!r}")
    return float(value)


def _check_side(key: str):
    def check(value):
        if not _whole(value) or value < 16:
            raise ValueError(f"{key} must be a whole number of pixels >= 16, got {value!r}")
        return int(value)
    return check


def _check_tta(value):
    if not isinstance(value, bool):
        raise ValueError(f"tta must be true or false, got {value!r}")
    return value


def _check_engine(value):
    from nuclib.engines import check_engine

    check_engine(value)
    return value


def _check_precision(value):
    from nuclib.engines import resolve_precision

    resolve_precision(value)
    return value


@dataclass(eq=True)
class SegmenterConfig(_ByKey):
    """The run-time settings of a Segmenter; every field is checked when it is set.

    Args:
        name: the model's name (e.g. ``"dsb-3class"``).
        head: one of ``nuclib.heads.HEADS``.
        input_channels: the network's input channels, 1 or 3.
        normalize: percentiles (``Normalization`` or a dict of ``low``, ``high``).
        invert: ``"auto"`` (bright backgrounds inverted), True or False.
        postprocess: keyword arguments of the head's post-processing
            (``nuclib.postprocess.thresholds.KINDS``); names and values checked.
        tiling: ``Tiling`` or a dict of its fields.
        diameter: median nucleus diameter (pixels) the model was trained at;
            None: each image at its own scale.
        estimate_side: the size estimate measures images of up to this
            many pixels squared whole, larger ones on their central
            ``estimate_side`` x ``estimate_side`` window
            (``nuclib.diameter.window_bounds``).
        estimate_probe_side: its first pass, at the image's own scale, only
            guesses the zoom, from the window ``window_bounds`` picks for
            this side (``nuclib.diameter.estimate``); at least
            ``estimate_side`` turns the probe off.
        tta: average the 8 rotations and mirrors (8x the time).
        engine: what runs the network: ``"keras"``, ``"openvino"``,
            ``"onnxruntime"`` or ``"auto"`` (``nuclib.engines``). A choice of
            the machine, not of the model: not written to ``nuclib.json``.
        precision: the OpenVINO engine's arithmetic, ``"auto"``, ``"f32"``
            or ``"bf16"``; not written to ``nuclib.json`` either.

    Raises:
        ValueError: a setting out of its range (the message names it and what
            was expected); an unknown key in ``from_dict``.

    Example:
        >>> SegmenterConfig(head="three_class", postprocess={"min_size": 10}).postprocess
        {'min_size': 10}
        >>> SegmenterConfig.from_dict({"head": "binary", "tiling": {"batch_size": 4}}).tiling.batch_size
        4
    """

    name: str = "model"
    head: str = "three_class"
    input_channels: int = 1
    normalize: Normalization = field(default_factory=Normalization)
    invert: bool | str = "auto"
    postprocess: dict = field(default_factory=dict)
    tiling: Tiling = field(default_factory=Tiling)
    diameter: float | None = None
    estimate_side: int = 1024
    estimate_probe_side: int = 256
    tta: bool = False
    engine: str = "keras"
    precision: str = "auto"

    # Settings of the machine a model runs on, not of the model.
    RUNTIME = ("engine", "precision")

    def __setattr__(self, key: str, value: Any) -> None:
        if key not in self._fields():
            raise AttributeError(self._unknown(key))
        object.__setattr__(self, key, self._checked(key, value))
        if key == "head" and "postprocess" in self.__dict__:
            # Parameters of another head's post-processing no longer apply.
            object.__setattr__(self, "postprocess", self._checked("postprocess",
                                                                  self.postprocess))

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in self._fields():
            raise KeyError(self._unknown(key) + _record_hint(key))
        setattr(self, key, value)

    def __getitem__(self, key: str):
        if key not in self._fields():
            raise KeyError(self._unknown(key) + _record_hint(key))
        return getattr(self, key)

    def _checked(self, key: str, value):
        if key == "head":
            check_head(value)
            return value
        if key == "normalize":
            return Normalization.coerce(value, self.__dict__.get("normalize"))
        if key == "tiling":
            return Tiling.coerce(value, self.__dict__.get("tiling"))
        if key == "postprocess":
            return self._checked_postprocess(value)
        return _CHECKS[key](value)

    def _checked_postprocess(self, value) -> dict:
        if not isinstance(value, dict):
            raise ValueError(f"postprocess must be a dict of post-processing parameters, "
                             f"got {value!r}")
        if not value or "head" not in self.__dict__:
            return dict(value)
        from nuclib.postprocess.thresholds import check_postprocess

        return check_postprocess(self.head, value)

    @classmethod
    def from_dict(cls, settings: dict) -> "SegmenterConfig":
        """Settings from a ``nuclib.json``-style dict (tables may be partial).

        Raises:
            ValueError: a key that is not a setting (see ``split_config`` for
                dicts that mix settings with other information), or a bad value.

        Example:
            >>> SegmenterConfig.from_dict({"diameter": 17}).diameter
            17.0
        """
        if isinstance(settings, SegmenterConfig):
            return settings.copy()
        unknown = sorted(set(settings or {}) - set(cls._fields()))
        if unknown:
            raise ValueError(f"{', '.join(map(repr, unknown))}: not a Segmenter setting; "
                             f"expected some of {cls._fields()}{_record_hint(unknown[0])}")
        # The constructor sets fields in order, so head is set (and checked)
        # before the post-processing parameters are checked against it.
        return cls(**(settings or {}))

    def to_dict(self, *, runtime: bool = True) -> dict:
        """The settings as plain JSON-ready values (``runtime=False``: without engine, precision).

        Example:
            >>> SegmenterConfig().to_dict(runtime=False)["tiling"]
            {'tile_size': 1024, 'overlap': None, 'batch_size': 1, 'blend': 'crop', 'buckets': False}
        """
        out = {}
        for key in self._fields():
            if not runtime and key in self.RUNTIME:
                continue
            value = getattr(self, key)
            out[key] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) \
                else copy.deepcopy(value)
        return out

    def copy(self, **changes) -> "SegmenterConfig":
        """A checked copy with ``changes`` applied (tables as dicts update the current ones).

        Example:
            >>> SegmenterConfig().copy(tiling={"batch_size": 2}).tiling.batch_size
            2
        """
        merged = self.to_dict()
        for key, value in changes.items():
            tables = key in ("normalize", "tiling") and isinstance(value, dict)
            merged[key] = {**merged[key], **value} if tables else value
        return type(self).from_dict(merged)


SETTINGS_KEYS = SegmenterConfig._fields()

_CHECKS = {"name": _check_name, "input_channels": _check_channels, "invert": _check_invert,
           "diameter": _check_diameter, "estimate_side": _check_side("estimate_side"),
           "estimate_probe_side": _check_side("estimate_probe_side"),
           "tta": _check_tta, "engine": _check_engine, "precision": _check_precision}


def _record_hint(key) -> str:
    if key in RECORD_KEYS:
        return f"; {key!r} is part of the model's record (segmenter.record[{key!r}])"
    return ""


def split_config(flat: dict) -> tuple[dict, dict, dict]:
    """Sort a flat dict into ``(settings, about, record)``, dropping directory bookkeeping.

    Settings are the ``SegmenterConfig`` fields, the record is
    ``RECORD_KEYS`` (scores, training, notes, speed), and everything else
    but ``format_version``, ``nuclib_version`` and ``files`` describes the
    model (``about``: description, architecture, parameters, licence, ...).

    Example:
        >>> split_config({"head": "binary", "scores": {"ap50": 0.8}, "description": "mine",
        ...               "format_version": 1})
        ({'head': 'binary'}, {'description': 'mine'}, {'scores': {'ap50': 0.8}})
    """
    settings, about, record = {}, {}, {}
    for key, value in (flat or {}).items():
        if key in SETTINGS_KEYS:
            settings[key] = value
        elif key in RECORD_KEYS:
            record[key] = value
        elif key not in BOOKKEEPING_KEYS:
            about[key] = value
    return settings, about, record
