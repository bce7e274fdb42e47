"""Training recipes: a TOML file (or dict) read, checked and turned into Keras objects.

A recipe names the model factory and its arguments, the loss, the data
folders, cropping, augmentation, optimizer and schedule (``DEFAULTS`` lists
every key). ``load_recipe`` reads and checks it (typos are errors);
``build_model``, ``build_loss`` and ``build_optimizer`` make what it names.
``nuclib.train.train`` runs it.

Example:
    >>> recipe = load_recipe({"data": {"train": "d/train"}, "loss": {"name": "Dice"}})
    >>> recipe["optimizer"]["schedule"], type(build_loss(recipe)).__name__
    ('cosine', 'Dice')
"""

from __future__ import annotations

import copy
import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

AUGMENTS = {"default": "default_augment", "strong": "strong_augment", "none": None}

# Learning-rate schedules of ``[optimizer] schedule``.
SCHEDULES = ("cosine", "exponential", "plateau", "constant")


class _Table:
    """A recipe table: typed fields, also reachable by key (``recipe["data"]["crop_size"]``).

    Item access and ``update`` are for code (and TOML) that speaks in keys;
    every change goes through ``setattr``, which runs the table's checks,
    so a recipe never holds a value it would refuse to load.
    """

    def _check(self) -> None:
        """Raise ``ValueError`` on a bad value; tables override it."""

    def __setattr__(self, key, value):
        if key not in self.keys():
            raise AttributeError(self._unknown(key))
        previous = self.__dict__.get(key, _MISSING)
        object.__setattr__(self, key, value)
        if "_ready" in self.__dict__:
            try:
                self._check()
            except ValueError:
                object.__setattr__(self, key, previous)  # a refused value leaves no trace
                raise

    def __post_init__(self):
        self._check()
        object.__setattr__(self, "_ready", True)

    def __getitem__(self, key: str):
        if key not in self.keys():
            raise KeyError(self._unknown(key))
        return getattr(self, key)

    def __setitem__(self, key: str, value) -> None:
        if key not in self.keys():
            raise KeyError(self._unknown(key))
        setattr(self, key, value)

    def __contains__(self, key) -> bool:
        return key in self.keys()

    def __iter__(self):
        return iter(self.keys())

    def get(self, key: str, default=None):
        return getattr(self, key) if key in self.keys() else default

    def keys(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(self))

    def items(self):
        return [(k, getattr(self, k)) for k in self.keys()]

    def update(self, values=(), **more) -> None:
        """Set several keys at once, checked together (e.g. ``clipnorm=0, clipvalue=1``)."""
        values = {**dict(values), **more}
        unknown = sorted(set(values) - set(self.keys()))
        if unknown:
            raise ValueError(f"unknown keys {unknown} in recipe section [{self.SECTION}]; "
                             f"expected some of {sorted(self.keys())}")
        before = {k: getattr(self, k) for k in values}
        self.__dict__.pop("_ready", None)  # one check after all keys, not one per key
        try:
            for key, value in values.items():
                setattr(self, key, value)
            self._check()
        except ValueError:
            for key, value in before.items():
                object.__setattr__(self, key, value)
            raise
        finally:
            object.__setattr__(self, "_ready", True)

    def to_dict(self) -> dict:
        return copy.deepcopy({k: getattr(self, k) for k in self.keys()})

    def _unknown(self, key) -> str:
        return (f"{key!r} is not a key of recipe section [{self.SECTION}]; expected one of "
                f"{sorted(self.keys())}")


_MISSING = object()


def _is_number(value, *, minimum=None) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and (minimum is None or value >= minimum))


