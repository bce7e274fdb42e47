"""``tf.data`` pipelines (or Keras ``PyDataset`` loaders) that feed (image, target) batches
to ``model.fit``.

Images are decoded and normalized once and kept in memory (``cache=True``),
cropped in NumPy (cheap slicing), then augmented and turned into targets
inside the TensorFlow graph, with parallel map and prefetch so both cores
stay busy. ``make_validation_dataset`` yields every pixel exactly once, as
whole images or as a fixed grid of tiles, without augmentation.

On the JAX and PyTorch backends (or with ``loader="pydataset"``) the same
crops come from a ``keras.utils.PyDataset`` (``ArrayBatches``) instead: it
augments each batch eagerly with the same layers and computes the targets
with NumPy twins of the graph functions (``labels_to_target_np``), so
training needs no TensorFlow.

Targets are integer class maps ``(N, H, W, 1)``: three-class 0 background,
1 interior, 2 boundary (the inner one-pixel ring of each nucleus, equal to
``targets.three_class(labels, boundary="inner")``); binary 0/1; and ``-1``
on padded pixels, which every nuclib loss ignores.

Example:
    >>> from nuclib import data
    >>> pairs = data.folder_pairs("../shared/data/dsb2018/train")      # doctest: +SKIP
    >>> ds = data.make_dataset(pairs, crop_size=256, batch_size=8,
    ...                        augment=data.default_augment(seed=0))    # doctest: +SKIP
"""

from __future__ import annotations

import atexit
import itertools
import os
import threading
import time
import weakref
from pathlib import Path
from typing import Callable, Sequence

import keras
import numpy as np

from nuclib.data._lazy_tf import tf
from nuclib.data.io import read_pair
from nuclib.data.normalize import prepare_image
from nuclib.data.targets import BOUNDARY_MODES
from nuclib.heads import HEADS
from nuclib.labels import IGNORE_LABEL

SAMPLING_MODES = ("image", "nucleus")
LOADERS = ("tf.data", "pydataset")


def __getattr__(name: str):
    # Old names of what ``nuclib.heads`` and ``nuclib.labels`` now define once.
    if name in ("TARGET_KINDS", "IGNORE"):
        import warnings

        new = {"TARGET_KINDS": "nuclib.heads.HEADS", "IGNORE": "nuclib.labels.IGNORE_LABEL"}
        warnings.warn(f"nuclib.data.pipeline.{name} is deprecated; use {new[name]}",
                      DeprecationWarning, stacklevel=2)
        return HEADS if name == "TARGET_KINDS" else IGNORE_LABEL
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def target_options(boundary: str = "inner", boundary_width: int = 1, expand: int = 0,
                   min_size: int = 0) -> dict | None:
    """The shape of the three-class (and binary) targets, checked; None for the default.

    The default (the inner one-pixel ring of each nucleus is boundary,
    nothing grown or dropped) is computed inside the ``tf.data`` graph.
    Other shapes, the variants of the unet4nuclei experiments, are computed
    by ``nuclib.data.targets.three_class`` (``targets.binary`` for the
    binary head, which only drops small objects) on the input threads.

    Args:
        boundary: ``"inner"``, ``"outer"`` or ``"thick"`` (see ``targets.three_class``).
        boundary_width: boundary width in pixels.
        expand: grow every nucleus by this many pixels first.
        min_size: drop nuclei of fewer pixels first.

    Returns:
        ``None`` for the default shape, else the keyword arguments of
        ``targets.three_class`` (``boundary``, ``width``, ``expand``, ``min_size``).

    Raises:
        ValueError: an unknown boundary mode or a bad number.

    Example:
        >>> target_options(), target_options(boundary="thick")
        (None, {'boundary': 'thick', 'width': 1, 'expand': 0, 'min_size': 0})
    """
    if boundary not in BOUNDARY_MODES:
        raise ValueError(f"unknown boundary {boundary!r}; expected one of {BOUNDARY_MODES}")
    for name, value, minimum in (("boundary_width", boundary_width, 1), ("expand", expand, 0),
                                 ("min_size", min_size, 0)):
        if isinstance(value, bool) or not float(value).is_integer() or value < minimum:
            raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    options = {"boundary": boundary, "width": int(boundary_width), "expand": int(expand),
               "min_size": int(min_size)}
    return None if options == {"boundary": "inner", "width": 1, "expand": 0,
                               "min_size": 0} else options


def classes_with_options_np(labels, target: str, options: dict) -> np.ndarray:
    """int32 ``(N, H, W, 1)`` three-class (or binary) targets of a label batch, shaped by
    ``options`` (``target_options``); ``-1`` where labels are negative.

    Args:
        labels: int ``(N, H, W, 1)`` instance labels, ``-1`` for padding.
        target: ``"binary"`` (only ``min_size`` applies), else three classes.
        options: ``target_options``' dict.

    Returns:
        int32 ``(N, H, W, 1)``: 0 background, 1 interior (foreground), 2
        boundary, ``-1`` on padding.

    Example:
        >>> labels = np.array([[[[0], [3], [3], [3], [-1]]]])
        >>> classes_with_options_np(labels, "three_class", {"boundary": "thick", "width": 1,
        ...                                                 "expand": 0, "min_size": 0}).ravel()
        array([ 2,  2,  1,  2, -1], dtype=int32)
    """
    from nuclib.data import targets

    out = []
    for one in np.asarray(labels)[..., 0]:
        known = one >= 0
        # Padding is neither nucleus nor background: the target there is ignored anyway.
        clean = np.where(known, one, 0)
        if target == "binary":
            classes = targets.binary(clean, min_size=options["min_size"])
        else:
            classes = targets.three_class(clean, **options)
        out.append(np.where(known, classes.astype(np.int32), IGNORE_LABEL))
    return np.stack(out)[..., None].astype(np.int32)


