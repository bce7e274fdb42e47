"""The ``nuclib`` command line: segment, evaluate, train, zoo.

Examples::

    nuclib segment images/*.tif --model dsb-3class --out results/ --overlay
    nuclib evaluate --true gt/ --pred results/ --csv scores.csv
    nuclib train recipes/dsb-3class.toml
    nuclib zoo list

Exit status: 0 when everything succeeded, 1 when any input failed (the
others are still processed), 2 for usage errors.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

LABEL_SUFFIX = "_labels"


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of pixels, got {text!r}")
    return value


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


def cmd_segment(args) -> int:
    """``nuclib segment``: write ``<stem>_labels.<format>`` for every input image.

    Folders are expanded to their image files (sorted, hidden files skipped).
    Images whose label file already exists are skipped unless ``--overwrite``;
    a file that fails is reported at the end and the others are still
    processed.

    Args:
        args: parsed arguments with ``inputs``, ``model``, ``source``,
            ``out``, ``format``, ``diameter``, ``tta``, ``set`` (post-processing
            overrides as ``(key, value)`` pairs), ``overlay``, ``overwrite``,
            ``no_progress`` and ``verbose``.

    Returns:
        Exit status: 0 all done, 1 any image failed, 2 no input images found,
        a ``--diameter`` for a model that cannot zoom, or an unusable ``--set``.

    Example:
        >>> main(["segment", "images/", "--out", "results/", "--overlay"])  # doctest: +SKIP
        0
    """
    from tqdm.auto import tqdm

    from nuclib.data.io import read_image, write_image, write_labels
    from nuclib.zoo import load_pretrained

    files = _inputs(args.inputs)
    if not files:
        print("nuclib segment: no input images found", file=sys.stderr)
        return 2
    out_dir = Path(args.out)
    segmenter = load_pretrained(args.model, source=args.source)
    if args.diameter is not None and segmenter.config["diameter"] is None:
        print(f"nuclib segment: model {args.model!r} works at each image's own scale; "
              "--diameter needs a model trained at one nucleus size", file=sys.stderr)
        return 2
    try:
        overrides = _postprocess_overrides(segmenter, args.set or [])
    except ValueError as err:
        print(f"nuclib segment: {err}", file=sys.stderr)
        return 2
    failed: list[tuple[Path, str]] = []
    done = skipped = 0
    seen: dict[str, Path] = {}
    for path in tqdm(files, desc="segmenting", disable=args.no_progress):
        if path.stem in seen:
            # Same name from two folders: refuse rather than overwrite the first result.
            failed.append((path, f"its name clashes with {seen[path.stem]}; outputs would "
                                 "overwrite each other (segment the folders separately)"))
            continue
        seen[path.stem] = path
        label_path = out_dir / f"{path.stem}{LABEL_SUFFIX}.{args.format}"
        overlay_path = out_dir / f"{path.stem}_overlay.png"
        if label_path.exists() and not args.overwrite:
            skipped += 1
            continue
        try:
            image = read_image(path)
            pred = segmenter.predict_scaled(image, diameter=args.diameter,
                                            tta=True if args.tta else None)
            labels = segmenter.labels_from(pred, **overrides)
            write_labels(label_path, labels)
            if args.overlay:
                from nuclib.viz import overlay_rgb

                write_image(overlay_path, overlay_rgb(image, labels))
            done += 1
            if args.verbose:
                size = "" if pred.diameter is None else f" (diameter {pred.diameter:.1f} px)"
                print(f"{path}: {int(labels.max())} nuclei{size} -> {label_path}")
        except Exception as err:  # keep going past one bad file; report it at the end
            failed.append((path, f"{type(err).__name__}: {err}"))
    print(f"segmented {done}, skipped {skipped} existing (use --overwrite to redo), "
          f"failed {len(failed)}", file=sys.stderr)
    for path, message in failed:
        print(f"FAILED {path}: {message}", file=sys.stderr)
    return 1 if failed else 0


def _match_predictions(true_dir: Path, pred_dir: Path):
    from nuclib.data.io import list_images

    truths = {p.stem: p for p in list_images(true_dir)}
    preds = {}
    for p in list_images(pred_dir):
        stem = p.stem[: -len(LABEL_SUFFIX)] if p.stem.endswith(LABEL_SUFFIX) else p.stem
        if not stem.endswith("_overlay"):
            preds[stem] = p
    return truths, preds


def cmd_evaluate(args) -> int:
    """``nuclib evaluate``: score a folder of predicted labels against ground truth.

    Predictions are matched to truths by file stem, with an optional
    ``_labels`` suffix (``_overlay`` images are ignored; predictions without
    a truth are ignored silently). Prints ``Report.table()`` and optionally
    writes the CSV.

    Args:
        args: parsed arguments with ``true``, ``pred``, ``csv``,
            ``thresholds`` and ``overwrite``.

    Returns:
        Exit status: 0 every truth had a readable prediction of the same
        shape; 1 a prediction was missing or failed, or the CSV exists and
        ``--overwrite`` was not given; 2 nothing matched.

    Raises:
        FileNotFoundError: a missing folder.
        ValueError: a folder without image files, or invalid thresholds.
            (A prediction whose shape differs from its truth is reported as
            failed, not raised.)

    Example:
        >>> main(["evaluate", "--true", "gt/", "--pred", "results/", "--csv", "scores.csv"])  # doctest: +SKIP
        0
    """
    from nuclib.data.io import read_labels
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
    ys_true, ys_pred, failed = [], [], []
    ok_names = []
    for name in names:
        try:
            y_true, y_pred = read_labels(truths[name]), read_labels(preds[name])
            if y_true.shape != y_pred.shape:
                raise ValueError(f"shape {y_pred.shape} differs from the truth {y_true.shape}")
            ys_true.append(y_true)
            ys_pred.append(y_pred)
            ok_names.append(name)
        except Exception as err:
            failed.append((name, f"{type(err).__name__}: {err}"))
    for name, message in failed:
        print(f"FAILED {name}: {message}", file=sys.stderr)
    if not ys_true:
        return 1
    report = evaluate(ys_true, ys_pred, names=ok_names,
                      thresholds=tuple(args.thresholds))
    print(report.table())
    if args.csv:
        if Path(args.csv).exists() and not args.overwrite:
            print(f"{args.csv} exists; not overwritten (use --overwrite)", file=sys.stderr)
            return 1
        report.to_csv(args.csv)
    return 1 if (failed or missing) else 0


def cmd_train(args) -> int:
    """``nuclib train``: run ``nuclib.train.train`` and print its result as JSON.

    The printed result leaves out the (long) history.

    Args:
        args: parsed arguments with ``recipe`` and ``out``.

    Returns:
        Exit status 0 (errors propagate as exceptions; ``main`` turns the
        usual ones into status 2).

    Example:
        >>> main(["train", "recipes/dsb-3class.toml", "--out", "runs/try"])  # doctest: +SKIP
        0
    """
    from nuclib.train import train

    result = train(args.recipe, output_dir=args.out)
    print(json.dumps({k: v for k, v in result.items() if k != "history"}, indent=2,
                     default=str))
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
        ``evaluate``, ``train`` and ``zoo``.

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
    seg.add_argument("--tta", action="store_true",
                     help="average the 8 rotations and mirrors of each image (8x slower)")
    seg.add_argument("--set", type=_key_value, action="append", metavar="KEY=VALUE",
                     help="override a post-processing parameter of the model, e.g. "
                          "--set min_size=30 --set seed_split_height=2 (repeatable)")
    seg.add_argument("--overlay", action="store_true", help="also write <name>_overlay.png")
    seg.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    seg.add_argument("--no-progress", action="store_true", help="no progress bar")
    seg.add_argument("-v", "--verbose", action="store_true", help="print one line per image")
    seg.set_defaults(func=cmd_segment)

    ev = sub.add_parser("evaluate", help="score predicted labels against ground truth")
    ev.add_argument("--true", required=True, help="folder of ground-truth label images")
    ev.add_argument("--pred", required=True, help="folder of predicted label images")
    ev.add_argument("--csv", help="write the per-image rows to this CSV")
    ev.add_argument("--thresholds", type=float, nargs="+", default=[0.5, 0.75, 0.9])
    ev.add_argument("--overwrite", action="store_true", help="replace an existing CSV")
    ev.set_defaults(func=cmd_evaluate)

    tr = sub.add_parser("train", help="train a model from a TOML recipe")
    tr.add_argument("recipe")
    tr.add_argument("--out", help="output folder (overrides the recipe's)")
    tr.set_defaults(func=cmd_train)

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
    (status 2) instead of a traceback. Usage errors and ``--version`` exit
    through argparse (``SystemExit``).

    Args:
        argv: the arguments without the program name; default ``sys.argv[1:]``.

    Returns:
        Exit status: 0 success, 1 some inputs failed, 2 usage or input errors.

    Example:
        >>> main(["evaluate", "--true", "gt/", "--pred", "results/"])  # doctest: +SKIP
        0
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (KeyError, ValueError, OSError, RuntimeError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"nuclib {args.command}: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