def _is_count(value, *, minimum: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


@dataclass(eq=True)
class ModelSection(_Table):
    """``[model]``: the factory of ``nuclib.models.FACTORIES``, its arguments, input channels."""

    SECTION = "model"
    factory: str = "unet"
    args: dict = field(default_factory=dict)
    input_channels: int = 1

    def _check(self):
        if not isinstance(self.args, dict):
            raise ValueError(f"[model] args must be a table, got {self.args!r}")
        if self.input_channels not in (1, 3) or isinstance(self.input_channels, bool):
            raise ValueError(f"[model] input_channels must be 1 or 3, got {self.input_channels!r}")


@dataclass(eq=True)
class DataSection(_Table):
    """``[data]``: the images, their crops and batches, the target, augmentation, normalization.

    ``train`` and ``val`` are each a folder with ``images/`` and ``labels/``
    (``nuclib.data.folder_pairs``), a text file listing ``image label``
    path pairs, one pair a line, or a list of ``[image, label]`` pairs
    (``Recipe.pairs``). ``boundary``, ``boundary_width``, ``expand`` and
    ``min_size`` shape the three-class target (``nuclib.data.targets.three_class``).
    """

    SECTION = "data"
    train: Any = None
    val: Any = None
    crop_size: int = 256
    batch_size: int = 8
    target: str = "three_class"
    augment: str = "default"
    normalize: Any = (1.0, 99.8)
    diameter: float = 0.0
    sampling: str = "image"
    max_images: int = 0
    description: str = ""
    boundary: str = "inner"
    boundary_width: int = 1
    expand: int = 0
    min_size: int = 0

    def __setattr__(self, key, value):
        if key == "normalize" and isinstance(value, list):
            value = tuple(value)  # TOML and JSON give lists; one spelling compares equal
        super().__setattr__(key, value)

    def _check(self):
        from nuclib.data.pipeline import SAMPLING_MODES
        from nuclib.data.targets import BOUNDARY_MODES
        from nuclib.heads import check_head

        check_head(self.target)
        if self.sampling not in SAMPLING_MODES:
            raise ValueError(f"unknown [data] sampling {self.sampling!r}; expected one of "
                             f"{SAMPLING_MODES}")
        if self.augment not in AUGMENTS:
            raise ValueError(f"unknown [data] augment {self.augment!r}; expected one of "
                             f"{sorted(AUGMENTS)}")
        if self.boundary not in BOUNDARY_MODES:
            raise ValueError(f"unknown [data] boundary {self.boundary!r}; expected one of "
                             f"{BOUNDARY_MODES}")
        for key, minimum in (("crop_size", 1), ("batch_size", 1), ("max_images", 0),
                             ("boundary_width", 1), ("expand", 0), ("min_size", 0)):
            if not _is_count(getattr(self, key), minimum=minimum):
                raise ValueError(f"[data] {key} must be a whole number >= {minimum}, got "
                                 f"{getattr(self, key)!r}")
        if not _is_number(self.diameter, minimum=0):
            raise ValueError(f"[data] diameter must be the nucleus diameter in pixels to zoom "
                             f"every image to (or 0: no zoom), got {self.diameter!r}")
        low_high = tuple(self.normalize) if isinstance(self.normalize, (list, tuple)) else ()
        if len(low_high) != 2 or not all(_is_number(v) for v in low_high) \
                or not 0 <= low_high[0] < low_high[1] <= 100:
            raise ValueError(f"[data] normalize must be [low, high] percentiles with "
                             f"0 <= low < high <= 100, got {self.normalize!r}")
        for key in ("train", "val"):
            check_pairs_source(getattr(self, key), f"[data] {key}")


@dataclass(eq=True)
class LossSection(_Table):
    """``[loss]``: a loss class of ``nuclib.losses`` by name, and its arguments."""

    SECTION = "loss"
    name: str = "WeightedCategoricalCrossentropy"
    args: dict = field(default_factory=dict)

    def _check(self):
        if not isinstance(self.args, dict):
            raise ValueError(f"[loss] args must be a table, got {self.args!r}")


@dataclass(eq=True)
class OptimizerSection(_Table):
    """``[optimizer]``: a Keras optimizer, its learning-rate schedule and gradient clipping."""

    SECTION = "optimizer"
    name: str = "adam"
    learning_rate: float = 1e-3
    schedule: str = "cosine"
    plateau_patience: int = 5
    plateau_factor: float = 0.5
    min_learning_rate: float = 1e-5
    decay_rate: float = 0.96
    decay_steps: int = 0
    clipnorm: float = 0.0
    clipvalue: float = 0.0

    def _check(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown [optimizer] schedule {self.schedule!r}; expected one of "
                             f"{SCHEDULES}")
        for key in ("learning_rate", "min_learning_rate", "decay_rate", "decay_steps",
                    "clipnorm", "clipvalue"):
            if not _is_number(getattr(self, key), minimum=0):
                raise ValueError(f"[optimizer] {key} must be a number >= 0, got "
                                 f"{getattr(self, key)!r}")
        if self.learning_rate <= 0:
            raise ValueError(f"[optimizer] learning_rate must be > 0, got {self.learning_rate!r}")
        if self.clipnorm and self.clipvalue:
            raise ValueError("[optimizer] sets both clipnorm and clipvalue; Keras clips one "
                             "way: expected one of them")
        if not 0 < self.decay_rate <= 1:
            raise ValueError(f"[optimizer] decay_rate must be in (0, 1], got {self.decay_rate!r}")


@dataclass(eq=True)
class TrainSection(_Table):
    """``[train]``: epochs and steps, where to start from, precision, Keras metrics to log."""

    SECTION = "train"
    epochs: int = 40
    steps_per_epoch: int = 100
    early_stopping_patience: int = 0
    mixed_precision: bool = False
    fine_tune_from: Any = None
    widen: bool = False
    backbone_from: Any = None
    progress: bool = True
    metrics: list = field(default_factory=list)

    def _check(self):
        for key, minimum in (("epochs", 1), ("steps_per_epoch", 1),
                             ("early_stopping_patience", 0)):
            if not _is_count(getattr(self, key), minimum=minimum):
                raise ValueError(f"[train] {key} must be a whole number >= {minimum}, got "
                                 f"{getattr(self, key)!r}")
        for key in ("widen", "mixed_precision", "progress"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"[train] {key} must be true or false, got "
                                 f"{getattr(self, key)!r}")
        if self.backbone_from and self.fine_tune_from:
            raise ValueError("[train] sets both fine_tune_from (the whole model) and "
                             "backbone_from (all but the head); expected one of them")
        if not isinstance(self.metrics, (list, tuple)) or not all(
                isinstance(m, (str, dict)) for m in self.metrics):
            raise ValueError(f"[train] metrics must be a list of metric names (or tables with "
                             f"name and args), got {self.metrics!r}")


@dataclass(eq=True)
class OutputSection(_Table):
    """``[output]``: the run folder, the per-epoch sample picture, whether to finalize."""

    SECTION = "output"
    dir: str = "runs/model"
    sample_image: Any = None
    sample_diameter: float = 0.0
    finalize: bool = True
    sample_tile_size: int = 0

    def _check(self):
        if not _is_number(self.sample_diameter, minimum=0):
            raise ValueError(f"[output] sample_diameter must be the sample image's median "
                             f"nucleus diameter in pixels (or 0 for unknown), got "
                             f"{self.sample_diameter!r}")
        if not _is_count(self.sample_tile_size):
            raise ValueError(f"[output] sample_tile_size must be a whole number of pixels "
                             f"(0: whole images, no tiling), got {self.sample_tile_size!r}")
        samples = self.sample_image if isinstance(self.sample_image, (list, tuple)) else [
            self.sample_image]
        if not all(s is None or isinstance(s, (str, os.PathLike)) for s in samples):
            raise ValueError(f"[output] sample_image must be an image path or a list of them, "
                             f"got {self.sample_image!r}")


SECTIONS = {"model": ModelSection, "data": DataSection, "loss": LossSection,
            "optimizer": OptimizerSection, "train": TrainSection, "output": OutputSection}


@dataclass(eq=True)
class Recipe(_Table):
    """A training recipe: typed tables, checked when built and whenever a value changes.

    ``load_recipe`` builds one from a TOML file or a dict; tables are also
    reachable by key, as in the TOML (``recipe["data"]["crop_size"]``), and
    assigning a dict to a table updates it. Checks that span tables (a
    ``[postprocess]`` parameter against the ``[data] target``'s
    post-processing, ``widen`` without ``fine_tune_from``) run in
    ``check``, which ``load_recipe`` and ``nuclib.train.train`` call.

    Example:
        >>> recipe = Recipe(data={"train": "d/train", "crop_size": 128})
        >>> recipe.data.crop_size, recipe["optimizer"]["schedule"]
        (128, 'cosine')
        >>> recipe.data.crop_size = 0
        Traceback (most recent call last):
        ...
        ValueError: [data] crop_size must be a whole number >= 1, got 0
    """

    SECTION = "recipe"
    name: str = "model"
    description: str = ""
    seed: int = 0
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    loss: LossSection = field(default_factory=LossSection)
    optimizer: OptimizerSection = field(default_factory=OptimizerSection)
    train: TrainSection = field(default_factory=TrainSection)
    output: OutputSection = field(default_factory=OutputSection)
    postprocess: dict = field(default_factory=dict)

    def __setattr__(self, key, value):
        if key in SECTIONS and not isinstance(value, SECTIONS[key]):
            value = _section(key, value, self.__dict__.get(key))
        super().__setattr__(key, value)

    def _check(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"recipe name must be a non-empty string, got {self.name!r}")
        if not _is_count(self.seed):
            raise ValueError(f"recipe seed must be a whole number >= 0, got {self.seed!r}")
        if not isinstance(self.postprocess, dict):
            raise ValueError(f"recipe section [postprocess] must be a table, got "
                             f"{self.postprocess!r}")
        _check_postprocess(self)

    def check(self) -> "Recipe":
        """Check what spans tables; return the recipe.

        Raises:
            ValueError: no ``[data] train``, ``widen`` without
                ``fine_tune_from``, or a ``[postprocess]`` key or value the
                target's post-processing refuses.
        """
        if not self.data.train:
            raise ValueError("recipe has no [data] train folder (or file list)")
        if self.train.widen and not self.train.fine_tune_from:
            raise ValueError("[train] widen = true needs [train] fine_tune_from: the narrower "
                             "trained model to widen into [model]")
        _check_postprocess(self)  # again: [data] target may have changed since
        return self

    def to_dict(self) -> dict:
        """The recipe as nested plain dicts and lists (JSON- and TOML-friendly)."""
        out = {k: getattr(self, k) for k in self.keys()}
        out = {k: v.to_dict() if isinstance(v, _Table) else copy.deepcopy(v)
               for k, v in out.items()}
        out["data"]["normalize"] = list(out["data"]["normalize"])
        return out

    def pairs(self, split: str = "train") -> list:
        """``(image, label)`` path pairs of ``[data] train`` or ``val``, at most ``max_images``.

        Example:
            >>> Recipe(data={"train": [["a.png", "a_labels.png"]]}).pairs("train")
            [(PosixPath('a.png'), PosixPath('a_labels.png'))]
        """
        pairs = read_pairs(self.data[split])
        return pairs[: self.data.max_images] if self.data.max_images else pairs

    def segmenter_config(self):
        """The settings a model trained by this recipe runs with: the one mapping from recipe
        to ``SegmenterConfig`` (head, channels, normalization, nucleus size, post-processing).

        Example:
            >>> Recipe(data={"train": "d", "target": "binary", "diameter": 20}).segmenter_config().diameter
            20.0
        """
        from nuclib.config import SegmenterConfig

        low, high = self.data.normalize
        settings = SegmenterConfig(name=self.name, head=self.data.target,
                                   input_channels=self.model.input_channels,
                                   normalize={"low": low, "high": high},
                                   diameter=self.data.diameter or None)
        if self.postprocess:
            settings.postprocess = dict(self.postprocess)
        return settings


def _section(key: str, value, current):
    """``value`` as the table ``key``: a dict updates ``current`` (else the defaults)."""
    if not isinstance(value, dict) and not isinstance(value, _Table):
        raise ValueError(f"recipe section {key!r} must be a table, got {value!r}")
    table = copy.deepcopy(current) if current is not None else SECTIONS[key]()
    table.update(dict(value.items()) if isinstance(value, _Table) else value)
    return table


def check_pairs_source(source, what: str) -> None:
    """Check a ``[data] train`` / ``val`` value's type: a folder or file path, or a list of pairs.

    Example:
        >>> check_pairs_source([["a.png"]], "[data] train")
        Traceback (most recent call last):
        ...
        ValueError: [data] train lists ['a.png']; expected [image, label] path pairs
    """
    if source is None or isinstance(source, (str, os.PathLike)):
        return
    if not isinstance(source, (list, tuple)):
        raise ValueError(f"{what} must be a folder, a file listing image/label pairs or a "
                         f"list of [image, label] pairs, got {source!r}")
    for pair in source:
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2
                and all(isinstance(p, (str, os.PathLike)) for p in pair)):
            raise ValueError(f"{what} lists {pair!r}; expected [image, label] path pairs")


