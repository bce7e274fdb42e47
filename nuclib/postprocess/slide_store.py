"""Block-wise labels written into a zarr store, by Dask workers or this process, resumably.

``segment_large(..., out="labels.zarr")`` and ``segment_dask(..., out=...)``
(``nuclib.postprocess.stitching``) come here when ``out`` is a zarr array or
a path. The result equals the in-memory route's (same blocks, same owners,
same ids), but no label array ever passes through the client, and each
worker holds one block and its context at a time. Two passes:

1. **Blocks.** Each block task reads its window (lazily, on the worker:
   zarr, memmap or dask array), segments it, keeps the objects it owns
   (numbered 1..n) and writes them into a scratch array of the work store,
   one scratch chunk per block. It returns only ``n`` and a summary of any
   object too large to stitch; both are also stored in the work store.
2. **Cores.** The client turns the counts into running offsets (one integer
   per block: the same ids the in-memory route gives, in block order). Each
   core task composes the owned labels of the blocks overlapping its core
   (in block order, later ones on top, as the sequential writer does), adds
   their offsets and writes that core of ``out``. Cores are ``out``'s
   chunks (or whole multiples of them), so no two tasks write one chunk.

**What a crash costs.** The work store (``<out>.nuclib-work`` beside a
``labels.zarr`` path) records per block ``count`` (-1 until the block's
labels are stored) and per core ``written``. Chunk writes of zarr's local
store are atomic (a temporary file, then a rename), and a marker is set only
after what it marks is written, so a re-run with the same arguments redoes
only the blocks and cores not marked. The work store is removed, and
``out.attrs["nuclib"]["complete"]`` set, when every core is written. A
complete output is never overwritten unless ``overwrite=True``; a work store
of different arguments is refused, naming what differs.

Example:
    >>> import numpy as np
    >>> from skimage.measure import label
    >>> from nuclib.postprocess.stitching import segment_large
    >>> image = np.zeros((500, 400), np.uint8); image[100:130, 240:270] = 1
    >>> out = segment_large(image, label, block_size=256, min_overlap=48,
    ...                     out="labels.zarr", progress=False)       # doctest: +SKIP
    >>> int(out[:].max()), out.attrs["nuclib"]["complete"]          # doctest: +SKIP
    (1, True)
"""

from __future__ import annotations

import mmap
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["segment_into_store", "is_store", "identity_of", "WORK_SUFFIX"]

WORK_SUFFIX = ".nuclib-work"
_LARGE = 5  # per block: objects too large to stitch, then one of them as (y, x, h, w)


def is_store(out) -> bool:
    """Whether ``out`` asks for the zarr route: a path or a zarr array.

    Args:
        out: the ``out=`` of ``segment_large`` or ``segment_dask``.

    Returns:
        True for a ``str`` or ``Path`` (a zarr array is made there) or a zarr array.

    Example:
        >>> is_store("labels.zarr"), is_store(None), is_store(np.zeros((2, 2)))
        (True, False, False)
    """
    return isinstance(out, (str, Path)) or type(out).__module__.split(".")[0] == "zarr"


# --------------------------------------------------------------------------- inputs
def check_out(out, shape) -> None:
    """Raise ``ValueError`` unless ``out`` (an array or zarr array) can hold labels of ``shape``.

    Example:
        >>> check_out(np.zeros((4, 5), np.uint32), (4, 5))
        >>> check_out(np.zeros((4, 5), np.float32), (4, 5))
        Traceback (most recent call last):
        ...
        ValueError: out has dtype float32; expected an integer label dtype (e.g. uint32)
    """
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"out has shape {tuple(out.shape)}; expected {tuple(shape)} (the "
                         "image's height and width)")
    if np.dtype(out.dtype).kind not in "iu":
        raise ValueError(f"out has dtype {out.dtype}; expected an integer label dtype "
                         "(e.g. uint32)")