# ----------------------------------------------------------------------------- exit
# tf.data runs the Python code of these pipelines (the crop generators and the
# NumPy targets) on its own threads, through py_funcs. If a script ends while
# a pipeline is still prefetching, Python starts finalizing with a py_func
# under way. The thread running it must take the GIL back, and Python (3.11:
# ``take_gil`` -> ``PyThread_exit_thread``) ends any thread that does so once
# finalization has begun. The TF kernel therefore never completes, and the
# iterator's destructor, run when the script's globals are cleared, waits for
# it forever. ``atexit`` hooks run before finalization, while those threads can
# still take the GIL: this one stops the generators and waits until no
# pipeline code is running.

class _ExitGuard:
    """Stops nuclib's ``tf.data`` Python code at interpreter exit, before finalization.

    ``generator(factory)`` wraps a ``from_generator`` factory and ``function(fn)``
    a ``tf.numpy_function`` body: both count the threads inside them, and
    after ``drain`` (the ``atexit`` hook, registered on first use) generators
    end and functions raise at once, so that every pipeline runs dry.
    """

    SETTLE_S = 0.05  # quiet time that covers TensorFlow's own wrapper code around our calls
    LIMIT_S = 30.0   # never delay an exit by more than this

    def __init__(self):
        self._lock = threading.Lock()
        self._registered = False
        self.exiting = False
        self.busy = 0
        self.last = 0.0
        self._live = weakref.WeakSet()  # generators tf.data has not finalized yet

    def _enter(self):
        with self._lock:
            if not self._registered:
                atexit.register(self.drain)
                self._registered = True
            self.busy += 1
            return self.exiting

    def _leave(self):
        with self._lock:
            self.busy -= 1
            self.last = time.monotonic()

    def generator(self, factory: Callable) -> Callable:
        """``factory`` whose iterators stop (end of sequence) once the interpreter exits."""
        def start(*args):
            self._enter()
            try:
                gen = self._until_exit(factory(*args))
                with self._lock:
                    self._live.add(gen)
                return gen
            finally:
                self._leave()
        return start

    def _until_exit(self, items):
        while True:
            exiting = self._enter()
            try:
                if exiting:
                    return
                item = next(items, _END)
            finally:
                self._leave()
            if item is _END:
                return
            yield item

    def function(self, fn: Callable) -> Callable:
        """``fn`` for ``tf.numpy_function``, refused (quickly) once the interpreter exits."""
        def run(*args):
            exiting = self._enter()
            try:
                if exiting:
                    raise RuntimeError("Python is exiting; nuclib's input pipeline has stopped")
                return fn(*args)
            finally:
                self._leave()
        return run

    def drain(self) -> None:
        """Stop every pipeline and wait until none runs nuclib code (at most ``LIMIT_S``)."""
        with self._lock:
            self.exiting = True
        deadline = time.monotonic() + self.LIMIT_S
        while time.monotonic() < deadline:
            with self._lock:
                idle = self.busy == 0
                settled = time.monotonic() - self.last >= self.SETTLE_S
                done = not self._live
            if idle and (done or settled):
                return
            time.sleep(0.01)  # releases the GIL: the pipelines' threads finish their calls


_END = object()
_EXIT_GUARD = _ExitGuard()


def _preprocess(channels: int, preprocess: Callable | None) -> Callable:
    return preprocess or (lambda im: prepare_image(im, channels=channels))


def _load_one(image_path, label_path, prep: Callable, channels: int | None):
    """Read, normalize and check one pair; errors name the files."""
    image, labels = read_pair(image_path, label_path)
    x = np.asarray(prep(image))
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3 or x.shape[:2] != labels.shape:
        raise ValueError(f"preprocessing {image_path} gave shape {x.shape}; expected "
                         f"{labels.shape + (channels or 'C',)} (HxWxC, the labels' size)")
    if channels is not None and x.shape[2] != channels:
        raise ValueError(f"preprocessing {image_path} gave {x.shape[2]} channels; expected "
                         f"{channels} like the other images")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"preprocessing {image_path} gave dtype {x.dtype}; expected float32")
    x = x.astype(np.float32, copy=False)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"preprocessing {image_path} gave NaN or infinite values")
    return x, labels


def load_pairs(pairs, *, channels: int = 1, preprocess: Callable | None = None,
               progress: bool = True):
    """Read and normalize every (image, label) pair once.

    Args:
        pairs: (image_path, label_path) pairs, e.g. from ``folder_pairs``.
        channels: model input channels (1 or 3), passed to ``prepare_image``.
        preprocess: image → float32 HxWxC function; default ``prepare_image``.
        progress: show a progress bar.

    Returns:
        Two lists: float32 HxWxC images and int32 HxW labels.

    Raises:
        ValueError: unreadable files, an image and its labels of different
            sizes, or a preprocessing result of the wrong shape, channel
            count, dtype or with non-finite values (files named).

    Example:
        >>> images, labels = load_pairs(folder_pairs("dsb2018/val")[:4])   # doctest: +SKIP
    """
    from nuclib.progress import progress_bar

    prep = _preprocess(channels, preprocess)
    images, labels = [], []
    expected = channels if preprocess is None else None
    for image_path, label_path in progress_bar(list(pairs), desc="loading", unit="image",
                                                   enabled=progress):
        x, lab = _load_one(image_path, label_path, prep, expected)
        expected = x.shape[2]
        images.append(x)
        labels.append(lab)
    return images, labels


