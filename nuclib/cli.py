"""The ``nuclib`` command line: segment, evaluate, train, export, zoo.

Examples::

    nuclib segment images/*.tif --model dsb-3class --out results/ --overlay
    nuclib segment big.tif --out results/ --tile-size 512 --save-probabilities --colored-labels
    nuclib evaluate --true gt/ --pred results/ --csv scores.csv
    nuclib train recipes/dsb-3class.toml
    nuclib export dsb-3class --format openvino --out dsb-3class.xml
    nuclib zoo list

Exit status: 0 when everything succeeded, 1 when any input failed (the
others are still processed), 2 for usage errors.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

# The output names, shared with nuclib.segment_files.
from nuclib.distributed import (  # noqa: F401  (re-exported)
    COLORED_SUFFIX, LABEL_SUFFIX, OVERLAY_SUFFIX, PROBABILITIES_SUFFIX)

TABLE_NAME_WIDTH = 12  # printed image names are cut to this many characters plus "…"


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of pixels, got {text!r}")
    return value


def _whole_number(text: str, least: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < least:
        raise argparse.ArgumentTypeError(f"expected {what} (a whole number of pixels >= "
                                         f"{least}), got {text!r}")
    return value


def _tile_side(text: str) -> int:
    return _whole_number(text, 1, "a positive tile side")


def _overlap_pixels(text: str) -> int:
    return _whole_number(text, 0, "an overlap")


def _key_value(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` with VALUE read as a bool, int, float or else a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, e.g. min_size=30, got {text!r}")
    raw = raw.strip()
    if raw.lower() in ("true", "false"):
        return key.strip(), raw.lower() == "true"
    for kind in (int, float):
        try:
            return key.strip(), kind(raw)
        except ValueError:
            pass
    return key.strip(), raw


def _postprocess_overrides(segmenter, pairs) -> dict:
    """Check ``--set`` overrides against the model's post-processing; raise ValueError."""
    from nuclib.postprocess.thresholds import check_postprocess

    try:
        return check_postprocess(segmenter.head, dict(pairs))
    except ValueError as err:
        raise ValueError(f"--set {err}") from None