@dataclass(frozen=True)
class _Memmap:
    """A ``np.memmap`` as its file: reopened on the worker, never pickled whole."""

    filename: str
    dtype: str
    shape: tuple
    offset: int
    order: str

    def __getitem__(self, key):
        data = np.memmap(self.filename, dtype=self.dtype, mode="r", offset=self.offset,
                         shape=self.shape, order=self.order)
        return np.array(data[key])


def _lazy(image, remote: bool):
    """What a task gets to read its window from (``None``: the client sends the window).

    A zarr array on a file system and a whole memmap travel as references and
    are read on the worker; anything else (an in-memory array) is sliced here
    and only its window travels.
    """
    if not remote:
        return image
    if isinstance(image, np.memmap) and isinstance(image.base, mmap.mmap) and getattr(
            image, "filename", None) and (image.flags.c_contiguous or image.flags.f_contiguous):
        return _Memmap(str(image.filename), image.dtype.str, tuple(image.shape),
                       int(image.offset), "C" if image.flags.c_contiguous else "F")
    if type(image).__module__.split(".")[0] == "zarr" and _local_root(image) is not None:
        return image
    return None


def _local_root(array) -> Path | None:
    """The directory of a zarr array on a local file system, or None."""
    root = getattr(array.store, "root", None)
    if root is None or type(array.store).__name__ != "LocalStore":
        return None
    return Path(root) / array.path if array.path else Path(root)


# --------------------------------------------------------------------------- the stores
def identity_of(segment_fn) -> str:
    """What a run records of its ``segment_fn``, to refuse resuming with another one.

    Args:
        segment_fn: the block function; its ``identity`` attribute when it
            has one (``Segmenter.segment_large``'s: model, levels, zoom,
            post-processing), else its qualified name.

    Returns:
        A string stored in the work store and compared on resuming.

    Example:
        >>> identity_of(len)
        'len'
    """
    identity = getattr(segment_fn, "identity", None)
    if identity is not None:
        return str(identity)
    return getattr(segment_fn, "__qualname__", type(segment_fn).__qualname__)


def _open_out(out, shape, chunks, dtype, overwrite: bool):
    import zarr

    if isinstance(out, (str, Path)):
        path = Path(out).expanduser().resolve()
        if path.exists():
            try:
                existing = zarr.open_array(str(path), mode="r+")
            except Exception as err:  # not a zarr array: never replaced unless asked
                if not overwrite:
                    raise FileExistsError(f"{path} exists and is not a zarr array of labels "
                                          "(pass overwrite=True to replace it)") from err
                existing = None
            if existing is not None and not overwrite:
                marks = existing.attrs.get("nuclib")
                if not isinstance(marks, dict):
                    raise FileExistsError(f"{path} exists and was not written by nuclib "
                                          "(pass overwrite=True to replace it)")
                if marks.get("complete"):
                    raise FileExistsError(f"{path} is a complete result already (pass "
                                          "overwrite=True to segment again)")
                out = existing
            else:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
                out = None
        if not isinstance(out, zarr.Array):
            out = zarr.create_array(str(path), shape=shape, chunks=chunks, dtype=dtype,
                                    fill_value=0)
    check_out(out, shape)
    marks = out.attrs.get("nuclib")
    if isinstance(marks, dict) and marks.get("complete") and not overwrite:
        raise FileExistsError("out is a complete result already (pass overwrite=True to "
                              "segment again)")
    return out


def _open_work(out, plan: dict, remote: bool, overwrite: bool):
    import zarr

    root = _local_root(out)
    if root is None:
        if remote:
            raise ValueError(f"with a client, out must be a zarr array on a file system "
                             f"every worker sees (a path); got one in a "
                             f"{type(out.store).__name__}")
        return zarr.open_group(store={}, mode="w"), None
    path = root.parent / (root.name + WORK_SUFFIX)
    if path.exists() and not overwrite:
        work = zarr.open_group(str(path), mode="r+")
        before = work.attrs.get("plan")
        if before == plan:
            return work, path
        differs = sorted(k for k in set(plan) | set(before or {})
                         if (before or {}).get(k) != plan.get(k))
        raise ValueError(f"{path} holds an unfinished run with other arguments ({', '.join(differs)} "
                         f"differ); re-run with the same arguments to finish it, or pass "
                         f"overwrite=True to start again")
    if path.exists():
        shutil.rmtree(path)
    work = zarr.open_group(str(path), mode="w")
    work.attrs["plan"] = plan
    return work, path


