"""Run code in a fresh Python where TensorFlow is not installed, under another backend.

The accelerator machines that the backends issue targets have JAX and PyTorch but
no TensorFlow. These helpers hide TensorFlow from a subprocess (as if it were not
installed: ``importlib.util.find_spec("tensorflow")`` is ``None`` and ``import
tensorflow`` raises ``ModuleNotFoundError``), so that the tests see what a user on
such a machine sees.

Example::

    out = run_without_tensorflow('print(json.dumps({"ok": True}))', backend="torch")
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Run first in the subprocesses. Every finder on sys.meta_path is wrapped, rather
# than one finder put in front that raises: PyTorch's dynamo probes optional
# packages with find_spec at import time, and must get None, as on a machine
# without TensorFlow.
NO_TENSORFLOW = textwrap.dedent('''
    import sys
    class _WithoutTensorFlow:
        def __init__(self, finder):
            self.finder = finder
        def find_spec(self, name, path=None, target=None):
            if name == "tensorflow" or name.startswith("tensorflow."):
                return None
            return self.finder.find_spec(name, path, target)
        def __getattr__(self, attribute):
            return getattr(self.finder, attribute)
    sys.meta_path[:] = [_WithoutTensorFlow(f) if hasattr(f, "find_spec") else f
                        for f in sys.meta_path]
    import json
''')


def have(module: str) -> bool:
    """Whether ``module`` is installed (without importing it)."""
    return importlib.util.find_spec(module) is not None


# The backends other than TensorFlow, each skipped where its package is missing
# (CI installs both: .ci/run).
OTHER_BACKENDS = [
    pytest.param("jax", marks=pytest.mark.skipif(not have("jax"), reason="needs jax")),
    pytest.param("torch", marks=pytest.mark.skipif(not have("torch"), reason="needs torch")),
]


def backend_env(backend: str, tensorflow_log_level: str = "2") -> dict:
    """The environment of a subprocess on ``backend``, on the CPU, importing this nuclib."""
    return dict(os.environ, KERAS_BACKEND=backend, JAX_PLATFORMS="cpu",
                CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL=tensorflow_log_level,
                PYTHONPATH=str(REPO))


def run_without_tensorflow(code: str, backend: str = "jax", timeout: float = 600) -> dict:
    """Run ``code`` in a fresh Python with ``KERAS_BACKEND=backend`` and no TensorFlow;
    the code prints one JSON line last (``json`` is imported), returned as a dict."""
    script = NO_TENSORFLOW + textwrap.dedent(code)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=backend_env(backend), cwd=REPO, timeout=timeout)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