def _inputs(paths) -> list[Path]:
    from nuclib.data.io import IMAGE_SUFFIXES

    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files += sorted(p for p in path.iterdir()
                            if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
        else:
            files.append(path)
    return files


@dataclass(frozen=True)
class _SegmentJob:
    """What ``nuclib segment`` still has to write for one input image.

    Attributes:
        image: the input file.
        labels: its ``<stem>_labels.<format>`` file.
        overlay: its ``<stem>_overlay.png``, or None without ``--overlay``.
        segment: the labels are to be (re)computed by the model.
        draw: the overlay is to be (re)drawn.
        probabilities: its ``<stem>_probabilities.tif`` when that is to be
            written (``--save-probabilities``), else None.
        colored: its ``<stem>_colored.png`` when that is to be written
            (``--colored-labels``), else None.
    """

    image: Path
    labels: Path
    overlay: Path | None
    segment: bool
    draw: bool
    probabilities: Path | None = None
    colored: Path | None = None

    @property
    def predict(self) -> bool:
        """Whether the model runs: for new labels, or for probabilities of kept ones."""
        return self.segment or self.probabilities is not None


# What ``_segment_summary`` calls each kind of output.
_OUTPUT_NAMES = {"labels": "labels file(s)", "overlay": "overlay(s)",
                 "probabilities": "probability map(s)", "colored": "coloured label image(s)"}


def _plan_segment(files, out_dir: Path, *, fmt: str, overlay: bool, overwrite: bool,
                  probabilities: bool = False, colored: bool = False):
    """Decide, before any model is loaded, which outputs of which image are still to write.

    Each requested output (labels, overlay, probabilities, coloured labels)
    is checked on its own: a run with ``--overlay`` after one without it
    draws the overlays, and a deleted overlay is drawn again, from the
    labels already on disk; missing probabilities are predicted again
    without touching existing labels.

    Args:
        files: input image paths.
        out_dir: the output folder.
        fmt: label file format (``"tif"`` or ``"png"``).
        overlay: overlays were requested.
        overwrite: redo every requested output.
        probabilities: probability maps were requested.
        colored: coloured labels were requested.

    Returns:
        ``(jobs, clashes, kept)``: a ``_SegmentJob`` for every image with
        something to write, ``(path, message)`` for inputs whose name clashes
        with an earlier one, and ``{"labels": n, "overlay": m,
        "probabilities": k, "colored": c}`` counting the outputs that exist
        and are kept.

    Example:
        >>> _plan_segment([Path("a.png")], Path("/nonexistent"), fmt="tif", overlay=False,
        ...               overwrite=False)[0][0].segment
        True
    """
    from nuclib.distributed import extra_output_paths

    jobs: list[_SegmentJob] = []
    clashes: list[tuple[Path, str]] = []
    kept = dict.fromkeys(_OUTPUT_NAMES, 0)
    seen: dict[str, Path] = {}
    for path in files:
        if path.stem in seen:
            # Same name from two folders: refuse rather than overwrite the first result.
            clashes.append((path, f"its name clashes with {seen[path.stem]}; outputs would "
                                  "overwrite each other (segment the folders separately)"))
            continue
        seen[path.stem] = path
        label_path = out_dir / f"{path.stem}{LABEL_SUFFIX}.{fmt}"
        overlay_path = out_dir / f"{path.stem}{OVERLAY_SUFFIX}.png" if overlay else None
        segment = overwrite or not label_path.exists()
        draw = overlay_path is not None and (overwrite or not overlay_path.exists())
        kept["labels"] += not segment
        kept["overlay"] += overlay_path is not None and not draw
        extras = dict(zip(("probabilities", "colored"), extra_output_paths(
            path, out_dir, probabilities=probabilities, colored=colored)))
        for kind, extra in list(extras.items()):
            if extra is not None and extra.exists() and not overwrite:
                kept[kind] += 1
                extras[kind] = None
        if segment or draw or any(extras.values()):
            jobs.append(_SegmentJob(path, label_path, overlay_path, segment, draw, **extras))
    return jobs, clashes, kept


def _segment_summary(done: int, drawn: dict, kept: dict, failed: list, out_dir: Path) -> str:
    """The last line of ``nuclib segment``: what was written, what was skipped and why.

    ``drawn`` counts the outputs written for images whose labels were kept,
    ``{"overlay": n, "colored": m, "probabilities": k}``.
    """
    parts = [f"segmented {done}"]
    if drawn.get("overlay"):
        parts.append(f"drew {drawn['overlay']} overlay(s) from labels already in {out_dir}")
    if drawn.get("colored"):
        parts.append(f"drew {drawn['colored']} coloured label image(s) from labels already "
                     f"in {out_dir}")
    if drawn.get("probabilities"):
        parts.append(f"predicted {drawn['probabilities']} probability map(s) for labels "
                     f"already in {out_dir}")
    skipped = sum(kept.values())
    if skipped:
        kinds = [f"{n} {_OUTPUT_NAMES[kind]}" for kind, n in kept.items() if n]
        parts.append(f"skipped {skipped} output(s) that already exist in {out_dir} "
                     f"({', '.join(kinds)}; use --overwrite to redo)")
    parts.append(f"failed {len(failed)}")
    return ", ".join(parts)


# One -v: more of nuclib's own lines; -vv: also the backend's (TensorFlow, absl).
BACKEND_LOGS = 2
BACKEND_LOGS_HELP = "-vv: also print the backend's own log lines (TensorFlow, absl)"


@contextlib.contextmanager
def _quiet_backend(verbose: bool):
    """Hide the backend's native log lines while the block imports it, unless ``verbose``.

    TensorFlow's C++ runtime writes lines such as "Could not find cuda drivers"
    to the process's stderr while it loads and looks for devices, before
    ``TF_CPP_MIN_LOG_LEVEL`` applies; to a command-line user they are noise.
    Python errors are not hidden: they are raised after stderr is restored.
    The block need not import Keras at all (a cached compiled engine runs
    without it: ``Segmenter.from_directory``).
    """
    if verbose:
        yield
        return
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
        if "keras" in sys.modules and sys.modules["keras"].backend.backend() == "tensorflow":
            import tensorflow as tf

            tf.config.list_physical_devices()  # device discovery logs now, not later
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def _import_backend(verbose: bool) -> None:
    """Import Keras and its backend, hiding the backend's native log lines unless ``verbose``."""
    with _quiet_backend(verbose):
        import keras  # noqa: F401


def _load_segmenter(args):
    """``(model, --set overrides, tiling overrides)``; raise ValueError for unusable options."""
    from nuclib.zoo import load_pretrained

    with _quiet_backend(args.verbose >= BACKEND_LOGS):
        segmenter = load_pretrained(args.model, source=args.source, engine=args.engine)
    if getattr(args, "precision", None) is not None:
        segmenter.config["precision"] = args.precision
    if args.diameter is not None and segmenter.config["diameter"] is None:
        raise ValueError(f"model {args.model!r} works at each image's own scale; "
                         "--diameter needs a model trained at one nucleus size")
    overrides = _postprocess_overrides(segmenter, args.set or [])
    tiling = {k: v for k, v in (("tile_size", args.tile_size), ("overlap", args.overlap))
              if v is not None}
    if tiling:
        # As segment_files checks them on a worker: as settings, then by building the
        # inferencer every image will use (the network's stride and receptive field).
        try:
            segmenter.config.copy(tiling=tiling)
            segmenter.inferencer(progress=False, **tiling).check_tiles()
        except ValueError as err:
            raise ValueError(f"--tile-size/--overlap for model {segmenter.name!r}: "
                             f"{err}") from None
    return segmenter, overrides, tiling


def _run_segment_job(job: _SegmentJob, segmenter, overrides: dict, args,
                     tiling: dict | None = None) -> str:
    """Write one image's missing outputs; return its ``--verbose`` line."""
    from nuclib.data.io import read_image, read_labels, write_image, write_labels
    from nuclib.distributed import write_probabilities

    image = read_image(job.image)
    labels = None
    if job.predict:
        pred = segmenter.predict_scaled(image, diameter=args.diameter,
                                        tta=True if args.tta else None, **(tiling or {}))
        size = "" if pred.diameter is None else f" (diameter {pred.diameter:.1f} px)"
        if job.segment:
            labels = segmenter.labels_from(pred, **overrides)
            write_labels(job.labels, labels)
            line = f"{job.image}: {int(labels.max())} nuclei{size} -> {job.labels}"
        else:
            line = f"{job.image}: probabilities{size} for the existing {job.labels}"
        if job.probabilities is not None:
            write_probabilities(job.probabilities, segmenter.postprocessor.probs_at_size(pred))
            line += f" -> {job.probabilities}"
    else:
        # Only drawings are missing: draw them from the labels on disk, no model needed.
        line = f"{job.image}: drawn from the existing {job.labels}"
    if labels is None:
        labels = read_labels(job.labels)
    if job.draw:
        from nuclib.viz import overlay_rgb

        write_image(job.overlay, overlay_rgb(image, labels))
        line += f" -> {job.overlay}"
    if job.colored is not None:
        from nuclib.viz import colorize_labels

        write_image(job.colored, colorize_labels(labels))
        line += f" -> {job.colored}"
    return line


def cmd_segment(args) -> int:
    """``nuclib segment``: write ``<stem>_labels.<format>`` for every input image.

    Folders are expanded to their image files (sorted, hidden files skipped).
    Each requested output (labels; with ``--overlay`` also
    ``<stem>_overlay.png``, with ``--colored-labels`` ``<stem>_colored.png``,
    with ``--save-probabilities`` ``<stem>_probabilities.tif``) that already
    exists is kept unless ``--overwrite``; a missing overlay or coloured
    image of existing labels is drawn from the labels file, and missing
    probabilities are predicted without rewriting the labels. What is to be
    done is decided first: when nothing is left, neither TensorFlow nor the
    model is loaded. A file that fails is reported at the end and the others
    are still processed. ``--tile-size`` and ``--overlap`` are checked
    against the model before any image is read.

    Args:
        args: parsed arguments with ``inputs``, ``model``, ``source``,
            ``out``, ``format``, ``diameter``, ``engine``, ``tta``, ``set`` (post-processing
            overrides as ``(key, value)`` pairs), ``tile_size``, ``overlap``,
            ``overlay``, ``colored_labels``, ``save_probabilities``,
            ``overwrite``, ``no_progress`` and ``verbose``.

    Returns:
        Exit status: 0 all done, 1 any image failed, 2 no input images found,
        a ``--diameter`` for a model that cannot zoom, an unusable ``--set``,
        or a ``--tile-size``/``--overlap`` the model cannot tile with.

    Example:
        >>> main(["segment", "images/", "--out", "results/", "--overlay"])  # doctest: +SKIP
        0
    """
    from nuclib.progress import progress_bar, write

    files = _inputs(args.inputs)
    if not files:
        print("nuclib segment: no input images found", file=sys.stderr)
        return 2
    if args.scheduler or args.workers:
        return _segment_on_cluster(args, files)
    out_dir = Path(args.out)
    jobs, failed, kept = _plan_segment(files, out_dir, fmt=args.format, overlay=args.overlay,
                                       overwrite=args.overwrite,
                                       probabilities=args.save_probabilities,
                                       colored=args.colored_labels)
    segmenter, overrides, tiling = None, {}, {}
    if any(job.predict for job in jobs):
        try:
            segmenter, overrides, tiling = _load_segmenter(args)
        except ValueError as err:
            print(f"nuclib segment: {err}", file=sys.stderr)
            return 2
    done = 0
    drawn = dict.fromkeys(("overlay", "colored", "probabilities"), 0)
    for job in progress_bar(jobs, desc="segmenting", unit="image", enabled=not args.no_progress):
        try:
            line = _run_segment_job(job, segmenter, overrides, args, tiling)
        except Exception as err:  # keep going past one bad file; report it at the end
            failed.append((job.image, f"{type(err).__name__}: {err}"))
            continue
        done += job.segment
        if not job.segment:  # outputs added to labels already on disk
            drawn["overlay"] += job.draw
            drawn["colored"] += job.colored is not None
            drawn["probabilities"] += job.probabilities is not None
        if args.verbose:
            write(line)  # through the bar, which it would otherwise break
    print(_segment_summary(done, drawn, kept, failed, out_dir), file=sys.stderr)
    for path, message in failed:
        print(f"FAILED {path}: {message}", file=sys.stderr)
    return 1 if failed else 0


def _segment_on_cluster(args, files) -> int:
    """``nuclib segment --scheduler ADDRESS`` / ``--workers N``: ``nuclib.segment_files`` on Dask.

    The workers load the model and write the outputs; this process only plans,
    submits and records (``nuclib-manifest.jsonl`` in ``--out``), so it does
    not load TensorFlow.
    """
    from nuclib.distributed import local_client, segment_files

    try:
        from distributed import Client
    except ImportError:
        print("nuclib segment: --scheduler and --workers need distributed: "
              "pip install 'nuclib[dask]'", file=sys.stderr)
        return 2
    options = {"diameter": args.diameter, "tta": True if args.tta else None,
               "tile_size": args.tile_size, "overlap": args.overlap, **dict(args.set or [])}
    client = (Client(args.scheduler, timeout=args.connect_timeout) if args.scheduler
              else local_client(args.workers))
    with client:
        try:
            report = segment_files(files, args.out, model=args.model, client=client,
                                   overwrite=args.overwrite, progress=not args.no_progress,
                                   format=args.format, overlay=args.overlay,
                                   probabilities=args.save_probabilities,
                                   colored=args.colored_labels,
                                   source=args.source, engine=args.engine,
                                   files_per_task=args.files_per_task,
                                   on_result=_print_result if args.verbose else None,
                                   **options)
        except ValueError as err:  # an unusable --set, --diameter or model: nothing was sent
            print(f"nuclib segment: {err}", file=sys.stderr)
            return 2
    counts = report.counts
    print(f"segmented {report.segmented}, "
          + (f"drew {report.overlays_only} overlay(s) from labels already in {args.out}, "
             if report.overlays_only else "")
          + (f"skipped {counts['skipped']} input(s) whose outputs already exist in {args.out} "
             "(use --overwrite to redo), " if counts["skipped"] else "")
          + f"failed {counts['failed']}; manifest {report.manifest}", file=sys.stderr)
    for record in report.failed:
        print(f"FAILED {record.input}: {record.reason}", file=sys.stderr)
    return 1 if report.failed else 0


def _print_result(record) -> None:
    from nuclib.progress import write

    if record.status == "done":
        size = "" if record.diameter is None else f" (diameter {record.diameter:.1f} px)"
        found = ("outputs added to the existing labels" if record.nuclei is None
                 else f"{record.nuclei} nuclei")
        written = [p for p in (record.labels, record.probabilities, record.overlay,
                               record.colored) if p]
        write(f"{record.input}: {found}{size} -> {' -> '.join(written)} [{record.worker}]")


def _check_segment_args(args) -> str | None:
    """A usage problem of ``nuclib segment`` found without reading any image, or None."""
    missing = [raw for raw in args.inputs if not Path(raw).exists()]
    if missing:
        return f"input not found: {', '.join(missing)} (expected image files or folders)"
    if Path(args.out).is_file():
        return f"--out {args.out} is a file; expected a folder for the outputs"
    if args.workers is not None and args.workers < 1:
        return f"--workers {args.workers}: expected at least 1 worker process"
    if args.files_per_task < 1:
        return f"--files-per-task {args.files_per_task}: expected at least 1"
    if args.tile_size is not None and args.overlap is not None \
            and 2 * args.overlap >= args.tile_size:
        return (f"--overlap {args.overlap} leaves no pixels of their own to tiles of "
                f"--tile-size {args.tile_size}: the overlap is kept on every side of a tile, "
                f"so expected --overlap < --tile-size / 2 (at most {(args.tile_size - 1) // 2})")
    if args.engine is not None:
        from nuclib.engines import check_engine

        try:
            check_engine(args.engine)
        except ValueError as err:
            return f"--engine: {err}"
    return None


def _match_predictions(true_dir: Path, pred_dir: Path):
    from nuclib.data.io import list_images

    truths = {p.stem: p for p in list_images(true_dir)}
    preds = {}
    for p in list_images(pred_dir):
        stem = p.stem[: -len(LABEL_SUFFIX)] if p.stem.endswith(LABEL_SUFFIX) else p.stem
        # nuclib segment's other outputs are pictures and probabilities, not labels
        if not stem.endswith((OVERLAY_SUFFIX, COLORED_SUFFIX, PROBABILITIES_SUFFIX)):
            preds[stem] = p
    return truths, preds


class _NotLabels(ValueError):
    """A file given as labels holds a colour image: stop (status 2), scoring it means nothing."""


# When "labels" look like an intensity image. Instance ids are constant over
# each nucleus, and most pixels of a label image are background; an intensity
# image changes from pixel to pixel and has little exact 0. (Counting distinct
# values says little: an 8-bit image has at most 256, as few per pixel as the
# labels of a large image.) On the DSB2018 copy both tests hold for 558 of the
# 565 images and for none of the 565 label images: these hold at least 97 %
# equal neighbour pairs, the images at most 75 %; one dense label image has
# only 41 % background, which is why a warning needs both.
MIN_EQUAL_NEIGHBOURS = 0.9
MIN_BACKGROUND = 0.5


def intensity_like(labels) -> str | None:
    """Why a label image looks like an intensity image, or None when it looks like labels.

    The rule: fewer than ``MIN_BACKGROUND`` (half) of the pixels are 0 **and**
    fewer than ``MIN_EQUAL_NEIGHBOURS`` (90 %) of the horizontally or
    vertically adjacent pairs of non-zero pixels hold the same value. Instance
    labels are constant over each nucleus and mostly background; an intensity
    image changes from pixel to pixel.

    Args:
        labels: a 2-D integer array as read by ``read_labels``.

    Returns:
        A short reason naming both measurements, or None.

    Example:
        >>> import numpy as np
        >>> intensity_like(np.arange(1, 17).reshape(4, 4)) is not None
        True
        >>> intensity_like(np.zeros((4, 4), np.int32)) is None
        True
    """
    import numpy as np

    arr = np.asarray(labels)
    foreground = arr != 0
    background = 1.0 - float(foreground.mean()) if arr.size else 1.0
    equal = pairs = 0
    for a, b in ((arr[:, 1:], arr[:, :-1]), (arr[1:], arr[:-1])):
        both = (a != 0) & (b != 0)
        pairs += int(both.sum())
        equal += int((both & (a == b)).sum())
    if not pairs or background >= MIN_BACKGROUND or equal / pairs >= MIN_EQUAL_NEIGHBOURS:
        return None
    return (f"only {background:.0%} of its pixels are background (0) and only "
            f"{equal / pairs:.0%} of neighbouring nucleus pixels share an id (instance "
            f"labels: mostly background, constant over each nucleus)")


def _read_scored_labels(path: Path, option: str):
    """Labels for ``nuclib evaluate``: stop on colour images, warn on intensity images."""
    from nuclib.data.io import channels_equal, read_image, read_labels

    try:
        labels = read_labels(path)
    except ValueError:
        # Read again only on failure, to tell a colour image from a broken label file.
        arr = read_image(path)
        if arr.ndim == 3 and arr.shape[2] > 1 and not channels_equal(arr):
            raise _NotLabels(
                f"{option} {path} has {arr.shape[2]} colour channels; expected "
                "single-channel instance labels (0 = background, 1..N the nuclei). Is "
                f"{option} a folder of images rather than of label images?") from None
        raise
    reason = intensity_like(labels)
    if reason:
        print(f"WARNING {path}: looks like an intensity image, not instance labels: "
              f"{reason}; its scores mean nothing. Is {option} a folder of images rather "
              "than of label images?", file=sys.stderr)
    return labels


def read_groups(path, names, column: str | None = None) -> dict[str, str]:
    """``{name: group}`` for ``names`` from a CSV with an id column and a group column.

    The id column is ``id``, else ``name``, else the first column; its values
    are matched to the image names (file names without extension; an id with
    an image extension matches too). The group column is ``column``, else
    ``modality`` when present (the DSB2018 ``manifest.csv``), else the second
    column.

    Args:
        path: the CSV file.
        names: the image names that need a group.
        column: the group column's name.

    Returns:
        ``{name: group}`` for every name.

    Raises:
        ValueError: an empty file, fewer than two columns, an unknown
            ``column``, or names without a row (the message counts them and
            shows a few).

    Example:
        >>> read_groups("../shared/data/dsb2018/manifest.csv", ["00071198d059"])  # doctest: +SKIP
        {'00071198d059': 'fluorescence'}
    """
    import csv

    from nuclib.data.io import IMAGE_SUFFIXES

    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    if len(header) < 2:
        raise ValueError(f"groups file {path} has {len(header)} column(s); expected a header "
                         "row with an id column and a group column, e.g. 'id,modality'")
    id_column = next((c for c in ("id", "name") if c in header), header[0])
    if column is None:
        column = "modality" if "modality" in header else header[1]
    elif column not in header:
        raise ValueError(f"--group-column {column!r} is not a column of {path}; its columns "
                         f"are {', '.join(header)}")
    table = {}
    for row in rows:
        key = (row.get(id_column) or "").strip()
        table[key] = row.get(column) or ""
        if Path(key).suffix.lower() in IMAGE_SUFFIXES:
            table.setdefault(Path(key).stem, table[key])
    missing = [n for n in names if n not in table]
    if missing:
        raise ValueError(f"groups file {path} has no row for {len(missing)} of the "
                         f"{len(names)} images (e.g. {', '.join(missing[:3])}); expected one row "
                         f"per image, its file name without extension in column {id_column!r}")
    return {n: table[n] for n in names}


def cmd_evaluate(args) -> int:
    """``nuclib evaluate``: score a folder of predicted labels against ground truth.

    Predictions are matched to truths by file stem, with an optional
    ``_labels`` suffix (``_overlay``, ``_colored`` and ``_probabilities``
    files are ignored; predictions without a truth are ignored silently).
    With ``--groups`` the scores are also summarized per group, as
    ``nuclib.metrics.evaluate(groups=...)``. Prints ``Report.table()``
    (image names cut to 12 characters and "…"; the columns include
    ``jaccard``, the mean best IoU) and
    optionally writes the CSV (full names). A label file that looks like an
    intensity image is scored with a warning naming it (see
    ``intensity_like``); a colour image stops the command.

    Args:
        args: parsed arguments with ``true``, ``pred``, ``csv``,
            ``thresholds``, ``groups``, ``group_column`` and ``overwrite``
            (an existing ``--csv`` without ``--overwrite`` is refused before
            anything is read, by ``main``).

    Returns:
        Exit status: 0 every truth had a readable prediction of the same
        shape; 1 a prediction was missing or failed; 2 nothing matched.

    Raises:
        FileNotFoundError: a missing folder.
        ValueError: a folder without image files, invalid thresholds, a
            groups file without a row for an image, or a colour image given
            as labels. (A prediction whose shape differs from its truth is
            reported as failed, not raised.)

    Example:
        >>> main(["evaluate", "--true", "gt/", "--pred", "results/", "--csv", "scores.csv"])  # doctest: +SKIP
        0
    """
    from nuclib.metrics import evaluate

    truths, preds = _match_predictions(Path(args.true), Path(args.pred))
    names = sorted(set(truths) & set(preds))
    missing = sorted(set(truths) - set(preds))
    for name in missing:
        print(f"MISSING prediction for {truths[name]}", file=sys.stderr)
    if not names:
        print(f"nuclib evaluate: no prediction in {args.pred} matches a label image in "
              f"{args.true} (by file stem, '{LABEL_SUFFIX}' suffix allowed)", file=sys.stderr)
        return 2
    # Groups before any label image is read: a bad groups file fails at once.
    groups = read_groups(args.groups, names, args.group_column) if args.groups else None
    ys_true, ys_pred, failed = [], [], []
    ok_names = []
    for name in names:
        try:
            y_true = _read_scored_labels(truths[name], "--true")
            y_pred = _read_scored_labels(preds[name], "--pred")
            if y_true.shape != y_pred.shape:
                raise ValueError(f"shape {y_pred.shape} differs from the truth {y_true.shape}")
            ys_true.append(y_true)
            ys_pred.append(y_pred)
            ok_names.append(name)
        except _NotLabels:
            raise
        except Exception as err:
            failed.append((name, f"{type(err).__name__}: {err}"))
    for name, message in failed:
        print(f"FAILED {name}: {message}", file=sys.stderr)
    if not ys_true:
        return 1
    report = evaluate(ys_true, ys_pred, names=ok_names, thresholds=tuple(args.thresholds),
                      groups=None if groups is None else [groups[n] for n in ok_names])
    print(report.table(name_width=TABLE_NAME_WIDTH))
    if args.csv:
        report.to_csv(args.csv)
    return 1 if (failed or missing) else 0


def _check_evaluate_args(args) -> str | None:
    """A usage problem of ``nuclib evaluate`` found before any label image is read, or None."""
    for option, folder in (("--true", args.true), ("--pred", args.pred)):
        if not Path(folder).is_dir():
            return f"{option} folder not found: {folder}"
    if args.groups and not Path(args.groups).is_file():
        return f"--groups file not found: {args.groups} (expected a CSV such as manifest.csv)"
    if args.group_column and not args.groups:
        return "--group-column needs --groups FILE (the CSV that holds that column)"
    if args.csv:
        csv_path = Path(args.csv)
        if csv_path.exists() and not args.overwrite:
            return f"--csv {csv_path} exists; not overwritten: pass --overwrite to replace it"
        if not csv_path.resolve().parent.is_dir():
            return f"--csv {csv_path}: folder {csv_path.parent} does not exist"
    return None


def cmd_export(args) -> int:
    """``nuclib export``: write a model's network as ONNX, OpenVINO IR or a TF SavedModel,
    or the whole model as a bioimage.io package (``--format bioimageio``).

    See ``nuclib.export.export_model``: the exported graph takes a float32
    ``image`` batch ``(N, H, W, C)`` (normalized as ``Segmenter.preprocess``
    does, H and W multiples of the model's stride) and returns its
    probabilities; prints the paths written.

    Args:
        args: parsed arguments with ``name``, ``source``, ``format``, ``out``,
            ``overwrite`` and ``verbose``.

    Returns:
        Exit status 0 (errors propagate; ``main`` turns the usual ones into
        status 2).

    Example:
        >>> main(["export", "dsb-3class", "--format", "onnx", "--out", "m.onnx"])  # doctest: +SKIP
        0
    """
    from nuclib.export import export_model, exported_paths
    from nuclib.models.utils import required_multiple
    from nuclib.zoo import load_pretrained

    _import_backend(args.verbose >= BACKEND_LOGS)
    segmenter = load_pretrained(args.name, source=args.source)
    if args.format == "bioimageio":
        from nuclib.bioimageio import export_bioimageio

        path = export_bioimageio(segmenter, args.out, overwrite=args.overwrite)
        print(f"exported {segmenter.name} as a bioimage.io package to {path}; check it with "
              f"'bioimageio test {path}'")
        return 0
    export_model(segmenter, args.out, format=args.format, overwrite=args.overwrite)
    paths = " and ".join(str(p) for p in exported_paths(args.out, args.format))
    print(f"exported {segmenter.name} ({args.format}) to {paths}; input 'image' "
          f"(N, H, W, {segmenter.config['input_channels']}) float32, H and W multiples of "
          f"{required_multiple(segmenter.model)}")
    return 0


def _check_export_args(args) -> str | None:
    """A usage problem of ``nuclib export`` found before the model is loaded, or None."""
    from nuclib.export import exported_paths, require, require_format

    if args.format == "bioimageio":  # a bioimage.io model package: one .zip
        from nuclib.bioimageio import package_path

        try:
            require(("bioimageio.spec", "tf2onnx", "onnx"), "bioimageio", "--format bioimageio")
        except ValueError as err:
            return str(err)
        path = package_path(args.out)
        if path.exists() and not args.overwrite:
            return f"--out {path} exists; not overwritten: pass --overwrite to replace it"
        return None
    try:
        require_format(args.format, f"--format {args.format}")
    except ValueError as err:
        return str(err)
    for path in exported_paths(args.out, args.format):
        if path.exists() and not args.overwrite:
            return f"--out {path} exists; not overwritten: pass --overwrite to replace it"
    return None


def train_summary(result: dict) -> str:
    """The few lines ``nuclib train`` ends with: where the model is, its scores, how to load it.

    Args:
        result: what ``nuclib.train.train`` returned.

    Returns:
        The summary (no trailing newline): the model directory, its
        validation AP@0.5 overall and per group (when the validation data
        has groups), and the line that loads it; without a model directory
        (no ``[data] val``, or ``finalize = false``) the checkpoint instead.

    Example:
        >>> summary = train_summary({"run_dir": "runs/a", "model_dir": "runs/a/model",
        ...                          "checkpoint": "runs/a/best.keras", "train_seconds": 90.0})
        >>> summary.splitlines()[1]
        'load it with: nuclib.load_pretrained("runs/a/model")'
    """
    minutes = f"trained in {result.get('train_seconds', 0.0) / 60:.1f} min"
    if "model_dir" not in result:
        lines = [f"{minutes}; checkpoint {result['checkpoint']} (no model directory: "
                 "finalizing needs a [data] val folder and [output] finalize = true)",
                 f'load it with: keras.saving.load_model("{result["checkpoint"]}")']
    else:
        scores = result.get("scores", {})
        lines = [f"{minutes}; model directory: {result['model_dir']}"]
        if isinstance(scores.get("ap50"), float):
            groups = {g: v for g, v in scores.get("groups", {}).items() if g != "all"}
            per_group = "".join(f", {g} {v['ap50']:.3f}" for g, v in groups.items())
            lines.append(f"validation AP@0.5: {scores['ap50']:.3f} overall{per_group}")
        lines.append(f'load it with: nuclib.load_pretrained("{result["model_dir"]}")')
    lines.append(f"run folder: {result['run_dir']} (log.csv, history.json); the full result: "
                 "nuclib train --json")
    return "\n".join(lines)


def cmd_train(args) -> int:
    """``nuclib train``: run ``nuclib.train.train`` and print a short summary.

    The summary (``train_summary``) says where the model directory is, its
    validation AP@0.5 and how to load it; ``--json`` prints the whole result
    as JSON instead, without the (long) history, which is in the run
    folder's ``history.json``.

    Args:
        args: parsed arguments with ``recipe``, ``out``, ``json`` and ``verbose``.

    Returns:
        Exit status 0 (errors propagate as exceptions; ``main`` turns the
        usual ones into status 2).

    Example:
        >>> main(["train", "recipes/dsb-3class.toml", "--out", "runs/try"])  # doctest: +SKIP
        0
    """
    from nuclib.train import train

    _import_backend(args.verbose >= BACKEND_LOGS)
    result = train(args.recipe, output_dir=args.out)
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "history"}, indent=2,
                         default=str))
    else:
        print(train_summary(result))
    return 0