def read_pairs(source) -> list:
    """``(image, label)`` path pairs from a folder, a pair-list file or a list of pairs.

    - a folder: ``nuclib.data.folder_pairs`` (``images/`` and ``labels/``
      matched by name);
    - a text file: one ``image label`` pair a line (whitespace or a comma
      between them; ``#`` starts a comment), paths relative to the file;
    - a list of ``[image, label]`` pairs.

    Raises:
        FileNotFoundError: a listed file or the source itself does not exist.
        ValueError: a line that is not two paths.

    Example:
        >>> read_pairs([("a.png", "a_labels.png")])
        [(PosixPath('a.png'), PosixPath('a_labels.png'))]
    """
    if isinstance(source, (list, tuple)):
        return [(Path(image), Path(label)) for image, label in source]
    path = Path(source)
    if path.is_dir():
        from nuclib.data.io import folder_pairs

        return folder_pairs(path)
    if not path.is_file():
        raise FileNotFoundError(f"training data not found: {path}; expected a folder with "
                                "images/ and labels/, or a file listing image/label pairs")
    pairs = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].replace(",", " ").strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"{path}:{number}: {line!r} is not an image and a label path; "
                             "expected one pair a line")
        pair = tuple((path.parent / p).resolve() for p in parts)
        missing = [str(p) for p in pair if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"{path}:{number}: {missing[0]} does not exist")
        pairs.append(pair)
    return pairs


