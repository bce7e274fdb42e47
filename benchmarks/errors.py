"""Where a zoo model's errors on DSB2018 ``val/`` come from: missed, merged, split, spurious.

For each modality, pooled AP@0.5 with its true positives, false positives
and false negatives (nuclib's own matching), and every error sorted into one
kind:

* false negatives: *missed* (no predicted pixel on the nucleus), *merged*
  (the prediction that covers it most also covers at least half of another
  true nucleus), *low IoU* (found, but matched below IoU 0.5);
* false positives: *spurious* (less than 10% of it on any true nucleus),
  *merger* (it covers at least half of two or more true nuclei), *split
  piece* (at least half of it inside one true nucleus: a fragment), *other*.

It also lists the images holding the most false negatives, and for each
modality the pooled AP@0.5 without its worst image and the mean of the
per-image AP@0.5 (the other aggregate papers report). Two
post-processing settings run in the same process on the same predictions:
the thresholds recorded in the model (the baseline) and the same with
``--compare KEY=VALUE`` changes (default: seed splitting off,
``seed_split_height=0``), so the table shows what a parameter fixes.

Run ``python benchmarks/errors.py`` (about a minute on 2 cores), or
``--model NAME_OR_DIR``, ``--compare min_size=16``.
"""

from __future__ import annotations

import argparse
import os
from collections import Counter
from pathlib import Path

import numpy as np
from _common import print_table

from nuclib.cli import _key_value  # the parser of `nuclib segment --set KEY=VALUE`
from nuclib.evaluation import read_modalities

DSB = Path(os.environ.get("NUCLIB_DSB2018",
                          Path(__file__).resolve().parents[2] / "shared" / "data" / "dsb2018"))


def classify_errors(truth: np.ndarray, pred: np.ndarray) -> Counter:
    """Counts of true positives and of each error kind (see the module docstring) at IoU 0.5.

    True positives are ``nuclib.metrics.matching``'s, so the counts add up to
    the pooled scores the model records.

    Example:
        >>> truth = np.array([[1, 1, 0, 2, 2, 0, 3]])
        >>> pred = np.array([[1, 1, 0, 4, 4, 0, 0]])
        >>> sorted(classify_errors(truth, pred).items())
        [('missed', 1), ('tp', 2)]
        >>> truth = np.array([[1, 1, 1, 2, 2, 2, 0, 3, 3, 3, 3, 3]])  # two touching, one large
        >>> pred = np.array([[1, 1, 1, 1, 1, 1, 0, 2, 2, 3, 3, 3]])   # merged; split 2 + 3
        >>> sorted(classify_errors(truth, pred).items())  # the merge still matches one (IoU 0.5)
        [('merged', 1), ('split piece', 1), ('tp', 2)]
    """
    from nuclib.metrics import matching

    t, p = truth.ravel().astype(np.int64), pred.ravel().astype(np.int64)
    t_ids, t_area = np.unique(t[t > 0], return_counts=True)
    p_ids, p_area = np.unique(p[p > 0], return_counts=True)
    both = (t > 0) & (p > 0)
    pairs, inter = np.unique(np.stack([t[both], p[both]]), axis=1, return_counts=True)
    ti = np.searchsorted(t_ids, pairs[0])
    pj = np.searchsorted(p_ids, pairs[1])
    # true positives exactly as nuclib.metrics counts them (IoU >= 0.5, one-to-one)
    matched = matching(truth, pred, thresh=0.5, report_matches=True).matched_pairs
    t_matched = np.isin(t_ids, [a for a, _ in matched])
    p_matched = np.isin(p_ids, [b for _, b in matched])
    counts = Counter(tp=len(matched))
    for i in np.flatnonzero(~t_matched):
        mine = ti == i
        if not mine.any():
            counts["missed"] += 1
            continue
        j = pj[mine][np.argmax(inter[mine])]
        covers = (pj == j) & (ti != i) & (inter >= 0.5 * t_area[ti])
        counts["merged" if covers.any() else "low IoU"] += 1
    for j in np.flatnonzero(~p_matched):
        mine = pj == j
        on_nuclei = inter[mine].sum() if mine.any() else 0
        if on_nuclei < 0.1 * p_area[j]:
            counts["spurious"] += 1
        elif (mine & (inter >= 0.5 * t_area[ti])).sum() >= 2:
            counts["merger"] += 1
        elif inter[mine].max() >= 0.5 * p_area[j]:
            counts["split piece"] += 1
        else:
            counts["other FP"] += 1
    return counts


