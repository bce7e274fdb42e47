"""Loading a zoo model's Keras network, per backend: nuclib's loader against Keras's own route.

``nuclib.model_dir.load_keras_model`` builds the network inside
``initializers_deferred`` (``nuclib/lazy_weights.py``) and fills it from
``model.weights.h5``; the baseline is Keras alone,
``deserialize_keras_object`` then ``load_weights``, which runs every
weight's initializer first. Each measurement is a fresh Python (JAX keeps
its compiled kernels for the life of a process, so a second load in one
process would measure a warm cache), the two routes alternating, and the
time is the load alone (imports excluded).

Usage:
    python benchmarks/load_time.py                       # jax, tensorflow, torch; 2 rounds
    python benchmarks/load_time.py --backend jax --rounds 3
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from statistics import median

from _common import print_table

ROOT = Path(__file__).resolve().parents[1]
CODE = '''
import json, sys, time
import keras
from nuclib.model_dir import load_keras_model, register_keras_objects
register_keras_objects()
folder, route = sys.argv[1], sys.argv[2]
start = time.perf_counter()
if route == "nuclib":
    model = load_keras_model(folder)
else:
    model = keras.saving.deserialize_keras_object(
        json.load(open(folder + "/config.json")), safe_mode=True)
    model.load_weights(folder + "/model.weights.h5")
print(json.dumps({"seconds": time.perf_counter() - start, "weights": len(model.weights)}))
'''


def load_seconds(backend: str, folder: Path, route: str) -> float:
    env = dict(os.environ, KERAS_BACKEND=backend, JAX_PLATFORMS="cpu", CUDA_VISIBLE_DEVICES="",
               TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", CODE, str(folder), route], env=env,
                          capture_output=True, text=True, cwd=ROOT, timeout=900)
    if done.returncode:
        raise SystemExit(f"{backend} {route} {folder.name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["seconds"]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", action="append",
                        help="jax, tensorflow or torch (repeatable; default: every installed one)")
    parser.add_argument("--rounds", type=int, default=2, help="fresh processes per route (2)")
    args = parser.parse_args(argv)
    backends = args.backend or [b for b in ("jax", "tensorflow", "torch")
                                if importlib.util.find_spec(b) is not None]
    zoo = sorted(p for p in (ROOT / "nuclib" / "zoo" / "bundled").iterdir()
                 if (p / "config.json").is_file())
    rows = []
    for backend in backends:
        for folder in zoo:
            seconds = {"keras": [], "nuclib": []}
            for _ in range(args.rounds):  # alternating: the load hits both routes alike
                for route in seconds:
                    seconds[route].append(load_seconds(backend, folder, route))
            keras_s, nuclib_s = median(seconds["keras"]), median(seconds["nuclib"])
            rows.append({"backend": backend, "model": folder.name,
                         "Keras alone (s)": round(keras_s, 2),
                         "load_keras_model (s)": round(nuclib_s, 2),
                         "speed-up": f"{keras_s / nuclib_s:.1f}x"})
            print(rows[-1], flush=True)
    print_table(rows)


if __name__ == "__main__":
    main()
