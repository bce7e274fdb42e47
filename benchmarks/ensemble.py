"""Does averaging models help? An ensemble against its members on DSB2018 ``val/``.

Each member is scored as it ships (its own tuned post-processing), then the
ensemble (``nuclib.ensemble.ensemble``: one flat network averaging the
members' probabilities) has its post-processing tuned on ``val/`` exactly as
training tunes a member (``nuclib.evaluation.tune_thresholds``), and is
scored the same way (``evaluate_segmenter``: pooled AP at IoU 0.5 / 0.75 /
0.9, F1, DSB score, per modality; end-to-end seconds per megapixel). Like
the members' scores, the ensemble's are therefore tuned and measured on the
same images: slightly optimistic for all rows alike.

Members must share head, input channels, normalization and training nucleus
size. The default members are the bundled ``dsb-3class`` and every finished
three-class run of ``benchmarks/architectures.py`` (``runs/architectures/*/model``),
which are trained at the same 20-pixel nucleus size.

Usage:
    python benchmarks/ensemble.py                          # dsb-3class + the architecture runs
    python benchmarks/ensemble.py --model dsb-3class --model runs/x/model
    python benchmarks/ensemble.py --quick                  # 2 images per modality

Needs ``../shared/data/dsb2018`` (or ``NUCLIB_DSB2018``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _common import dsb2018_root, print_table

ROOT = Path(__file__).resolve().parents[1]
DSB = dsb2018_root()


def val_pairs(quick: bool) -> list:
    """The ``val/`` pairs, or the first two of each modality with ``quick``."""
    from nuclib.data import folder_pairs
    from nuclib.evaluation import read_modalities

    pairs = folder_pairs(DSB / "val")
    if not quick:
        return pairs
    modality, kept = read_modalities(DSB), {}
    for pair in pairs:
        kept.setdefault(modality.get(pair[0].stem, "all"), []).append(pair)
    return [pair for group in kept.values() for pair in group[:2]]


def default_members() -> list[str]:
    runs = sorted((ROOT / "runs" / "architectures").glob("*/model/nuclib.json"))
    return ["dsb-3class", *(str(run.parent) for run in runs)]


def rows_of(method: str, report, seconds_per_mp: float) -> list[dict]:
    groups = report.summary.get("groups") or {"all": report.summary}
    out = [{"method": method, "group": "all", **_scores(report.summary),
            "s/MP": round(seconds_per_mp, 2)}]
    out += [{"method": method, "group": group, **_scores(s), "s/MP": ""}
            for group, s in sorted(groups.items()) if group != "all"]
    return out


def _scores(summary: dict) -> dict:
    return {key: round(summary[key], 3) for key in ("ap50", "ap75", "ap90", "f1_50", "dsb_score")
            if key in summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", metavar="NAME_OR_DIR",
                        help="a member (zoo name or model directory); repeat for each")
    parser.add_argument("--quick", action="store_true", help="2 images per modality")
    args = parser.parse_args()

    import nuclib
    from nuclib.ensemble import ensemble
    from nuclib.evaluation import evaluate_segmenter, tune_thresholds

    names = args.model or default_members()
    if len(names) < 2:
        parser.error(f"an ensemble needs two members or more, got {names}; train some with "
                     "benchmarks/architectures.py or pass --model twice")
    pairs = val_pairs(args.quick)
    members = [nuclib.load_pretrained(name, engine="keras") for name in names]
    rows = []
    for name, member in zip(names, members):
        report, speed = evaluate_segmenter(member, pairs, progress=False)
        member_rows = rows_of(Path(name).parent.name if "/" in name else name, report, speed)
        print(member_rows[0], flush=True)
        rows += member_rows
    both = ensemble(members, name="ensemble")
    # First with the first member's post-processing (what ensemble() starts from) ...
    report, speed = evaluate_segmenter(both, pairs, progress=False)
    rows += rows_of(f"ensemble of {len(members)}, first member's post-processing", report, speed)
    # ... then tuned for the averaged maps, which are smoother than each member's.
    search, _ = tune_thresholds(both, pairs, progress=False)
    # End to end, as the members were scored (the size estimate included).
    report, speed = evaluate_segmenter(both, pairs, progress=False)
    rows += rows_of(f"ensemble of {len(members)}, tuned", report, speed)
    print(f"\nval/ ({len(pairs)} images); ensemble post-processing tuned there: "
          f"{search['params']}\n")
    print_table(rows)


if __name__ == "__main__":
    main()
