"""Which architecture for nuclei? Every factory trained for the same wall-clock budget.

Each factory of ``nuclib.models.FACTORIES`` is trained by the same recipe
(``recipes/dsb-3class-stage1.toml``: three-class head, the same data,
augmentation and loss; images zoomed to 20-pixel nuclei as the zoo's
``dsb-3class``), from scratch, for the same wall-clock budget, then
finalized by nuclib's own ``finalize`` (thresholds tuned on ``val/``,
scores on ``val/`` per modality with nuclib's metrics).

The budget is turned into steps per factory: a probe times its training
step (``train_on_batch`` on a batch of the recipe's crops, median of a few
after warm-up; every factory's probe runs first, back to back, so all share
the machine's load) and the run gets ``budget / step time`` steps. The
steps are then fixed, so the learning-rate schedule runs to its end, and a
busy machine slows every run alike instead of cutting one short.

Columns: parameters, training step (s), steps trained, val AP@0.5 (all,
fluorescence), AP@0.75 (fluorescence), and the network's CPU time per
512 x 512 tile (``predict_on_batch``, batch 1, median of 5).

Usage:
    python benchmarks/architectures.py --minutes 15            # every factory
    python benchmarks/architectures.py --minutes 1 --only unet swin_unet
    python benchmarks/architectures.py --quick                 # tiny smoke run (minutes)
    python benchmarks/architectures.py --score-only            # the finished runs' table again

Runs go to ``runs/architectures/<factory>``; a factory whose finished
model directory is there is scored again without training (delete it to
retrain). ``--score-only`` trains nothing and probes nothing: it reads
every finished run's record (steps, scores, its probe's step time from
``results.json`` where recorded) and times all the networks' tiles in one
process, one after the other, so that the speed column shares one load.
Results are also written to ``runs/architectures/results.json``.
Needs ``../shared/data/dsb2018`` (or ``NUCLIB_DSB2018``).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from _common import dsb2018_root, median_seconds, print_table

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "dsb-3class-stage1.toml"

# Each factory near its documented default, sized like the zoo U-Net (about 2 M
# parameters) where it has a width; the encoders of the applications keep theirs.
CANDIDATES = {
    "unet": dict(depth=4, filters=16, dropout=0.1),
    "attention_unet": dict(depth=4, filters=16),
    "multires_unet": dict(depth=4, filters=16),
    "unet3plus": dict(depth=4, filters=16),
    "mobilenet_unet": dict(alpha=0.35, decoder_filters=(128, 64, 32, 16)),
    "efficientnet_unet": dict(encoder="EfficientNetB0"),
    "deeplabv3plus": dict(filters=16, aspp_filters=128, decoder_filters=128),
    "swin_unet": dict(embed_dim=48, num_heads=(2, 4, 8, 16)),
}


def candidate_args(factory: str, quick: bool) -> dict:
    """The factory's arguments for this comparison (for ``--quick`` the smallest of each,
    ``nuclib.models.SMALL_ARGS``, for a smoke run of the whole route)."""
    from nuclib.models import SMALL_ARGS

    return dict((SMALL_ARGS if quick else CANDIDATES).get(factory, {}))


def recipe_for(factory: str, args: dict, *, steps: int, epochs: int, out: Path,
               quick: bool):
    """The shared recipe (a ``nuclib.recipe.Recipe``) with this factory, a step budget and its own run folder."""
    from nuclib.recipe import load_recipe

    recipe = load_recipe(RECIPE)
    dsb = dsb2018_root()
    recipe["name"] = f"arch-{factory}"
    recipe["model"] = {**recipe["model"], "factory": factory,
                       "args": {**args, "head": "three_class"}}
    recipe["data"].update(train=str(dsb / "train"), val=str(dsb / "val"), diameter=20.0)
    if quick:
        recipe["data"].update(max_images=4, crop_size=64, batch_size=2)
    recipe["train"].update(epochs=epochs, steps_per_epoch=max(1, steps // epochs))
    recipe["output"].update(dir=str(out), sample_image=None, finalize=True)
    return recipe


def step_seconds(recipe: dict, repeats: int = 3) -> tuple[float, int]:
    """(median seconds of one training step on a batch of the recipe's crops, parameters)."""
    import keras
    import numpy as np

    from nuclib.recipe import build_loss, build_model, build_optimizer
    from nuclib.train import bfloat16_is_native

    keras.utils.set_random_seed(0)
    previous = keras.mixed_precision.global_policy()
    if recipe["train"]["mixed_precision"] and bfloat16_is_native():  # as train() runs it
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_model(recipe)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    model.compile(optimizer=build_optimizer(recipe), loss=build_loss(recipe))
    size, batch = recipe["data"]["crop_size"], recipe["data"]["batch_size"]
    rng = np.random.default_rng(0)
    x = rng.random((batch, size, size, recipe["model"]["input_channels"]), np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, (batch, size, size))]
    seconds = median_seconds(lambda: model.train_on_batch(x, y), warmup=2, repeats=repeats)
    return seconds, int(model.count_params())