def cmd_zoo(args) -> int:
    """``nuclib zoo list|info|download|push``: the pretrained-model registry.

    ``list`` prints one line per model (with the fluorescence AP@0.5, else the
    overall AP@0.5, when the registry has one); ``info`` prints an entry as
    JSON; ``download`` fetches and verifies a model from the Hub and
    optionally saves it to ``--dir``; ``push`` uploads a model directory.

    Args:
        args: parsed arguments with ``zoo_command`` and that command's
            options (``name``, ``dir``, ``cache_dir``, ``overwrite``,
            ``directory``, ``repo_id``, ``private``).

    Returns:
        Exit status: 0 on success, 2 for an unknown sub-command.

    Example:
        >>> main(["zoo", "list"])  # doctest: +SKIP
        0
    """
    from nuclib import zoo

    if args.zoo_command == "list":
        for item in zoo.list_pretrained():
            score = item["scores"].get("fluorescence_ap50")
            extra = f"  (AP@0.5 fluorescence val {score:.3f})" if isinstance(score, float) else ""
            print(f"{item['name']:<24} {item['description']}{extra}")
        return 0
    if args.zoo_command == "info":
        entry = zoo.resolve_name(args.name)
        print(json.dumps({"name": entry.name, "description": entry.description,
                          "repo_id": entry.repo_id, "revision": entry.revision,
                          "aliases": list(entry.aliases), "files": entry.files,
                          "scores": entry.scores,
                          "bundled": str(entry.bundled_dir) if entry.bundled_dir.is_dir()
                          else None}, indent=2))
        return 0
    if args.zoo_command == "download":
        _import_backend(args.verbose >= BACKEND_LOGS)
        seg = zoo.load_pretrained(args.name, source="hub", cache_dir=args.cache_dir)
        print(f"downloaded and verified {seg.name}")
        if args.dir:
            seg.save(args.dir, overwrite=args.overwrite)
            print(f"saved to {args.dir}")
        return 0
    if args.zoo_command == "push":
        from nuclib.zoo.hub import push_model

        revision = push_model(args.directory, args.repo_id, private=args.private)
        print(f"uploaded {args.directory} to {args.repo_id} at revision {revision}")
        return 0
    return 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``nuclib`` command.

    Each sub-command's parser sets ``func`` to the ``cmd_*`` function that
    runs it.

    Returns:
        An ``argparse.ArgumentParser`` with the sub-commands ``segment``,
        ``evaluate``, ``train``, ``export`` and ``zoo``.

    Example:
        >>> args = build_parser().parse_args(["segment", "a.png", "--out", "res"])
        >>> args.model, args.format, args.func.__name__
        ('dsb-3class', 'tif', 'cmd_segment')
    """
    from nuclib._version import __version__

    parser = argparse.ArgumentParser(prog="nuclib", description="Cell nucleus segmentation.")
    parser.add_argument("--version", action="version", version=f"nuclib {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    seg = sub.add_parser("segment", help="segment images into instance labels")
    seg.add_argument("inputs", nargs="+", help="image files or folders")
    seg.add_argument("--model", default="dsb-3class",
                     help="zoo name, hf://owner/repo or a model directory (default dsb-3class)")
    seg.add_argument("--source", default="auto", choices=("auto", "bundled", "hub"))
    seg.add_argument("--out", required=True, help="output folder")
    seg.add_argument("--format", default="tif", choices=("tif", "png"),
                     help="label file format (tif: 32-bit, png: 16-bit)")
    seg.add_argument("--diameter", type=_positive_float, default=None,
                     help="median nucleus diameter in pixels (default: measured per image)")
    seg.add_argument("--engine", default=None,
                     choices=("keras", "openvino", "onnxruntime", "auto"),
                     help="what runs the network: keras, openvino, onnxruntime, or auto "
                          "(openvino when installed, else keras); default: $NUCLIB_ENGINE, "
                          "else auto")
    seg.add_argument("--precision", default=None, choices=("auto", "f32", "bf16"),
                     help="the openvino engine's arithmetic: bf16 (2-3x faster where the "
                          "CPU computes it natively), f32, or auto (bf16 where native, else "
                          "f32; the default)")
    seg.add_argument("--tta", action="store_true",
                     help="average the 8 rotations and mirrors of each image (8x slower)")
    seg.add_argument("--set", type=_key_value, action="append", metavar="KEY=VALUE",
                     help="override a post-processing parameter of the model, e.g. "
                          "--set min_size=30 --set seed_split_height=2 (repeatable)")
    seg.add_argument("--tile-size", type=_tile_side, default=None, metavar="PIXELS",
                     help="largest tile side the network sees at a time (default: the "
                          "model's tiling setting); a multiple of the model's stride")
    seg.add_argument("--overlap", type=_overlap_pixels, default=None, metavar="PIXELS",
                     help="context pixels kept on each inner side of a tile, below half the "
                          "tile size (default: the network's receptive field, so tiled "
                          "equals untiled)")
    seg.add_argument("--overlay", action="store_true",
                     help="also write <name>_overlay.png (drawn from existing labels when "
                          "only the overlay is missing)")
    seg.add_argument("--colored-labels", action="store_true",
                     help="also write <name>_colored.png: each nucleus filled in its own "
                          "colour, background black (drawn from existing labels when only "
                          "it is missing)")
    seg.add_argument("--save-probabilities", action="store_true",
                     help="also write <name>_probabilities.tif: the head's probability maps "
                          "at the image's size, float32, channels last")
    seg.add_argument("--overwrite", action="store_true",
                     help="replace existing outputs (default: keep each existing output and "
                          "write only the missing ones)")
    seg.add_argument("--no-progress", action="store_true", help="no progress bar")
    seg.add_argument("-v", "--verbose", action="count", default=0,
                     help="print one line per image; -vv also the backend's own log lines "
                          "(TensorFlow, absl)")
    cluster = seg.add_mutually_exclusive_group()
    cluster.add_argument("--scheduler", metavar="ADDRESS",
                         help="run on the Dask cluster of this scheduler (e.g. "
                              "tcp://head:8786): workers load the model and write the "
                              "outputs; a manifest in --out records every input")
    cluster.add_argument("--workers", type=int, metavar="N",
                         help="run on a local Dask cluster of N worker processes")
    seg.add_argument("--files-per-task", type=int, default=1, metavar="K",
                     help="with --scheduler/--workers: files per Dask task (default 1)")
    seg.add_argument("--connect-timeout", type=float, default=30, metavar="SECONDS",
                     help="with --scheduler: how long to wait for the scheduler (default 30)")
    seg.set_defaults(func=cmd_segment, check=_check_segment_args, subparser=seg)

    ev = sub.add_parser("evaluate", help="score predicted labels against ground truth")
    ev.add_argument("--true", required=True, help="folder of ground-truth label images")
    ev.add_argument("--pred", required=True, help="folder of predicted label images")
    ev.add_argument("--csv", help="write the per-image rows to this CSV")
    ev.add_argument("--thresholds", type=float, nargs="+", default=[0.5, 0.75, 0.9])
    ev.add_argument("--groups", metavar="FILE",
                    help="CSV with an id column (id, name or the first) and a group column, "
                         "e.g. the DSB2018 manifest.csv: scores are summarized per group")
    ev.add_argument("--group-column", metavar="NAME",
                    help="the group column of --groups (default: modality if present, else "
                         "the second column)")
    ev.add_argument("--overwrite", action="store_true", help="replace an existing CSV")
    ev.set_defaults(func=cmd_evaluate, check=_check_evaluate_args, subparser=ev)

    tr = sub.add_parser("train", help="train a model from a TOML recipe")
    tr.add_argument("recipe")
    tr.add_argument("--out", help="output folder (overrides the recipe's)")
    tr.add_argument("--json", action="store_true",
                    help="print the whole result as JSON instead of the short summary")
    tr.add_argument("-v", "--verbose", action="count", default=0, help=BACKEND_LOGS_HELP)
    tr.set_defaults(func=cmd_train)

    ex = sub.add_parser("export", help="export a model's network as ONNX, OpenVINO IR or "
                                       "a TensorFlow SavedModel, or the model as a "
                                       "bioimage.io package")
    ex.add_argument("name", help="zoo name, hf://owner/repo or a model directory")
    ex.add_argument("--source", default="auto", choices=("auto", "bundled", "hub"))
    ex.add_argument("--format", default="onnx",
                    choices=("onnx", "openvino", "saved_model", "bioimageio"),
                    help="onnx: one .onnx file; openvino: .xml + .bin; saved_model: a folder; "
                         "bioimageio: a bioimage.io model package (.zip) for deepImageJ, "
                         "QuPath, ilastik and napari (default onnx)")
    ex.add_argument("--out", required=True,
                    help="output path (the format's suffix is added when missing)")
    ex.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    ex.add_argument("-v", "--verbose", action="count", default=0, help=BACKEND_LOGS_HELP)
    ex.set_defaults(func=cmd_export, check=_check_export_args, subparser=ex)

    z = sub.add_parser("zoo", help="pretrained models")
    zsub = z.add_subparsers(dest="zoo_command", required=True)
    zsub.add_parser("list", help="list the pretrained models")
    info = zsub.add_parser("info", help="show one model's registry entry")
    info.add_argument("name")
    dl = zsub.add_parser("download", help="download and verify a model from the Hub")
    dl.add_argument("name")
    dl.add_argument("--dir", help="also save it to this folder")
    dl.add_argument("--cache-dir", help="Hugging Face cache folder")
    dl.add_argument("--overwrite", action="store_true")
    dl.add_argument("-v", "--verbose", action="count", default=0, help=BACKEND_LOGS_HELP)
    push = zsub.add_parser("push", help="upload a model directory to the Hub")
    push.add_argument("directory")
    push.add_argument("--repo-id", required=True)
    push.add_argument("--private", action="store_true")
    z.set_defaults(func=cmd_zoo)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``nuclib`` console script; returns the exit status.

    ``KeyError``, ``ValueError``, ``FileNotFoundError``, ``FileExistsError``
    and ``RuntimeError`` from a command are printed as one line on stderr
    (status 2) instead of a traceback. Usage errors (also those found by a
    command's argument check, such as a missing input path or an existing
    ``--csv``) and ``--version`` exit through argparse (``SystemExit``).

    Args:
        argv: the arguments without the program name; default ``sys.argv[1:]``.

    Returns:
        Exit status: 0 success, 1 some inputs failed, 2 usage or input errors.

    Example:
        >>> main(["evaluate", "--true", "gt/", "--pred", "results/"])  # doctest: +SKIP
        0
    """
    args = build_parser().parse_args(argv)
    if getattr(args, "verbose", 0) < BACKEND_LOGS:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Arguments are checked before any model is loaded or image read.
    problem = args.check(args) if getattr(args, "check", None) else None
    if problem:
        args.subparser.error(problem)  # usage message, exit status 2
    try:
        return args.func(args)
    except BrokenPipeError:
        # The reader went away (``nuclib zoo info x | head``): not an error of ours.
        # Point stdout at /dev/null so Python's exit flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (KeyError, ValueError, OSError, RuntimeError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"nuclib {args.command}: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