def __getattr__(name: str):
    # ``DEFAULTS``: every key of every table with its default (what a TOML recipe may set);
    # built on first use, since checking a table imports the data pipeline.
    if name == "DEFAULTS":
        return Recipe().to_dict()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

# Paths that are resolved relative to the recipe file.
_PATH_KEYS = (("data", "train"), ("data", "val"), ("output", "dir"), ("output", "sample_image"),
              ("train", "fine_tune_from"), ("train", "backbone_from"))


def load_recipe(recipe) -> Recipe:
    """Read a recipe (TOML path, dict or ``Recipe``), fill defaults, resolve relative paths.

    Relative data and output paths in a TOML file are relative to the file
    (for a dict: to the current directory) and are made absolute. Tables are
    merged one level deep over the defaults; ``[model] args``, ``[loss]
    args`` and the ``[postprocess]`` table take any keys.

    Args:
        recipe: path of a TOML recipe, or a dict with the same sections, or a
            ``Recipe`` (checked again and copied).

    Returns:
        A new, checked ``Recipe`` (``name``, ``seed``, ``model``, ``data``,
        ``loss``, ``optimizer``, ``train``, ``output``, ``postprocess``).

    Raises:
        FileNotFoundError: the recipe file does not exist.
        ValueError: unknown sections or keys (typos are errors, not ignored),
            a section that is not a table, a bad value, or no ``[data] train``.

    Example:
        >>> r = load_recipe({"name": "x", "data": {"train": "d/train"}})
        >>> r["data"]["crop_size"], r.data.target
        (256, 'three_class')
    """
    base = Path.cwd()
    if isinstance(recipe, (str, Path)):
        path = Path(recipe)
        if not path.is_file():
            raise FileNotFoundError(f"recipe not found: {path}")
        with open(path, "rb") as fh:
            user = tomllib.load(fh)
        base = path.resolve().parent
    elif isinstance(recipe, Recipe):
        user = recipe.to_dict()
    else:
        user = copy.deepcopy(dict(recipe))
    unknown = sorted(set(user) - set(Recipe().keys()))
    if unknown:
        raise ValueError(f"unknown recipe section {unknown[0]!r}; expected one of "
                         f"{sorted(Recipe().keys())}")
    loaded = Recipe(**user)
    for section, key in _PATH_KEYS:
        if loaded[section][key]:
            loaded[section][key] = _resolved(loaded[section][key], key, base)
    return loaded.check()