def _work_arrays(work, grid_shape, side: tuple[int, int], create: bool):
    ny, nx = grid_shape
    if create or "count" not in work:
        work.create_array("owned", shape=(ny * side[0], nx * side[1]), chunks=side,
                          dtype="uint32", fill_value=0, overwrite=True)
        work.create_array("count", shape=(ny, nx), chunks=(1, 1), dtype="int64",
                          fill_value=-1, overwrite=True)
        work.create_array("large", shape=(ny, nx, _LARGE), chunks=(1, 1, _LARGE),
                          dtype="int64", fill_value=0, overwrite=True)
        work.create_array("written", shape=(ny, nx), chunks=(1, 1), dtype="uint8",
                          fill_value=0, overwrite=True)
    return work["owned"], work["count"], work["large"], work["written"]


# --------------------------------------------------------------------------- the tasks
_LOCK = threading.Lock()


def _block_task(source, window, block, index, own, owned_store, count_store, large_store,
                side):
    """Pass 1 on a worker: one block's owned labels into the scratch store; its count back."""
    i, j = index
    if window is None:
        window = source[block.read]
    owned, count, seen = own(np.asarray(window), block)
    h, w = owned.shape
    owned_store[i * side[0]:i * side[0] + h, j * side[1]:j * side[1] + w] = owned
    summary = np.zeros(_LARGE, np.int64)
    if seen:
        summary[0], summary[1:] = len(seen), seen[0]
    large_store[i, j] = summary
    count_store[i, j] = count  # last: the block is done once this is stored
    return count, summary.tolist()


def _core_task(core, neighbours, owned_store, out, written_store, index, side):
    """Pass 2 on a worker: compose one core of ``out`` from its neighbours' owned labels."""
    result = np.zeros((core[0].stop - core[0].start, core[1].stop - core[1].start),
                      np.dtype(out.dtype))
    for (i, j), keep, offset in neighbours:  # block order: later blocks on top
        rows = (max(core[0].start, keep[0].start), min(core[0].stop, keep[0].stop))
        cols = (max(core[1].start, keep[1].start), min(core[1].stop, keep[1].stop))
        if rows[0] >= rows[1] or cols[0] >= cols[1]:
            continue
        piece = np.asarray(owned_store[
            i * side[0] + rows[0] - keep[0].start:i * side[0] + rows[1] - keep[0].start,
            j * side[1] + cols[0] - keep[1].start:j * side[1] + cols[1] - keep[1].start])
        target = result[rows[0] - core[0].start:rows[1] - core[0].start,
                        cols[0] - core[1].start:cols[1] - core[1].start]
        mask = piece > 0
        target[mask] = piece[mask].astype(result.dtype) + offset
    out[core] = result
    written_store[index] = 1  # last: the core is done once this is stored
    return 0


# --------------------------------------------------------------------------- runners
def _run_local(tasks, bar):
    for key, fn, args in tasks:
        yield key, fn(*args)
        bar.update(1)


def _run_client(tasks, bar, client, max_pending):
    from distributed import as_completed

    tasks = iter(tasks)
    keys = {}
    running = as_completed()

    def submit(n):
        for key, fn, args in tasks:
            future = client.submit(fn, *args, pure=False)
            keys[future] = key
            running.add(future)
            n -= 1
            if n <= 0:
                return

    submit(max_pending)
    for future in running:
        try:
            result = future.result()
        finally:
            future.release()
        yield keys.pop(future), result
        bar.update(1)
        submit(1)


def _run_dask(tasks, bar, compute_kwargs, wave):
    import dask

    tasks = list(tasks)
    for first in range(0, len(tasks), wave):
        part = tasks[first:first + wave]
        results = dask.compute(*[dask.delayed(fn, pure=False)(*args) for _, fn, args in part],
                               **compute_kwargs)
        for (key, _, _), result in zip(part, results):
            yield key, result
            bar.update(1)