def _fn(c: Counter) -> int:
    return c["missed"] + c["merged"] + c["low IoU"]


def _errors(c: Counter) -> int:
    return _fn(c) + c["spurious"] + c["merger"] + c["split piece"] + c["other FP"]


def _print_worst_image_share(pairs, per_image, modality) -> None:
    """Per modality: the worst image, its share of errors, the pooled AP@0.5 without it, and
    the mean of per-image AP@0.5.

    One dense image can hold a third of a modality's errors; this says how
    much of the pooled score is that one image.
    """
    for group in sorted(set(modality[p.stem] for p, _ in pairs)):
        members = [(p.stem, c) for (p, _), c in zip(pairs, per_image) if modality[p.stem] == group]
        stem, worst = max(members, key=lambda m: _errors(m[1]))
        total, rest = Counter(), Counter()
        for name, c in members:
            total.update(c)
            if name != stem:
                rest.update(c)
        # Papers differ in how they aggregate: pooled counts (nuclib's AP) or a mean of
        # per-image scores, which weighs a 10-nucleus image like a 375-nucleus one.
        mean_ap = np.mean([c["tp"] / (c["tp"] + _errors(c)) if c["tp"] + _errors(c) else 1.0
                           for _, c in members])
        nuclei = worst["tp"] + _fn(worst), total["tp"] + _fn(total)
        print(f"{group}: worst image {stem[:10]} holds {nuclei[0]} of {nuclei[1]} nuclei and "
              f"{_errors(worst)} of {_errors(total)} errors; pooled AP@0.5 {total['tp'] / (total['tp'] + _errors(total)):.3f}, "
              f"without it {rest['tp'] / max(rest['tp'] + _errors(rest), 1):.3f}; "
              f"mean of per-image AP@0.5 {mean_ap:.3f}")


def run(model: str = "dsb-3class", compare: dict | None = None) -> list[dict]:
    """Error counts per modality for the recorded and the compared post-processing."""
    import nuclib
    from nuclib.data import folder_pairs, read_image, read_labels

    compare = {"seed_split_height": 0.0} if compare is None else compare
    modality = read_modalities(DSB)
    pairs = folder_pairs(DSB / "val")
    seg = nuclib.load_pretrained(model)
    preds = [seg.predict_scaled(read_image(p)) for p, _ in pairs]
    truths = [read_labels(lab) for _, lab in pairs]
    rows, worst = [], {}
    settings = {"recorded": {}, ", ".join(f"{k}={v}" for k, v in compare.items()): compare}
    for name, overrides in settings.items():
        per_image = [classify_errors(y, seg.labels_from(pred, **overrides))
                     for y, pred in zip(truths, preds)]
        groups: dict[str, Counter] = {}
        for (path, _), counts in zip(pairs, per_image):
            for group in (modality[path.stem], "all"):
                groups.setdefault(group, Counter()).update(counts)
        for group in sorted(groups):
            c = groups[group]
            fp = c["spurious"] + c["merger"] + c["split piece"] + c["other FP"]
            fn = _fn(c)
            rows.append({"post-processing": name, "group": group,
                         "AP@0.5": c["tp"] / max(c["tp"] + fp + fn, 1),
                         "TP": c["tp"], "FP": fp, "spurious": c["spurious"], "merger": c["merger"],
                         "split piece": c["split piece"], "other FP": c["other FP"], "FN": fn,
                         "missed": c["missed"], "merged": c["merged"], "low IoU": c["low IoU"]})
        if name == "recorded":
            _print_worst_image_share(pairs, per_image, modality)
        worst[name] = sorted(((_fn(c), c["missed"], p.stem[:10])
                              for (p, _), c in zip(pairs, per_image)), reverse=True)[:5]
    for name, images in worst.items():
        print(f"most false negatives ({name}): " + "; ".join(
            f"{stem} {fn} ({missed} missed)" for fn, missed, stem in images))
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="dsb-3class", help="zoo name or model directory")
    parser.add_argument("--compare", type=_key_value, action="append", metavar="KEY=VALUE",
                        help="post-processing change to compare with (default "
                             "seed_split_height=0)")
    args = parser.parse_args(argv)
    print_table(run(args.model, dict(args.compare) if args.compare else None), digits=3)


if __name__ == "__main__":
    main()