def _random_crop(image, labels, size: int, rng: np.random.Generator, centre=None):
    """Crop (or pad with ignored pixels) to ``size`` x ``size``, at random or around a pixel.

    With ``centre`` (row, col), the crop is drawn among those that contain it.
    """
    h, w = labels.shape
    ph, pw = max(size - h, 0), max(size - w, 0)
    if ph or pw:
        mode = "reflect" if min(h, w) > 1 else "edge"
        image = np.pad(image, ((0, ph), (0, pw), (0, 0)), mode=mode)
        labels = np.pad(labels, ((0, ph), (0, pw)), constant_values=IGNORE_LABEL)
        h, w = labels.shape
    if centre is None:
        y = rng.integers(0, h - size + 1)
        x = rng.integers(0, w - size + 1)
    else:
        cy, cx = centre
        y = rng.integers(max(cy - size + 1, 0), min(cy, h - size) + 1)
        x = rng.integers(max(cx - size + 1, 0), min(cx, w - size) + 1)
    return image[y:y + size, x:x + size], labels[y:y + size, x:x + size]


def nucleus_centres(labels) -> np.ndarray:
    """The pixel nearest to the centroid of every nucleus, as ``(N, 2)`` int rows / columns.

    Args:
        labels: HxW instance labels (0 and negative values are not nuclei).

    Returns:
        int64 array with one ``(row, col)`` per nucleus, in id order.

    Example:
        >>> lab = np.zeros((5, 6), np.int32); lab[0:3, 0:3] = 4; lab[4, 5] = 9
        >>> nucleus_centres(lab).tolist()
        [[1, 1], [4, 5]]
    """
    labels = np.asarray(labels)
    ids = labels.ravel()
    inside = ids > 0
    if not inside.any():
        return np.zeros((0, 2), np.int64)
    # Compact the (possibly huge, sparse) ids before counting.
    _, index = np.unique(ids[inside], return_inverse=True)
    rows, cols = np.divmod(np.flatnonzero(inside), labels.shape[1])
    count = np.bincount(index)
    centre = np.stack([np.bincount(index, rows) / count, np.bincount(index, cols) / count], 1)
    return np.rint(centre).astype(np.int64)


def pad_to_multiple(image, labels, multiple: int):
    """Pad image (symmetric reflection) and labels (``-1``) at the bottom / right so that
    height and width are multiples of ``multiple``.

    Args:
        image: HxWxC array.
        labels: HxW array.
        multiple: e.g. ``2 ** depth`` of a U-Net; 1 pads nothing.

    Returns:
        ``(image, labels)``, padded.

    Example:
        >>> im, lab = pad_to_multiple(np.zeros((5, 6, 1)), np.ones((5, 6), np.int32), 4)
        >>> im.shape, int(lab[-1, -1])
        ((8, 8, 1), -1)
    """
    h, w = labels.shape
    ph, pw = -h % multiple, -w % multiple
    if not (ph or pw):
        return image, labels
    image = np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="symmetric")
    labels = np.pad(labels, ((0, ph), (0, pw)), constant_values=IGNORE_LABEL)
    return image, labels