def _resolved(value, key: str, base: Path):
    """A recipe path made absolute against ``base``; lists of paths (or pairs) item by item."""
    if isinstance(value, (list, tuple)):
        return [_resolved(v, key, base) for v in value]
    if not isinstance(value, (str, os.PathLike)) or Path(value).is_absolute():
        return value
    resolved = (base / value).resolve()
    # A model to start from may also be a zoo name or ``hf://`` URL, not a path.
    if (key not in ("fine_tune_from", "backbone_from") or resolved.exists()
            or looks_like_a_file(str(value))):
        return str(resolved)
    return value


def _check_postprocess(recipe: Recipe) -> None:
    """Bad ``[postprocess]`` keys or values fail at load time, not after hours of training."""
    from nuclib.postprocess.thresholds import KINDS, check_postprocess

    kind = recipe.data.target
    if kind not in KINDS or not recipe.postprocess:
        return
    try:
        check_postprocess(kind, recipe.postprocess)
    except ValueError as err:
        raise ValueError(f"recipe section [postprocess]: {err}") from None


def build_model(recipe: Recipe):
    """Instantiate the recipe's model factory with its arguments.

    ``input_shape`` (``(None, None, input_channels)``), ``head`` (the
    ``[data] target``) and ``name`` (the recipe name with ``-`` replaced by
    ``_``) are passed unless ``[model] args`` sets them.

    Args:
        recipe: a recipe as returned by ``load_recipe``.

    Returns:
        The ``keras.Model`` built by ``nuclib.models.FACTORIES[factory]``.

    Raises:
        ValueError: the factory is not in ``nuclib.models.FACTORIES``.

    Example:
        >>> recipe = load_recipe({"name": "tiny", "data": {"train": "d/train"},
        ...                       "model": {"args": {"depth": 2, "filters": 4}}})
        >>> build_model(recipe).name
        'tiny'
    """
    from nuclib import models

    factory = recipe["model"]["factory"]
    if factory not in models.FACTORIES:
        raise ValueError(f"unknown model factory {factory!r}; expected one of "
                         f"{sorted(models.FACTORIES)}")
    args = dict(recipe["model"]["args"])
    args.setdefault("input_shape", (None, None, recipe["model"]["input_channels"]))
    args.setdefault("head", recipe["data"]["target"])
    args.setdefault("name", recipe["name"].replace("-", "_"))
    return models.FACTORIES[factory](**args)