# --------------------------------------------------------------------------- the route
def segment_into_store(image, out, *, blocks, grid_shape, own, report, min_overlap: int,
                       on_large: str = "warn", client=None, dask_kwargs: dict | None = None,
                       wave: int = 4, overwrite: bool = False, max_pending: int | None = None,
                       progress: bool = True, plan: dict | None = None):
    """Segment block by block into a zarr array, in this process, on a client or by dask.

    Called by ``stitching.segment_large`` and ``segment_dask`` when their
    ``out`` is a zarr array or a path (they cut the blocks and say how a
    block keeps its objects); see the module's description.

    Args:
        image: HxW(xC) array-like (zarr, memmap, NumPy) or a dask array.
        out: a path (a zarr array is created there, chunked by core) or a
            zarr array whose chunks divide the cores.
        blocks: the blocks in row-major order, ``grid_shape`` of them; their
            ``core`` regions partition the image.
        own: ``own(window, block) -> (owned labels of the keep region
            numbered 1..n, n, large objects seen)``; with a client or dask it
            is pickled into every task (keep it small: models load on workers).
        report: ``report(large, min_overlap, on_large)`` warns or raises.
        min_overlap, on_large: as in ``segment_large``.
        client: a ``distributed.Client``: tasks run on its workers.
        dask_kwargs: run by ``dask.compute(..., **dask_kwargs)`` instead, ``wave``
            tasks at a time (``image`` a dask array is read in the tasks).
        overwrite: replace a complete ``out`` (or an unfinished run of other
            arguments).
        max_pending: most tasks submitted at a time with a client (default:
            two per worker thread).
        progress: a progress bar over blocks and cores.
        plan: the run's identity (``segment_fn``, model, levels...), compared
            with an unfinished run's before resuming it.

    Returns:
        ``out``, the zarr array, holding labels 1..N.

    Raises:
        FileExistsError: a complete ``out`` (or a path that is not nuclib's)
            without ``overwrite``.
        ValueError: an unusable ``out`` (shape, dtype, chunks, store), or an
            unfinished run of other arguments.

    Example:
        >>> from skimage.measure import label
        >>> from nuclib.postprocess.stitching import segment_large
        >>> segment_large(np.ones((64, 64), np.uint8), label, block_size=64, min_overlap=8,
        ...               out="l.zarr", progress=False).shape       # doctest: +SKIP
        (64, 64)
    """
    from nuclib.progress import progress_bar

    try:
        import zarr  # noqa: F401
    except ImportError as err:  # pragma: no cover - exercised only without zarr
        raise ImportError("out= a zarr array or path needs zarr: pip install 'nuclib[dask]'") \
            from err
    shape = tuple(int(s) for s in image.shape[:2])
    remote = client is not None or dask_kwargs is not None
    order = [(i, j) for i in range(grid_shape[0]) for j in range(grid_shape[1])]
    first = blocks[0].core
    core = (first[0].stop - first[0].start, first[1].stop - first[1].start)
    out = _open_out(out, shape, core, "uint32", overwrite)
    # A zarr chunk (a shard, with sharding) is the unit of writing.
    unit = tuple(getattr(out, "shards", None) or out.chunks)
    aligned = all(b.core[a].start % unit[a] == 0 for b in blocks for a in range(2))
    if remote and not aligned:
        raise ValueError(f"out's chunks {unit} do not divide the cores (starting "
                         f"at multiples of {core}); workers writing one chunk together would "
                         f"lose labels: create out with chunks={core}")
    side = tuple(max(b.keep[a].stop - b.keep[a].start for b in blocks) for a in range(2))
    run = {"shape": list(shape), "grid": list(grid_shape),
           "cores": [[b.core[a].start for a in range(2)] for b in blocks[:1]] + [list(core)],
           "min_overlap": int(min_overlap), **(plan or {})}
    work, work_path = _open_work(out, run, client is not None or (
        dask_kwargs is not None and not _shares_memory(dask_kwargs)), overwrite)
    owned_store, count_store, large_store, written_store = _work_arrays(
        work, grid_shape, side, "count" not in work)
    out.attrs["nuclib"] = {"complete": False,
                           "work": None if work_path is None else str(work_path)}
    counts = np.asarray(count_store[:])
    written = np.asarray(written_store[:])
    large = np.asarray(large_store[:])
    source = _lazy(image, client is not None)
    dask_image = dask_kwargs is not None and hasattr(image, "map_overlap")

    def block_args(block, index):
        if dask_image:
            window = image[block.read]  # a dask array: read inside the task, on the worker
        elif source is None:
            window = np.asarray(image[block.read])  # in memory here: only the window travels
        else:
            window = None  # the task reads it from the zarr array or memmap
        return (source if window is None else None, window, block, index, own,
                owned_store, count_store, large_store, side)

    todo = [(index, _block_task, block_args(block, index))
            for block, index in zip(blocks, order) if counts[index] < 0]
    if client is not None:
        threads = sum(client.nthreads().values()) or 1
        pending = max(int(max_pending or 2 * threads), 1)

        def runner(tasks, bar):
            return _run_client(tasks, bar, client, pending)
    elif dask_kwargs is not None:
        def runner(tasks, bar):
            return _run_dask(tasks, bar, dask_kwargs, max(int(wave), 1))
    else:
        runner = _run_local
    left = len(todo) + int((written == 0).sum())
    with progress_bar(total=left, desc="blocks", unit="task", enabled=progress) as bar:
        for index, (count, summary) in runner(todo, bar):
            counts[index] = count
            large[index] = summary
            if summary[0] and on_large == "raise":
                report([tuple(summary[1:])], min_overlap, on_large)
        # Ids as the in-memory route gives them: a running offset in block order.
        flat = np.cumsum(counts.ravel())
        offsets = np.concatenate([[0], flat[:-1]]).reshape(grid_shape)
        total = int(flat[-1])
        limit = int(np.iinfo(np.dtype(out.dtype)).max)
        if total > limit:
            raise ValueError(f"{total} objects do not fit into out's dtype {out.dtype} "
                             f"(at most {limit}); use uint32 or uint64")
        # Keep regions reach min_overlap beyond their core: over this many cores.
        smallest = min(b.core[a].stop - b.core[a].start for b in blocks for a in range(2))
        reach = 1 + int(min_overlap) // max(smallest, 1)
        tasks = []
        for block, (i, j) in zip(blocks, order):
            if written[i, j]:
                continue
            near = [((bi, bj), blocks[bi * grid_shape[1] + bj].keep, int(offsets[bi, bj]))
                    for bi in range(max(i - reach, 0), min(i + reach + 1, grid_shape[0]))
                    for bj in range(max(j - reach, 0), min(j + reach + 1, grid_shape[1]))]
            near = [item for item in near if _reaches(item[1], block.core)]
            tasks.append(((i, j), _core_task, (block.core, near, owned_store, out,
                                               written_store, (i, j), side)))
        for _ in runner(tasks, bar):
            pass
    seen = [(int(s[1]), int(s[2]), int(s[3]), int(s[4])) for s in large.reshape(-1, _LARGE)
            for _ in range(int(s[0]))]
    report(seen, min_overlap, on_large)
    out.attrs["nuclib"] = {"complete": True, "nuclei": total, "blocks": len(order)}
    if work_path is not None:
        shutil.rmtree(work_path, ignore_errors=True)
    return out


def _shares_memory(dask_kwargs: dict) -> bool:
    """Whether dask runs the tasks in this process (threads or synchronously)."""
    import dask
    import dask.local
    import dask.threaded
    from dask.base import get_scheduler

    scheduler = get_scheduler(scheduler=dask_kwargs.get("scheduler"))
    return scheduler in (dask.threaded.get, dask.local.get_sync)


def _reaches(keep, core) -> bool:
    return all(keep[a].start < core[a].stop and core[a].start < keep[a].stop for a in range(2))