def inner_boundary_tf(labels):
    """TF twin of ``targets.boundaries(labels, mode="inner")`` for ``(N, H, W, 1)`` labels.

    A labelled pixel is boundary if a 4-neighbour has another id; ignored
    (negative) neighbours and the image border do not count.

    Args:
        labels: int ``(N, H, W, 1)`` instance labels.

    Returns:
        bool tensor of the same shape.

    Example:
        >>> edge = inner_boundary_tf(tf.constant([[[[1], [1], [2], [2]]]]))
        >>> edge.numpy().ravel().astype(int).tolist()
        [0, 1, 1, 0]
    """
    padded = tf.pad(labels, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
    h, w = tf.shape(labels)[1], tf.shape(labels)[2]
    edge = tf.zeros_like(labels, dtype=tf.bool)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        neighbour = padded[:, dy:dy + h, dx:dx + w]
        edge |= (neighbour != labels) & (neighbour >= 0)
    return edge & (labels > 0)


def inner_boundary_np(labels) -> np.ndarray:
    """NumPy twin of ``inner_boundary_tf`` for ``(N, H, W, 1)`` labels (the same pixels).

    Example:
        >>> inner_boundary_np(np.array([[[[1], [1], [2], [2]]]])).ravel().astype(int).tolist()
        [0, 1, 1, 0]
    """
    labels = np.asarray(labels)
    padded = np.pad(labels, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="symmetric")
    h, w = labels.shape[1], labels.shape[2]
    edge = np.zeros(labels.shape, bool)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        neighbour = padded[:, dy:dy + h, dx:dx + w]
        edge |= (neighbour != labels) & (neighbour >= 0)
    return edge & (labels > 0)


def star_target_np(labels, n_rays: int = 32) -> np.ndarray:
    """NumPy twin of ``star_target_tf``: float32 ``(N, H, W, 1 + n_rays)``."""
    from nuclib.data.targets import star

    labels = np.asarray(labels, np.int32)
    return np.stack([star(one[..., 0], n_rays=n_rays) for one in labels]).astype(np.float32)


def distance_target_np(labels) -> np.ndarray:
    """NumPy twin of ``distance_target_tf``: float32 ``(N, H, W, 1)`` in [0, 1]."""
    from nuclib.data.targets import object_probability, star_distances

    labels = np.asarray(labels, np.int32)
    out = [object_probability(one, star_distances(one, 16))
           for one in np.maximum(labels[..., 0], 0)]
    return np.stack(out)[..., None].astype(np.float32)


def labels_to_target_np(labels, target: str, n_rays: int = 32,
                        options: dict | None = None) -> np.ndarray:
    """NumPy twin of ``labels_to_target_tf`` (the same values and dtypes), for loaders
    that run without TensorFlow.

    Example:
        >>> labels_to_target_np(np.array([[[[0], [3], [3], [3], [-1]]]]), "three_class").ravel()
        array([ 0,  2,  1,  1, -1], dtype=int32)
    """
    if target == "star":
        return star_target_np(labels, n_rays)
    if target == "three_class_distance":
        return np.concatenate([labels_to_target_np(labels, "three_class", options=options)
                               .astype(np.float32), distance_target_np(labels)], axis=-1)
    if options:
        return classes_with_options_np(labels, target, options)
    labels = np.asarray(labels).astype(np.int32, copy=False)
    if target == "binary":
        out = (labels > 0).astype(np.int32)
    else:
        out = np.where(labels > 0, 1, 0).astype(np.int32)
        out[inner_boundary_np(labels)] = 2
    return np.where(labels < 0, IGNORE_LABEL, out).astype(np.int32)


def star_target_tf(labels, n_rays: int = 32):
    """``(N, H, W, 1 + n_rays)`` float32 star targets (``targets.star``) of a label batch.

    The rays are marched by the compiled NumPy kernel through
    ``tf.numpy_function``: inside ``tf.data`` it runs on the input threads.

    Args:
        labels: int ``(N, H, W, 1)`` instance labels, ``-1`` for padding.
        n_rays: rays per pixel.

    Returns:
        float32 tensor ``(N, H, W, 1 + n_rays)``.

    Example:
        >>> out = star_target_tf(np.array([[[[0], [1], [1], [-1]]]]), n_rays=4)
        >>> tuple(out.shape), float(out[0, 0, 3, 0])
        ((1, 1, 4, 5), -1.0)
    """
    def batch(lab):
        return star_target_np(lab, n_rays)

    labels = tf.cast(labels, tf.int32)
    out = tf.numpy_function(_EXIT_GUARD.function(batch), [labels], tf.float32, stateful=False)
    return tf.ensure_shape(out, labels.shape[:-1] + (1 + int(n_rays),))


def distance_target_tf(labels):
    """``(N, H, W, 1)`` float32 normalized distances (``targets.object_probability``).

    Args:
        labels: int ``(N, H, W, 1)`` instance labels; negative ids count as background.

    Returns:
        float32 tensor of the same shape, in [0, 1].

    Example:
        >>> labels = np.zeros((1, 7, 7, 1), np.int32); labels[0, 1:6, 1:6] = 1
        >>> out = distance_target_tf(labels).numpy()
        >>> float(out[0, 3, 3, 0]), float(out[0, 0, 0, 0]), float(out[0, 1, 3, 0]) < 0.5
        (1.0, 0.0, True)
    """
    labels = tf.cast(labels, tf.int32)
    out = tf.numpy_function(_EXIT_GUARD.function(distance_target_np), [labels], tf.float32,
                            stateful=False)
    return tf.ensure_shape(out, labels.shape)


def labels_to_target_tf(labels, target: str, n_rays: int = 32, options: dict | None = None):
    """Training targets from ``(N, H, W, 1)`` instance labels (``-1`` = ignore).

    Args:
        labels: int ``(N, H, W, 1)`` instance labels, ``-1`` for padding.
        target: ``"three_class"`` (inner boundaries), ``"binary"``, ``"star"``
            or ``"three_class_distance"``.
        n_rays: rays of the ``"star"`` target.
        options: the classes' shape (``target_options``); None: the default,
            computed in the graph; otherwise by ``classes_with_options_np``.

    Returns:
        For ``"star"``, ``star_target_tf``'s float32 maps; for
        ``"three_class_distance"``, float32 ``(N, H, W, 2)``: the three-class
        target, then ``distance_target_tf``. Otherwise int32 ``(N, H, W, 1)``
        classes: 0 background, 1 interior (foreground
        for ``"binary"``), 2 boundary, ``-1`` where labels are negative. Any
        ``target`` other than ``"binary"`` gives three classes.

    Example:
        >>> labels = np.array([[[[0], [3], [3], [3], [-1]]]])
        >>> labels_to_target_tf(labels, "three_class").numpy().ravel().tolist()
        [0, 2, 1, 1, -1]
        >>> labels_to_target_tf(labels, "binary").numpy().ravel().tolist()
        [0, 1, 1, 1, -1]
    """
    if target == "star":
        return star_target_tf(labels, n_rays)
    if target == "three_class_distance":
        return tf.concat([tf.cast(labels_to_target_tf(labels, "three_class", options=options),
                                  tf.float32), distance_target_tf(labels)], axis=-1)
    labels = tf.cast(labels, tf.int32)
    if options:
        def batch(lab):
            return classes_with_options_np(lab, target, options)

        out = tf.numpy_function(_EXIT_GUARD.function(batch), [labels], tf.int32, stateful=False)
        return tf.ensure_shape(out, labels.shape)
    if target == "binary":
        out = tf.cast(labels > 0, tf.int32)
    else:
        out = tf.where(labels > 0, 1, 0)
        out = tf.where(inner_boundary_tf(labels), 2, out)
    return tf.where(labels < 0, IGNORE_LABEL, out)


class _Source:
    """Images and labels by index: all in memory (cache) or read on demand."""

    def __init__(self, pairs, data, channels, preprocess, progress, cache):
        self.prep = _preprocess(channels, preprocess)
        self.expected = channels if preprocess is None else None
        if data is not None:
            self.images, self.labels = data
            if len(self.images) != len(self.labels):
                raise ValueError(f"data holds {len(self.images)} images but "
                                 f"{len(self.labels)} label images; expected one per image")
            self.pairs = None
        elif cache:
            self.images, self.labels = load_pairs(pairs, channels=channels,
                                                  preprocess=preprocess, progress=progress)
            self.pairs = None
        else:
            self.pairs = [(Path(a), Path(b)) for a, b in pairs]
            first, _ = _load_one(*self.pairs[0], self.prep, self.expected) if self.pairs else (
                None, None)
            self.channels = None if first is None else first.shape[2]
        if self.pairs is None:
            self.channels = self.images[0].shape[-1] if self.images else None
            for i, (im, lab) in enumerate(zip(self.images, self.labels)):
                if (np.ndim(im) != 3 or im.shape[:2] != np.shape(lab)
                        or im.shape[2] != self.channels):
                    raise ValueError(f"data item {i}: image {np.shape(im)} and labels "
                                     f"{np.shape(lab)}; expected HxW{self.channels} and HxW")

    def __len__(self):
        return len(self.pairs) if self.pairs is not None else len(self.images)

    def __getitem__(self, i):
        if self.pairs is None:
            return self.images[i], self.labels[i]
        return _load_one(*self.pairs[i], self.prep, self.channels)


def _image_crops(source, size: int, seed, shuffle: bool, repeat: bool):
    """Generator factory: one random crop per image per pass."""
    def crops(seed=seed):
        rng = np.random.default_rng(seed)
        n = len(source)
        while True:
            for i in (rng.permutation(n) if shuffle else np.arange(n)):
                im, lab = _random_crop(*source[i], size, rng)
                yield im, lab[..., None]
            if not repeat:
                return
    return crops


def _nucleus_crops(source, size: int, seed, repeat: bool, uniform_fraction: float):
    """Generator factory: crops around nuclei drawn uniformly from all images' nuclei."""
    centres = [nucleus_centres(source[i][1]) for i in range(len(source))]
    counts = [len(found) for found in centres]
    owner = np.repeat(np.arange(len(source)), counts)  # the image of every nucleus
    first = np.concatenate([[0], np.cumsum(counts)])

    def crops(seed=seed):
        rng = np.random.default_rng(seed)
        n = len(source)
        drawn = 0
        while repeat or drawn < n:  # forever, or as many crops as images
            drawn += 1
            if not len(owner) or rng.random() < uniform_fraction:
                i, centre = int(rng.integers(n)), None
            else:
                k = int(rng.integers(len(owner)))
                i = int(owner[k])
                centre = centres[i][k - first[i]]
            im, lab = _random_crop(*source[i], size, rng, centre)
            yield im, lab[..., None]
    return crops


def _check_loader(loader: str | None) -> str:
    """``loader`` checked; None: ``"tf.data"`` on the TensorFlow backend, else ``"pydataset"``."""
    if loader is None:
        return "tf.data" if keras.backend.backend() == "tensorflow" else "pydataset"
    if loader not in LOADERS:
        raise ValueError(f"unknown loader {loader!r}; expected one of {LOADERS} or None")
    return loader


class ArrayBatches(keras.utils.PyDataset):
    """``(images, targets)`` batches as NumPy arrays, for every Keras backend.

    The loader ``make_dataset(..., loader="pydataset")`` returns: it stacks
    items from a generator factory (the same crop samplers the ``tf.data``
    pipeline uses), applies the joint augmentation to each batch eagerly and
    turns labels into targets with ``labels_to_target_np``. Finite datasets
    (``length`` batches) are drawn once, in order, and indexed; infinite
    ones hand out the next batch of the stream whatever the index, so with
    one worker a seed fixes every batch.

    Args:
        items: ``items(seed)`` → iterator of ``(HxWxC float32 image, HxWx1 labels)``.
        batch_size: items per batch (a finite dataset's last batch may be smaller).
        length: number of batches, or None for an endless stream.
        target, n_rays: as ``make_dataset``.
        augment: joint augmentation applied to ``{"images", "labels"}`` batches, or None.
        seed: the stream's seed (finite datasets without one are drawn anew
            after every epoch, like a ``tf.data`` pass).
        workers, use_multiprocessing, max_queue_size: ``keras.utils.PyDataset`` arguments.

    Example:
        >>> ds = make_dataset(data=(images, labels), crop_size=64, loader="pydataset",
        ...                   seed=0)                                      # doctest: +SKIP
        >>> x, y = ds[0]                                                   # doctest: +SKIP
    """

    def __init__(self, items: Callable, *, batch_size: int, length: int | None, target: str,
                 n_rays: int = 32, options: dict | None = None,
                 augment: Callable | None = None, seed: int | None = None,
                 workers: int = 1, use_multiprocessing: bool = False, max_queue_size: int = 10):
        super().__init__(workers=workers, use_multiprocessing=use_multiprocessing,
                         max_queue_size=max_queue_size)
        self.items = items
        self.batch_size = int(batch_size)
        self.length = None if length is None else int(length)
        self.target = target
        self.n_rays = int(n_rays)
        self.options = options
        self.augment = augment
        self.seed = seed
        # Finite datasets are indexed, so every worker must draw the same pass:
        # without a seed, pick one now (and a new one after every epoch).
        self._pass_seed = seed if seed is not None or length is None else _fresh_seed()
        self._origin_pid = os.getpid()
        self._restart()

    def _restart(self):
        self._lock = threading.Lock()
        self._stream = None
        self._stream_pid = None
        self._drawn = None

    def __getstate__(self):
        # Locks and generators do not pickle (worker processes); they restart there.
        state = dict(self.__dict__)
        state.update(_lock=None, _stream=None, _stream_pid=None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def num_batches(self):
        return self.length

    def __len__(self):
        if self.length is None:
            raise TypeError("an endless ArrayBatches (repeat=True) has no length; pass "
                            "steps_per_epoch to fit")
        return self.length

    def __iter__(self):
        for i in (itertools.count() if self.length is None else range(self.length)):
            yield self[i]

    @staticmethod
    def _take(stream, n):
        batch = list(itertools.islice(stream, n))
        return (np.stack([im for im, _ in batch]).astype(np.float32, copy=False),
                np.stack([lab for _, lab in batch]).astype(np.int32, copy=False))

    def _raw(self, index):
        with self._lock:
            if self.length is not None:
                if self._drawn is None:
                    stream = self.items(self._pass_seed)
                    self._drawn = [self._take(stream, self.batch_size)
                                   for _ in range(self.length)]
                return self._drawn[index]
            pid = os.getpid()
            if self._stream is None or self._stream_pid != pid:
                seed = self.seed
                if pid != self._origin_pid and seed is not None:
                    # A worker process: its own stream, not a copy of the parent's.
                    seed = int(np.random.SeedSequence([seed, pid]).generate_state(1)[0])
                self._stream, self._stream_pid = self.items(seed), pid
            return self._take(self._stream, self.batch_size)

    def __getitem__(self, index):
        if self.length is not None and not -self.length <= index < self.length:
            raise IndexError(f"batch {index} of {self.length}")
        images, labels = self._raw(index)
        if self.augment is not None:
            out = self.augment({"images": images, "labels": labels}, training=True)
            images = np.asarray(keras.ops.convert_to_numpy(out["images"]), np.float32)
            labels = np.asarray(keras.ops.convert_to_numpy(out["labels"]))
        return images, labels_to_target_np(labels, self.target, self.n_rays, self.options)

    def on_epoch_end(self):
        if self.length is not None and self.seed is None:
            with self._lock:  # a new random pass, like tf.data's next iteration
                self._pass_seed, self._drawn = _fresh_seed(), None


def _fresh_seed() -> int:
    return int(np.random.SeedSequence().generate_state(1)[0])


def make_dataset(pairs: Sequence = (), *, crop_size: int | None = 256, batch_size: int = 8,
                 target: str = "three_class", augment: Callable | None = None,
                 shuffle: bool = True, repeat: bool = True, channels: int = 1,
                 preprocess: Callable | None = None, seed: int | None = None,
                 data=None, progress: bool = True, cache: bool = True,
                 pad_multiple: int = 1, sampling: str = "image",
                 uniform_fraction: float = 0.25,
                 deterministic: bool | None = None, n_rays: int = 32,
                 boundary: str = "inner", boundary_width: int = 1, expand: int = 0,
                 min_size: int = 0, loader: str | None = None, workers: int = 1,
                 use_multiprocessing: bool = False, max_queue_size: int = 10):
    """Build a ``tf.data.Dataset`` (or a ``keras.utils.PyDataset``) of ``(images, targets)``
    batches.

    Images are float32 ``(N, H, W, C)`` (in [0, 1] with the default
    ``prepare_image``); targets int32 ``(N, H, W, 1)`` classes (three-class:
    0 background, 1 interior, 2 boundary; binary: 0/1) with ``-1`` marking
    padded pixels that the losses ignore.

    Args:
        pairs: (image_path, label_path) pairs, e.g. from ``folder_pairs``;
            leave it out when giving ``data``.
        crop_size: random crop side; images smaller than it are padded. ``None``
            yields whole images one at a time (``batch_size`` is then 1).
        batch_size: images per batch.
        target: ``"three_class"``, ``"binary"`` or ``"star"`` (float32
            ``(N, H, W, 1 + n_rays)``: object probability, ``-1`` on padding,
            then ray distances; see ``targets.star``) or
            ``"three_class_distance"`` (float32 ``(N, H, W, 2)``: classes as
            above, then the normalized distance to the nucleus' edge).
        augment: a joint augmentation (e.g. ``default_augment()``) or None.
        shuffle: random image order / random crops.
        repeat: repeat forever (use ``steps_per_epoch`` in ``fit``).
        channels: model input channels (1 or 3).
        preprocess: image → float32 HxWxC function; default ``prepare_image``.
        seed: makes crops and order reproducible.
        data: already loaded ``(images, labels)`` lists, to skip reading
            (``make_dataset(data=(images, labels), ...)``, without ``pairs``).
        progress: show a progress bar while loading.
        cache: decode and normalize every image once and keep it in memory
            (fast); ``False`` reads each image when it is used (for datasets
            larger than memory).
        pad_multiple: with ``crop_size=None``, pad whole images (reflection,
            labels ``-1``) to multiples of this, e.g. 16 for a depth-4 U-Net.
        sampling: how crops are drawn. ``"image"``: every image equally often
            (a shuffled pass per epoch), at a uniform position. ``"nucleus"``:
            a crop around a nucleus drawn uniformly from all nuclei of all
            images, so a large image with 300 nuclei is seen 30 times as
            often as one with 10. That is what pooled instance scores
            weigh, and it stops dense images from being starved; the labels
            are scanned once for nucleus centres.
        uniform_fraction: with ``"nucleus"`` sampling, the share of crops
            still drawn the ``"image"`` way, so background far from nuclei
            is seen too.
        deterministic: the same batches on every run. Keras augmentation
            layers draw from one random state, so batches augmented in
            parallel would draw in a varying order; deterministic runs
            augment one batch at a time (still ahead of a CPU training step).
            Default: True when ``seed`` is given.
        n_rays: rays of the ``"star"`` target.
        boundary, boundary_width, expand, min_size: the three-class target's
            shape (``target_options``: ``"inner"``, ``"outer"`` or
            ``"thick"`` boundaries of a width, nuclei grown by ``expand``
            pixels, nuclei under ``min_size`` pixels dropped); ``min_size``
            applies to the binary target too.
        loader: ``"tf.data"`` or ``"pydataset"``; None picks ``"tf.data"`` when
            Keras' backend is TensorFlow and ``"pydataset"`` otherwise (JAX,
            PyTorch: no TensorFlow needed). The PyDataset draws its crops from
            the same sampler (with one worker, the same crops in the same order
            as ``tf.data`` for the same ``seed``), augments each batch eagerly
            with ``augment`` and computes the targets in NumPy.
        workers, use_multiprocessing, max_queue_size: passed to the
            ``PyDataset`` (``"pydataset"`` loader only). With more than one
            worker, batches are drawn in whatever order the workers ask, so a
            seed no longer fixes them; with processes, every process draws
            from its own random stream.

    Returns:
        A batched, prefetched ``tf.data.Dataset``, or a ``PyDataset`` whose
        ``len()`` is the number of batches of a finite (``repeat=False``) one.

    Raises:
        ValueError: unknown target or sampling, no pairs, bad sizes, or bad
            files (named).

    Example:
        >>> ds = make_dataset(folder_pairs("dsb2018/train"), crop_size=128, batch_size=4,
        ...                   augment=default_augment(seed=0), seed=0)   # doctest: +SKIP
        >>> images, targets = next(iter(ds))                             # doctest: +SKIP
    """
    if target not in HEADS:
        raise ValueError(f"unknown target {target!r}; expected one of {HEADS}")
    options = target_options(boundary, boundary_width, expand, min_size)
    if sampling not in SAMPLING_MODES:
        raise ValueError(f"unknown sampling {sampling!r}; expected one of {SAMPLING_MODES}")
    if not 0.0 <= float(uniform_fraction) <= 1.0:
        raise ValueError(f"uniform_fraction must be in [0, 1], got {uniform_fraction}")
    if crop_size is not None and int(crop_size) < 1:
        raise ValueError(f"crop_size must be a positive int or None, got {crop_size}")
    if int(batch_size) < 1 or int(pad_multiple) < 1:
        raise ValueError(f"batch_size and pad_multiple must be >= 1, got {batch_size}, "
                         f"{pad_multiple}")
    if data is None and not len(pairs):
        raise ValueError("no (image, label) pairs given; expected at least one, or "
                         "data=(images, labels)")
    loader = _check_loader(loader)
    source = _Source(pairs, data, channels, preprocess, progress, cache)
    if not len(source):
        raise ValueError("no (image, label) pairs given; expected at least one")
    c = source.channels

    if crop_size is None:
        if sampling != "image":
            raise ValueError("sampling='nucleus' needs a crop_size; whole images are "
                             "yielded one by one")

        def whole(seed=seed):
            rng = np.random.default_rng(seed)
            while True:
                order = rng.permutation(len(source)) if shuffle else range(len(source))
                for i in order:
                    im, lab = pad_to_multiple(*source[i], pad_multiple)
                    yield im, lab[..., None]
                if not repeat:
                    return
        if loader == "pydataset":
            return ArrayBatches(whole, batch_size=1, length=None if repeat else len(source),
                                target=target, n_rays=n_rays, options=options,
                                augment=augment, seed=seed,
                                workers=workers, use_multiprocessing=use_multiprocessing,
                                max_queue_size=max_queue_size)
        ds = tf.data.Dataset.from_generator(_EXIT_GUARD.generator(whole), output_signature=(
            tf.TensorSpec((None, None, c), tf.float32), tf.TensorSpec((None, None, 1), tf.int32)))
        ds = _with_length(ds, None if repeat else len(source)).batch(1)
    else:
        if sampling == "nucleus":
            crops = _nucleus_crops(source, crop_size, seed, repeat, uniform_fraction)
        else:
            crops = _image_crops(source, crop_size, seed, shuffle, repeat)
        if loader == "pydataset":
            length = None if repeat else -(-len(source) // int(batch_size))
            return ArrayBatches(crops, batch_size=int(batch_size), length=length,
                                target=target, n_rays=n_rays, options=options,
                                augment=augment, seed=seed,
                                workers=workers, use_multiprocessing=use_multiprocessing,
                                max_queue_size=max_queue_size)
        ds = tf.data.Dataset.from_generator(_EXIT_GUARD.generator(crops), output_signature=(
            tf.TensorSpec((crop_size, crop_size, c), tf.float32),
            tf.TensorSpec((crop_size, crop_size, 1), tf.int32)))
        # Either way one crop per image per pass (see _image_crops, _nucleus_crops).
        ds = _with_length(ds, None if repeat else len(source))
        ds = ds.batch(batch_size, drop_remainder=repeat)
    if augment is not None:
        def _augment(im, lab):
            out = augment({"images": im, "labels": lab}, training=True)
            return out["images"], out["labels"]
        deterministic = seed is not None if deterministic is None else deterministic
        ds = ds.map(_augment, num_parallel_calls=None if deterministic else tf.data.AUTOTUNE)
    ds = ds.map(lambda im, lab: (im, labels_to_target_tf(lab, target, n_rays, options)),
                num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def _with_length(ds: tf.data.Dataset, n: int | None) -> tf.data.Dataset:
    """``ds`` with its number of elements declared, or ``ds`` unchanged for ``None``.

    A generator dataset's length is unknown to ``tf.data``, so Keras learns
    that a finite validation set has ended only from the ``StopIteration``
    at its end, and then warns "Your input ran out of data; interrupting
    training" after every validation pass although nothing was cut short.
    With the length declared, Keras stops after the last batch instead.
    """
    return ds if n is None else ds.apply(tf.data.experimental.assert_cardinality(n))


def _tile_count(shape, size: int) -> int:
    """How many tiles ``_tiles`` cuts an image of ``shape`` into."""
    return -(-int(shape[0]) // size) * -(-int(shape[1]) // size)


def _tiles(image, labels, size: int):
    """Non-overlapping ``size`` tiles covering the image; the last row / column padded."""
    image, labels = pad_to_multiple(image, labels, size)
    h, w = labels.shape
    for y in range(0, h, size):
        for x in range(0, w, size):
            yield image[y:y + size, x:x + size], labels[y:y + size, x:x + size]


def make_validation_dataset(pairs: Sequence = (), *, tile_size: int | None = None,
                            batch_size: int = 8, target: str = "three_class",
                            channels: int = 1, preprocess: Callable | None = None,
                            pad_multiple: int = 16, data=None,
                            progress: bool = True, n_rays: int = 32,
                            boundary: str = "inner", boundary_width: int = 1, expand: int = 0,
                            min_size: int = 0, loader: str | None = None, workers: int = 1,
                            use_multiprocessing: bool = False, max_queue_size: int = 10):
    """A deterministic, unaugmented dataset that covers every labelled pixel exactly once.

    Args:
        pairs: (image_path, label_path) pairs.
        tile_size: ``None`` yields whole images one per batch, padded to
            multiples of ``pad_multiple``; an int cuts each image into
            non-overlapping tiles of that size (edge tiles padded) and batches them.
        batch_size: tiles per batch (tile mode).
        target, channels, preprocess, data, progress, n_rays: as ``make_dataset``.
        boundary, boundary_width, expand, min_size: as ``make_dataset``.
        pad_multiple: whole-image padding multiple (16 suits a depth-4 U-Net).
        loader, workers, use_multiprocessing, max_queue_size: as
            ``make_dataset``; both loaders give the same batches.

    Returns:
        A finite ``tf.data.Dataset`` (or ``PyDataset``, whose ``len()`` is its
        number of batches) of ``(images, targets)``; padded pixels have target ``-1``.

    Raises:
        ValueError: as ``make_dataset``.

    Example:
        >>> val = make_validation_dataset(folder_pairs("val"), tile_size=256)  # doctest: +SKIP
        >>> model.fit(train, validation_data=val, ...)                         # doctest: +SKIP
    """
    if tile_size is None:
        return make_dataset(pairs, crop_size=None, target=target, shuffle=False, repeat=False,
                            channels=channels, preprocess=preprocess, data=data,
                            progress=progress, pad_multiple=pad_multiple, n_rays=n_rays,
                            boundary=boundary, boundary_width=boundary_width, expand=expand,
                            min_size=min_size, loader=loader, workers=workers,
                            use_multiprocessing=use_multiprocessing,
                            max_queue_size=max_queue_size)
    if target not in HEADS:
        raise ValueError(f"unknown target {target!r}; expected one of {HEADS}")
    options = target_options(boundary, boundary_width, expand, min_size)
    if int(tile_size) < 1:
        raise ValueError(f"tile_size must be a positive int or None, got {tile_size}")
    if data is None and not len(pairs):
        raise ValueError("no (image, label) pairs given; expected at least one, or "
                         "data=(images, labels)")
    loader = _check_loader(loader)
    source = _Source(pairs, data, channels, preprocess, progress, cache=True)

    def tiles(seed=None):
        for i in range(len(source)):
            for im, lab in _tiles(*source[i], tile_size):
                yield im, lab[..., None]

    n_tiles = sum(_tile_count(np.shape(source[i][1]), tile_size) for i in range(len(source)))
    if loader == "pydataset":
        return ArrayBatches(tiles, batch_size=int(batch_size),
                            length=-(-n_tiles // int(batch_size)), target=target, n_rays=n_rays,
                            options=options,
                            workers=workers, use_multiprocessing=use_multiprocessing,
                            max_queue_size=max_queue_size)

    ds = tf.data.Dataset.from_generator(_EXIT_GUARD.generator(tiles), output_signature=(
        tf.TensorSpec((tile_size, tile_size, source.channels), tf.float32),
        tf.TensorSpec((tile_size, tile_size, 1), tf.int32)))
    ds = _with_length(ds, n_tiles)
    ds = ds.batch(batch_size).map(
        lambda im, lab: (im, labels_to_target_tf(lab, target, n_rays, options)),
        num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
