"""Block-wise instance segmentation of images larger than memory, stitched seamlessly.

The image is split into a grid of *cores* that partition it. Each block reads
its core plus ``min_overlap`` pixels on every side (its *keep* region) plus
``context`` more pixels for the network, runs ``segment_fn`` on that window
and keeps only the objects it *owns* (the rule of StarDist's
``predict_instances_big``, written as a point test):

* an object belongs to the block whose core contains the top-left corner of
  its bounding box -- exactly one block, since cores partition the image;
* an object touching the keep region's border (where that border is not the
  image border) is cut, so it is never kept there: the block owning it sees
  it whole, provided the object is at most ``min_overlap`` pixels along each
  axis (it then ends within ``min_overlap`` of its owner's core).

Kept objects are renumbered with a running offset and written into ``out``
block by block, so labels come out sequential (1..N) and memory is bounded by
one block. Objects larger than ``min_overlap`` that cross a block border are
reported (warning or error, ``on_large``), never silently split.

Example:
    >>> import numpy as np
    >>> from skimage.measure import label
    >>> image = np.zeros((500, 400), np.uint8); image[100:130, 240:270] = 1
    >>> labels = segment_large(image, label, block_size=256, min_overlap=48, progress=False)
    >>> int(labels.max()), labels.dtype.name
    (1, 'uint32')
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from nuclib.labels import check_labels

__all__ = ["segment_large", "segment_dask"]

ON_LARGE = ("warn", "raise", "ignore")


@dataclass(frozen=True)
class _Block:
    """One block: global (row, col) slices of its core, keep and read regions."""

    core: tuple[slice, slice]
    keep: tuple[slice, slice]
    read: tuple[slice, slice]


def _axis_cores(size: int, core: int) -> list[tuple[int, int]]:
    return [(start, min(start + core, size)) for start in range(0, size, core)]


def _axis_cores_from_chunks(chunks) -> list[tuple[int, int]]:
    edges = np.concatenate([[0], np.cumsum(chunks)]).astype(int)
    return list(zip(edges[:-1].tolist(), edges[1:].tolist()))


def _blocks(shape, y_cores, x_cores, min_overlap: int, context: int) -> list[_Block]:
    def grow(lo, hi, by, size):
        return slice(max(lo - by, 0), min(hi + by, size))

    blocks = []
    for y0, y1 in y_cores:
        for x0, x1 in x_cores:
            blocks.append(_Block(
                core=(slice(y0, y1), slice(x0, x1)),
                keep=(grow(y0, y1, min_overlap, shape[0]), grow(x0, x1, min_overlap, shape[1])),
                read=(grow(y0, y1, min_overlap + context, shape[0]),
                      grow(x0, x1, min_overlap + context, shape[1]))))
    return blocks


def _owned_objects(labels: np.ndarray, block: _Block, shape, min_overlap: int):
    """Keep the objects ``block`` owns, renumbered 1..n.

    Args:
        labels: instance labels of the block's keep region.
        block: the block's geometry (global coordinates).
        shape: the image's (H, W).
        min_overlap: the largest object size the stitching guarantees.

    Returns:
        ``(owned, n, large)``: uint32 labels of the keep region holding only
        the owned objects (1..n), their count, and ``(y, x, height, width)``
        of every object seen crossing the keep border with an extent larger
        than ``min_overlap`` along the crossing axis.
    """
    from scipy import ndimage

    if labels.size and labels.max() > labels.size:  # keep find_objects' table small
        values, inverse = np.unique(labels, return_inverse=True)
        labels = inverse.reshape(labels.shape) + (values[0] != 0)
    origin = (block.keep[0].start, block.keep[1].start)
    inner_start = [block.keep[a].start > 0 for a in range(2)]
    inner_end = [block.keep[a].stop < shape[a] for a in range(2)]
    lut = np.zeros(int(labels.max(initial=0)) + 1, np.uint32)
    count, large = 0, []
    for index, slices in enumerate(ndimage.find_objects(labels), start=1):
        if slices is None:
            continue
        crossing, too_big = False, False
        for a, sl in enumerate(slices):
            cut = ((sl.start == 0 and inner_start[a])
                   or (sl.stop == labels.shape[a] and inner_end[a]))
            crossing |= cut
            too_big |= cut and (sl.stop - sl.start) > min_overlap
        top_left = [origin[a] + slices[a].start for a in range(2)]
        owned = all(block.core[a].start <= top_left[a] < block.core[a].stop for a in range(2))
        if too_big:
            large.append((*top_left, *(sl.stop - sl.start for sl in slices)))
        # An owned object that is cut extends beyond min_overlap from the core:
        # keep what this block sees of it (reported above) rather than lose it.
        if owned and (not crossing or too_big):
            count += 1
            lut[index] = count
    return lut[labels], count, large


def _own_block(segment_fn, locate: bool, shape, min_overlap: int, window, block: _Block):
    """Segment one block's window; keep the objects it owns (``_owned_objects``' result)."""
    labels = segment_fn(window, block.read) if locate else segment_fn(window)
    labels = check_labels(labels, name="segment_fn's labels of a block", shape=window.shape[:2],
                          boolean=False)
    crop = tuple(slice(block.keep[a].start - block.read[a].start,
                       block.keep[a].stop - block.read[a].start) for a in range(2))
    return _owned_objects(labels[crop], block, shape, min_overlap)


def _into_store(image, segment_fn, out, blocks, grid_shape, *, shape, min_overlap, on_large,
                locate, **options):
    """The zarr route of both functions (``nuclib.postprocess.slide_store``)."""
    from functools import partial

    from nuclib.postprocess.slide_store import identity_of, segment_into_store

    own = partial(_own_block, segment_fn, locate, shape, min_overlap)
    return segment_into_store(image, out, blocks=blocks, grid_shape=grid_shape, own=own,
                              report=_report_large, min_overlap=min_overlap,
                              on_large=on_large, plan={"segment_fn": identity_of(segment_fn)},
                              **options)


def _check_route(out, client) -> bool:
    """Whether ``out`` asks for the zarr route; a client needs it."""
    from nuclib.postprocess.slide_store import is_store

    store = out is not None and is_store(out)
    if client is not None and not store:
        raise ValueError(f"with a client, out must be a zarr array or a path for one (the "
                         f"workers write the labels into it); got "
                         f"{'None' if out is None else type(out).__name__}")
    return store


def _report_large(large: list, min_overlap: int, on_large: str) -> None:
    if not large or on_large == "ignore":
        return
    y, x, h, w = large[0]
    message = (f"objects larger than min_overlap={min_overlap} px cross block borders "
               f"({len(large)} seen, e.g. at row {y}, col {x}, at least {h}x{w} px); they may "
               f"be truncated in the output. Increase min_overlap above the largest object "
               f"size.")
    if on_large == "raise":
        raise ValueError(message)
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def _check_image(image) -> tuple[int, int]:
    shape = tuple(getattr(image, "shape", ()))
    if len(shape) not in (2, 3):
        raise ValueError(f"image has {len(shape)} dimensions {shape}; expected HxW or HxWxC "
                         "(an array-like with .shape and slicing)")
    if min(shape) < 1:
        raise ValueError(f"image is empty (shape {shape})")
    return shape[0], shape[1]


def _prepare_out(out, shape):
    from nuclib.postprocess.slide_store import check_out

    if out is None:
        return np.zeros(shape, np.uint32), False
    check_out(out, shape)
    return out, True


class _Writer:
    """Writes owned labels into ``out`` with a running id offset.

    A caller-supplied ``out`` may hold old values: each core is zeroed just
    before the first block writing into it, so memory stays at one block.
    """

    def __init__(self, out, blocks: list[_Block], clear: bool):
        self.out = out
        self.offset = 0
        self.limit = int(np.iinfo(np.dtype(out.dtype)).max)
        self._cores = [b.core for b in blocks]
        self._pending = set(range(len(blocks))) if clear else set()

    def _clear_cores_under(self, region) -> None:
        for index in sorted(self._pending):
            core = self._cores[index]
            if all(core[a].start < region[a].stop and region[a].start < core[a].stop
                   for a in range(2)):
                self.out[core] = 0
                self._pending.discard(index)

    def write(self, owned: np.ndarray, count: int, region) -> None:
        if self.offset + count > self.limit:
            raise ValueError(f"more than {self.limit} objects do not fit into out's dtype "
                             f"{self.out.dtype}; use uint32 or uint64")
        self._clear_cores_under(region)
        if count:
            mask = owned > 0
            target = np.asarray(self.out[region]).copy()
            target[mask] = owned[mask].astype(target.dtype) + self.offset
            self.out[region] = target  # whole-region assignment also works for zarr
        self.offset += count


def segment_large(image, segment_fn, *, block_size: int = 2048, min_overlap: int = 128,
                  context: int | None = None, out=None, on_large: str = "warn",
                  locate: bool = False, client=None, overwrite: bool = False,
                  progress: bool = True):
    """Instance-segment an image of any size block by block, with exact stitching.

    Args:
        image: HxW or HxWxC array-like with ``.shape`` and slicing (NumPy
            array or memmap, zarr array, ``tifffile`` memmap, ...); only one
            block is read at a time.
        segment_fn: callable mapping an image block (NumPy, same channels) to
            integer instance labels of the block's height and width, e.g.
            ``Segmenter.segment``. For a model trained at one nucleus size,
            fix the size so every block is zoomed alike:
            ``functools.partial(seg.segment, diameter=seg.estimate_diameter(sample))``,
            and give ``context`` in the image's pixels (the receptive-field
            radius divided by the zoom factor).
        block_size: side of the window read per block; each block owns a core
            of ``block_size - 2 * (min_overlap + context)`` pixels. For
            predictions identical to whole-image ones with a CNN, keep
            ``block_size``, ``min_overlap`` and ``context`` multiples of its
            stride (the defaults are, for strides up to 64).
        min_overlap: the largest object extent (pixels, per axis) stitched
            exactly; blocks share ``2 * min_overlap`` pixels of labels.
        context: extra pixels read around each block and discarded, so that a
            network sees enough context near the kept region; use the model's
            receptive-field radius (``TiledInferencer(model).overlap``).
            Default 0 (right for pixel-wise segment_fns such as threshold +
            connected components).
        out: integer array of shape (H, W) to write into (a ``np.memmap``,
            ...); its old contents are overwritten. Default: a new
            ``np.zeros`` uint32 array. A zarr array, or a path where one is
            created (chunked by core), is written core by core, resumably,
            and returned (``nuclib.postprocess.slide_store``): the same
            labels, with no label array in this process.
        client: a ``distributed.Client``: blocks are segmented, and ``out``
            (a zarr array or path on a file system the workers share) written,
            on its workers; only counts come back. ``segment_fn`` travels in
            every task, and a zarr or memmap ``image`` is read on the workers.
        overwrite: replace a complete zarr ``out`` (else FileExistsError).
        on_large: what to do about objects larger than ``min_overlap``
            crossing block borders: ``"warn"`` (keep what the owning block
            sees), ``"raise"`` (ValueError) or ``"ignore"``.
        locate: call ``segment_fn(window, region)``, with the window's
            global ``(row slice, col slice)``, for segment_fns that must know
            where a block lies (``Segmenter.segment_large`` zooms every block
            on the whole image's pixel grid).
        progress: show a progress bar over blocks.

    Returns:
        ``out``, holding uint32-compatible labels numbered 1..N in block order.

    Raises:
        ValueError: bad image dimensions, sizes, ``out`` shape/dtype, labels of
            the wrong shape or type from ``segment_fn``, or (``on_large="raise"``)
            an object larger than ``min_overlap`` crossing a block border.
        FileExistsError: a complete zarr ``out`` without ``overwrite``.

    Example:
        >>> import numpy as np
        >>> from skimage.measure import label
        >>> image = np.lib.format.open_memmap("slide.npy")             # doctest: +SKIP
        >>> out = np.lib.format.open_memmap("labels.npy", mode="w+", dtype=np.uint32,
        ...                                 shape=image.shape[:2])    # doctest: +SKIP
        >>> segment_large(image, lambda b: label(b > 128), out=out)   # doctest: +SKIP
    """
    from nuclib.progress import progress_bar

    shape = _check_image(image)
    context = 0 if context is None else int(context)
    min_overlap, block_size = int(min_overlap), int(block_size)
    if min_overlap < 0 or context < 0:
        raise ValueError(f"min_overlap ({min_overlap}) and context ({context}) must be >= 0")
    core = block_size - 2 * (min_overlap + context)
    if core < 1:
        raise ValueError(f"block_size {block_size} leaves no core: it must exceed "
                         f"2 * (min_overlap + context) = {2 * (min_overlap + context)}")
    if on_large not in ON_LARGE:
        raise ValueError(f"unknown on_large {on_large!r}; expected one of {ON_LARGE}")
    y_cores, x_cores = _axis_cores(shape[0], core), _axis_cores(shape[1], core)
    blocks = _blocks(shape, y_cores, x_cores, min_overlap, context)
    if _check_route(out, client):
        return _into_store(image, segment_fn, out, blocks, (len(y_cores), len(x_cores)),
                           shape=shape, min_overlap=min_overlap, on_large=on_large,
                           locate=locate, client=client, overwrite=overwrite,
                           progress=progress)
    out, clear = _prepare_out(out, shape)
    writer = _Writer(out, blocks, clear)
    large = []
    for block in progress_bar(blocks, desc="blocks", unit="block", enabled=progress):
        window = np.asarray(image[block.read])
        owned, count, seen = _own_block(segment_fn, locate, shape, min_overlap, window, block)
        if seen and on_large == "raise":
            _report_large(seen, min_overlap, on_large)
        large += seen
        writer.write(owned, count, block.keep)
    _report_large(large, min_overlap, on_large)
    return out


def segment_dask(darr, segment_fn, *, min_overlap: int = 128, context: int = 0, out=None,
                 on_large: str = "warn", blocks_per_compute: int = 4, locate: bool = False,
                 overwrite: bool = False, progress: bool = True, **compute_kwargs):
    """Instance-segment a ``dask.array`` chunk by chunk, in parallel, with exact stitching.

    Each chunk is a core: ``segment_fn`` runs on it plus ``min_overlap +
    context`` pixels around (``dask.array.map_overlap``), keeps the objects
    it owns (same rule as ``segment_large``), and the results are numbered
    with running offsets and written into ``out`` as they are computed,
    ``blocks_per_compute`` chunks at a time (memory is bounded by those).

    With ``out`` a zarr array or a path, the tasks themselves write it (on
    the workers of a ``distributed`` client when one is the scheduler),
    core by core and resumably, and only per-chunk counts come back: no
    label array passes through this process (``nuclib.postprocess.slide_store``).
    The zarr chunks must divide the dask chunks (a path gets the dask chunks).

    Args:
        darr: ``dask.array.Array`` of shape HxW or HxWxC (channels in one
            chunk); every spatial chunk must be at least ``min_overlap +
            context`` pixels.
        segment_fn: block image (NumPy) → integer instance labels (HxW).
        min_overlap, context, on_large, locate, progress: as in ``segment_large``.
        out: integer (H, W) array to write into; default new uint32 zeros.
            A zarr array or a path: written by the tasks, returned (see above).
        blocks_per_compute: chunks computed together (parallelism vs memory).
        overwrite: replace a complete zarr ``out`` (else FileExistsError).
        **compute_kwargs: passed to ``dask.compute`` (e.g. ``scheduler=``).

    Returns:
        ``out`` with labels 1..N.

    Raises:
        ImportError: dask is not installed (``pip install nuclib[dask]``).
        ValueError: as ``segment_large``, and chunks smaller than the overlap.

    Example:
        >>> import dask.array as da                                  # doctest: +SKIP
        >>> darr = da.from_zarr("slide.zarr").rechunk(2048)          # doctest: +SKIP
        >>> labels = segment_dask(darr, seg.segment, context=104)    # doctest: +SKIP
    """
    try:
        import dask
    except ImportError as err:  # pragma: no cover - exercised only without dask
        raise ImportError("segment_dask needs dask: pip install 'nuclib[dask]'") from err
    from nuclib.progress import progress_bar

    shape = _check_image(darr)
    if not hasattr(darr, "map_overlap"):
        raise ValueError(f"darr must be a dask.array.Array, got {type(darr).__name__}; use "
                         "segment_large for other arrays")
    if on_large not in ON_LARGE:
        raise ValueError(f"unknown on_large {on_large!r}; expected one of {ON_LARGE}")
    min_overlap, context = int(min_overlap), int(context)
    depth = min_overlap + context
    if min_overlap < 0 or context < 0:
        raise ValueError(f"min_overlap ({min_overlap}) and context ({context}) must be >= 0")
    if darr.ndim == 3 and len(darr.chunks[2]) > 1:
        darr = darr.rechunk({2: -1})
    small = [c for axis in darr.chunks[:2] for c in axis if c < depth]
    if small:
        raise ValueError(f"dask chunks {darr.chunks[:2]} include sides smaller than "
                         f"min_overlap + context = {depth}; rechunk to larger chunks")
    y_cores = _axis_cores_from_chunks(darr.chunks[0])
    x_cores = _axis_cores_from_chunks(darr.chunks[1])
    blocks = _blocks(shape, y_cores, x_cores, min_overlap, context)
    if _check_route(out, None):
        return _into_store(darr, segment_fn, out, blocks, (len(y_cores), len(x_cores)),
                           shape=shape, min_overlap=min_overlap, on_large=on_large,
                           locate=locate, dask_kwargs=compute_kwargs,
                           wave=blocks_per_compute, overwrite=overwrite, progress=progress)
    grid = {(b.core[0].start, b.core[1].start): b for b in blocks}

    def owned_window(window, block_info=None):
        location = block_info[None]["chunk-location"]
        block = grid[(y_cores[location[0]][0], x_cores[location[1]][0])]
        labels = segment_fn(window, block.read) if locate else segment_fn(window)
        labels = check_labels(labels, name="segment_fn's labels of a chunk",
                              shape=window.shape[:2], boolean=False)
        crop = tuple(slice(block.keep[a].start - block.read[a].start,
                           block.keep[a].stop - block.read[a].start) for a in range(2))
        owned, count, seen = _owned_objects(labels[crop], block, shape, min_overlap)
        _report_large(seen, min_overlap, on_large)
        result = np.zeros(window.shape[:2], np.uint32)
        result[crop] = owned
        return result

    depths = {0: depth, 1: depth, **({2: 0} if darr.ndim == 3 else {})}
    labelled = darr.map_overlap(owned_window, depth=depths, boundary="none", trim=False,
                                dtype=np.uint32, meta=np.empty((0, 0), np.uint32),
                                **({"drop_axis": 2} if darr.ndim == 3 else {}))
    out, clear = _prepare_out(out, shape)
    writer = _Writer(out, blocks, clear)
    order = [(i, j) for i in range(len(y_cores)) for j in range(len(x_cores))]
    step = max(int(blocks_per_compute), 1)
    with progress_bar(total=len(order), desc="blocks", unit="block", enabled=progress) as bar:
        for first in range(0, len(order), step):
            wave = order[first:first + step]
            results = dask.compute(*[labelled.blocks[i, j] for i, j in wave], **compute_kwargs)
            for (i, j), window in zip(wave, results):
                block = grid[(y_cores[i][0], x_cores[j][0])]
                writer.write(window, int(window.max(initial=0)), block.read)
                bar.update(1)
    return out