def build_loss(recipe: Recipe):
    """Instantiate the recipe's loss from ``nuclib.losses`` by class name.

    Args:
        recipe: a recipe as returned by ``load_recipe``; ``[loss] name`` is
            looked up in ``nuclib.losses`` and called with ``[loss] args``.

    Returns:
        The loss object.

    Raises:
        ValueError: not the name of a loss class in ``nuclib.losses``.

    Example:
        >>> recipe = load_recipe({"data": {"train": "d/train"}, "loss": {"name": "Dice"}})
        >>> type(build_loss(recipe)).__name__
        'Dice'
    """
    import keras

    from nuclib import losses

    # Only concrete loss classes: not the functional twins, not the abstract bases.
    known = sorted(n for n in losses.__all__
                   if isinstance(getattr(losses, n), type)
                   and issubclass(getattr(losses, n), keras.losses.Loss)
                   and n not in ("NuclibLoss", "CombinedLoss"))
    name = recipe["loss"]["name"]
    if name not in known:
        raise ValueError(f"unknown loss {name!r}; expected one of {known}")
    return getattr(losses, name)(**recipe["loss"].get("args", {}))


def build_metrics(recipe: Recipe) -> list:
    """The Keras metrics that ``[train] metrics`` names, logged beside the loss every epoch.

    Each entry is a name or a table ``{name = ..., args = {...}}``. A name is
    looked up first among nuclib's training metrics (``nuclib.metrics.training``:
    ``DiceCoefficient``, ``JaccardIndex``, ... which skip padded pixels and
    understand every head's targets), then among Keras' own
    (``keras.metrics.get``).

    Args:
        recipe: a recipe as returned by ``load_recipe``.

    Returns:
        A list of ``keras.metrics.Metric`` objects (empty when none are named).

    Raises:
        ValueError: a name neither nuclib nor Keras knows.

    Example:
        >>> recipe = load_recipe({"data": {"train": "d/train"},
        ...                       "train": {"metrics": [{"name": "DiceCoefficient",
        ...                                              "args": {"class_id": 1}}]}})
        >>> [type(m).__name__ for m in build_metrics(recipe)]
        ['DiceCoefficient']
    """
    import keras

    from nuclib.metrics import training

    metrics = []
    for entry in recipe.train.metrics:
        name, args = (entry, {}) if isinstance(entry, str) else (entry.get("name"),
                                                                 entry.get("args", {}))
        known = getattr(training, str(name), None)
        if isinstance(known, type) and issubclass(known, keras.metrics.Metric):
            metrics.append(known(**args))
            continue
        try:
            metric = keras.metrics.get(name)
        except (ValueError, TypeError):
            ours = sorted(n for n in dir(training) if isinstance(getattr(training, n), type)
                          and issubclass(getattr(training, n), keras.metrics.Metric)
                          and not n.startswith("_"))
            raise ValueError(f"unknown [train] metrics entry {name!r}; expected one of nuclib's "
                             f"{ours} or a Keras metric name such as 'accuracy'") from None
        metrics.append(type(metric)(**args) if args and isinstance(metric, keras.metrics.Metric)
                       else metric)
    return metrics


