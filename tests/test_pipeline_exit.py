"""A script that leaves tf.data pipelines prefetching must still exit (issue 18).

The script below used to hang for ever at exit: tf.data was running one of
nuclib's Python generators on its own thread when Python started to
finalize, Python ended that thread when it took the GIL back, and the
iterator's destructor waited for it. ``pipeline._EXIT_GUARD`` stops the
pipelines in an ``atexit`` hook first. ``--without-guard`` removes the hook
(to check by hand that the script still reproduces the hang).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import atexit, sys
    import numpy as np
    from nuclib.data import pipeline
    from nuclib.data.augment import default_augment

    rng = np.random.default_rng(0)
    images = [rng.random((64, 64, 1), dtype=np.float32) for _ in range(4)]
    labels = [np.zeros((64, 64), np.int32) for _ in range(4)]
    for lab in labels:
        lab[10:24, 12:30] = 1
        lab[30:50, 30:44] = 2
    aug = default_augment(seed=0)
    aug({"images": images[0], "labels": labels[0]})  # one eager call on a NumPy dict
    batches = iter(pipeline.make_dataset(data=(images, labels), crop_size=32, batch_size=2,
                                         augment=aug, seed=0, progress=False))
    for _ in range(21):
        next(batches)
    # A NumPy target (tf.numpy_function in a parallel map) left prefetching too.
    stars = iter(pipeline.make_dataset(data=(images, labels), crop_size=32, batch_size=2,
                                       target="star", n_rays=8, seed=0, progress=False))
    for _ in range(3):
        next(stars)
    if "--without-guard" in sys.argv:
        atexit.unregister(pipeline._EXIT_GUARD.drain)
    print("batches taken", flush=True)
""")

# Not a speed limit: the script takes about 15 s; only a hang comes near this.
HANG_S = 300


def test_script_with_prefetching_pipelines_exits():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    try:
        done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                              timeout=HANG_S, env=env)
    except subprocess.TimeoutExpired as err:  # subprocess.run has killed the child
        out = err.stdout.decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
        pytest.fail(f"the script had not exited after {HANG_S} s (hang at exit); its "
                    f"output: {out!r}")
    assert "batches taken" in done.stdout, done.stderr[-3000:]
    assert done.returncode == 0, done.stderr[-3000:]