def tile_seconds(model_dir: Path, side: int = 512) -> tuple[float, int]:
    """(median CPU seconds of the finished network on one ``side`` x ``side`` tile,
    its parameters)."""
    import numpy as np

    from nuclib.model_dir import load_keras_model

    model = load_keras_model(model_dir)
    x = np.random.default_rng(0).random((1, side, side, 1), np.float32)
    seconds = median_seconds(lambda: model.predict_on_batch(x), warmup=1, repeats=5)
    return seconds, int(model.count_params())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=15.0,
                        help="wall-clock training budget per factory")
    parser.add_argument("--only", nargs="+", metavar="FACTORY", help="these factories only")
    parser.add_argument("--quick", action="store_true",
                        help="tiny models, 4 images, 64-pixel crops: a smoke run")
    parser.add_argument("--out", default=str(ROOT / "runs" / "architectures"))
    parser.add_argument("--score-only", action="store_true",
                        help="train and probe nothing: the table of the finished runs, with "
                             "every network's tile timed in this process")
    args = parser.parse_args()

    from nuclib import models
    from nuclib.model_dir import check_model_dir
    from nuclib.train import train

    out_root = Path(args.out)
    factories = args.only or list(models.FACTORIES)
    unknown = sorted(set(factories) - set(models.FACTORIES))
    if unknown:
        parser.error(f"unknown factories {unknown}; expected some of {sorted(models.FACTORIES)}")
    if args.score_only:
        factories = [f for f in factories if (out_root / f / "model" / "record.json").is_file()]
        if not factories:
            parser.error(f"no finished run in {out_root}")
    budget = 0.1 if args.quick else args.minutes
    rows = []
    # Every factory's step is timed first, back to back, so that all probes share
    # the machine's load: probing each just before its own run let a busy spell
    # (another job, the test suite) shrink one factory's budget and not the next's.
    # The probes are kept (probes.json), since they set each run's steps.
    probes_file = out_root / "probes.json"
    probes = json.loads(probes_file.read_text()) if probes_file.is_file() else {}
    for factory in [] if args.score_only else factories:
        probe = recipe_for(factory, candidate_args(factory, args.quick), steps=1, epochs=1,
                           out=out_root / factory, quick=args.quick)
        probes[factory] = step_seconds(probe)
        print(f"{factory}: {probes[factory][0]:.3f} s per step", flush=True)
        out_root.mkdir(parents=True, exist_ok=True)
        probes_file.write_text(json.dumps(probes, indent=2) + "\n")
    for factory in factories:
        factory_args = candidate_args(factory, args.quick)
        out = out_root / factory
        step = probes.get(factory, (float("nan"),))[0]
        steps = max(4, int(budget * 60 / step)) if step == step else 0
        epochs = min(8, max(1, math.ceil(steps / 100)))
        model_dir = out / "model"
        started = time.time()
        if not (model_dir / "record.json").is_file():
            recipe = recipe_for(factory, factory_args, steps=steps, epochs=epochs, out=out,
                                quick=args.quick)
            (out / "recipe.requested.json").parent.mkdir(parents=True, exist_ok=True)
            (out / "recipe.requested.json").write_text(
                json.dumps(recipe.to_dict(), indent=2, default=str))
            train(recipe)
        record = check_model_dir(model_dir).record
        tile, parameters = tile_seconds(model_dir)
        groups = record["scores"].get("groups", {})
        fluorescence = groups.get("fluorescence", record["scores"])
        rows.append({
            "factory": factory, "parameters": parameters, "step (s)": round(step, 3),
            "steps": record["training"]["epochs"] * record["training"]["steps_per_epoch"],
            "train (min)": round(record["training"]["seconds"] / 60, 1),
            "AP@0.5 all": round(record["scores"]["ap50"], 3),
            "AP@0.5 fluor.": round(fluorescence["ap50"], 3),
            "AP@0.75 fluor.": round(fluorescence.get("ap75", float("nan")), 3),
            "512² tile (s)": round(tile, 3),
            "wall (min)": round((time.time() - started) / 60, 1)})
        print(json.dumps(rows[-1]), flush=True)
        (out_root / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"\nThe finished runs in {out_root}\n" if args.score_only else
          f"\nEvery factory, {budget:g} min of training each "
          f"(recipes/dsb-3class-stage1.toml, 20-pixel nuclei)\n")
    print_table(rows)


if __name__ == "__main__":
    main()
