"""Train a recipe on an accelerator machine that has PyTorch or JAX but neither TensorFlow nor Keras.

The device machines lent to some sessions (one GPU, Python 3.12 with
PyTorch, JAX, NumPy, SciPy, scikit-image, OpenCV, numba, ...; no network,
no TensorFlow, no Keras) receive only the repository. This script is the
one prepared route there, in two steps:

1. **Here**, ``python benchmarks/device_train.py prepare`` copies the Keras
   wheels (``../shared/wheels-py312``) and DSB2018's ``train/`` and
   ``val/`` into ``.device/`` (ignored by git; about 41 MB, under the
   device tool's 64 MiB carry limit).
2. **There**, with the device tool's ``carry: [".device"]``::

       python3 benchmarks/device_train.py run recipes/dsb-star.toml --set train.epochs=100

   * installs the wheels into ``.device/site`` when Keras is missing (no
     network: ``pip install --no-index --no-deps --target``) and runs again
     with it and the repository on ``PYTHONPATH``;
   * picks ``KERAS_BACKEND=torch`` when PyTorch is there, else ``jax``
     (unless ``KERAS_BACKEND`` is set);
   * points the recipe's ``[data] train`` / ``val`` at ``.device/dsb2018``
     (``--data`` for another root) and its output at ``$OUT/<name>``
     (``--out``), applies ``--set section.key=VALUE`` (TOML values);
   * trains and finalizes with nuclib's own ``train`` (mixed bfloat16 on a
     GPU, as the recipe asks), and writes ``result.json`` beside the run:
     the backend, the hardware, the seconds and the validation scores.

Without a GPU it runs the same way on the CPU (``tests/test_backends.py``
runs a tiny recipe through it under JAX with TensorFlow made unimportable).
The trained model directory comes back under ``$OUT/<name>/model``; score it
here with ``python benchmarks/zoo.py --model PATH``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEVICE = REPO / ".device"
SHARED = REPO.parent / "shared"
CARRY_LIMIT = 64 * 2**20  # the device tool's limit on carried files


def prepare(data: Path, wheels: Path) -> None:
    """Copy the wheels and the data into ``.device/`` (replacing an older copy)."""
    if not (data / "train" / "images").is_dir():
        raise SystemExit(f"no DSB2018 data at {data} (expected train/ and val/ with images/ "
                         "and labels/); pass --data")
    found = sorted(wheels.glob("*.whl"))
    if not found:
        raise SystemExit(f"no wheels in {wheels}; pass --wheels")
    shutil.rmtree(DEVICE, ignore_errors=True)
    (DEVICE / "wheels").mkdir(parents=True)
    for wheel in found:
        shutil.copy2(wheel, DEVICE / "wheels")
    for split in ("train", "val"):
        shutil.copytree(data / split, DEVICE / "dsb2018" / split)
    size = sum(p.stat().st_size for p in DEVICE.rglob("*") if p.is_file())
    if size > CARRY_LIMIT:
        raise SystemExit(f".device/ holds {size / 2**20:.1f} MiB, over the device tool's "
                         f"{CARRY_LIMIT // 2**20} MiB carry limit")
    print(f"prepared .device/ ({size / 2**20:.1f} MiB: {len(found)} wheels, DSB2018 train/ "
          f"and val/); on the device run, with carry [\".device\"]:\n"
          f"  python3 benchmarks/device_train.py run RECIPE [--set train.epochs=N]")


def _ensure_keras() -> None:
    """Re-run this script with the carried Keras wheels when Keras is not installed."""
    if importlib.util.find_spec("keras") is not None:
        return
    if os.environ.get("NUCLIB_DEVICE_REEXEC"):
        raise SystemExit("keras is still missing after installing .device/wheels")
    wheels = sorted((DEVICE / "wheels").glob("*.whl"))
    if not wheels:
        raise SystemExit("keras is not installed and .device/wheels is empty: run "
                         "`python benchmarks/device_train.py prepare` here and carry .device")
    site = DEVICE / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                    "--target", str(site), *map(str, wheels)], check=True)
    env = dict(os.environ, NUCLIB_DEVICE_REEXEC="1",
               PYTHONPATH=os.pathsep.join([str(site), str(REPO),
                                           os.environ.get("PYTHONPATH", "")]))
    raise SystemExit(subprocess.run([sys.executable, *sys.argv], env=env).returncode)


def _override(recipe, assignment: str) -> None:
    """Apply one ``section.key=VALUE`` (VALUE in TOML: 3, 0.1, "text", {a = 1})."""
    target, sep, value = assignment.partition("=")
    section, dot, key = target.partition(".")
    if not (sep and dot and key):
        raise SystemExit(f"--set {assignment!r}: expected section.key=VALUE, "
                         f"e.g. train.epochs=100")
    try:
        parsed = tomllib.loads(f"value = {value}")["value"]
    except tomllib.TOMLDecodeError:
        parsed = value  # a bare word is a string
    recipe[section][key] = parsed  # a Recipe checks the value (and the key) here


def run(recipe_path: Path, data: Path, out: Path | None, assignments: list[str]) -> dict:
    """Train and finalize ``recipe_path`` on this machine; return the result summary."""
    _ensure_keras()
    if "KERAS_BACKEND" not in os.environ:
        os.environ["KERAS_BACKEND"] = ("torch" if importlib.util.find_spec("torch") is not None
                                       else "jax")
    sys.path.insert(0, str(REPO))
    from nuclib.recipe import load_recipe
    from nuclib.train import accelerator, train, training_hardware

    recipe = load_recipe(recipe_path)
    recipe["data"]["train"] = str(data / "train")
    recipe["data"]["val"] = str(data / "val")
    for assignment in assignments:
        _override(recipe, assignment)
    out = out or Path(os.environ.get("OUT", REPO / "runs")) / recipe["name"]
    result = train(recipe, output_dir=out)
    summary = {"recipe": str(recipe_path), "overrides": assignments,
               "backend": os.environ["KERAS_BACKEND"], "accelerator": accelerator(),
               "hardware": training_hardware(), "train_seconds": result["train_seconds"],
               "model_dir": str(result.get("model_dir", "")),
               "scores": {k: v for k, v in result.get("scores", {}).items()
                          if isinstance(v, (int, float))}}
    (Path(out) / "result.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))
    return summary


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="copy the wheels and the data into .device/ (here)")
    prep.add_argument("--data", type=Path, default=SHARED / "data" / "dsb2018")
    prep.add_argument("--wheels", type=Path, default=SHARED / "wheels-py312")
    go = sub.add_parser("run", help="train a recipe (on the device machine)")
    go.add_argument("recipe", type=Path)
    go.add_argument("--data", type=Path, default=DEVICE / "dsb2018",
                    help="folder with train/ and val/ (default .device/dsb2018)")
    go.add_argument("--out", type=Path, default=None,
                    help="run folder (default $OUT/<recipe name>)")
    go.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override a recipe value (TOML), e.g. train.epochs=100 (repeatable)")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        prepare(args.data, args.wheels)
    else:
        run(args.recipe, args.data, args.out, args.set)


if __name__ == "__main__":
    main()