def looks_like_a_file(value: str) -> bool:
    """A ``fine_tune_from`` that can only be a file: a ``.keras`` name or one with a folder.

    Example:
        >>> looks_like_a_file("runs/a/best.keras"), looks_like_a_file("dsb-3class")
        (True, False)
    """
    return not value.startswith("hf://") and (value.endswith(".keras") or "/" in value
                                              or os.sep in value)


def build_optimizer(recipe: Recipe):
    """The recipe's optimizer, with its learning-rate schedule and gradient clipping.

    ``[optimizer] schedule``: ``"cosine"`` decays from ``learning_rate`` to
    ``min_learning_rate`` over all ``epochs * steps_per_epoch`` steps;
    ``"exponential"`` multiplies it by ``decay_rate`` every ``decay_steps``
    steps (0: one epoch's steps), smoothly; ``"plateau"`` and ``"constant"``
    start at ``learning_rate`` (``train`` adds ReduceLROnPlateau for
    ``"plateau"``). ``clipnorm`` or ``clipvalue`` > 0 (one of them) clips
    each gradient's norm or values.

    Args:
        recipe: a recipe as returned by ``load_recipe``; ``[optimizer] name``
            is any Keras optimizer identifier (``"adam"``, ``"sgd"``, ...).

    Returns:
        A ``keras.optimizers.Optimizer``.

    Raises:
        ValueError: an unknown optimizer name.

    Example:
        >>> recipe = load_recipe({"data": {"train": "d/train"},
        ...                       "optimizer": {"schedule": "exponential", "clipnorm": 1.0}})
        >>> optimizer = build_optimizer(recipe)
        >>> type(optimizer).__name__, optimizer.clipnorm
        ('Adam', 1.0)
    """
    import keras

    opt, t = recipe["optimizer"], recipe["train"]
    total_steps = t["epochs"] * t["steps_per_epoch"]
    rate = opt["learning_rate"]
    if opt["schedule"] == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(
            rate, decay_steps=total_steps, alpha=opt["min_learning_rate"] / rate)
    elif opt["schedule"] == "exponential":
        rate = keras.optimizers.schedules.ExponentialDecay(
            rate, decay_steps=opt["decay_steps"] or t["steps_per_epoch"],
            decay_rate=opt["decay_rate"])
    clipping = {key: float(opt[key]) for key in ("clipnorm", "clipvalue") if opt[key]}
    try:
        return keras.optimizers.get({"class_name": opt["name"],
                                     "config": {"learning_rate": rate, **clipping}})
    except ValueError as err:
        if "Could not interpret" not in str(err):
            raise
        raise ValueError(f"unknown [optimizer] name {opt['name']!r}; expected a Keras "
                         "optimizer such as 'adam', 'adamw', 'sgd' or 'rmsprop'") from None
