"""``initializers_deferred``: models whose weights are loaded next build without their initializers.

Under JAX each initializer compiles an XLA kernel; the checks there run in a
fresh Python on the JAX backend (``tests/without_tensorflow.py``). On
TensorFlow, the backend of this process, the context does nothing.
"""

from __future__ import annotations

import textwrap

import keras
import numpy as np
import pytest

from nuclib.lazy_weights import initializers_deferred
from nuclib.model_dir import load_keras_model
from nuclib.models import unet
from tests.without_tensorflow import REPO, have, run_without_tensorflow

JAX_CHECKS = '''
    import threading
    import numpy as np
    import keras
    from nuclib.lazy_weights import initializers_deferred
    from nuclib.model_dir import load_keras_model
    from nuclib.models import unet

    def zero(model):
        return all(not np.any(np.asarray(w)) for w in model.weights if w.shape)

    out = {"backend": keras.backend.backend()}
    # A model built inside and never loaded: zeros inside, Keras's own values on leaving.
    keras.utils.set_random_seed(3)
    with initializers_deferred():
        model = unet(depth=2, filters=4)
        out["zeros_inside"] = zero(model)
        # another thread meanwhile initializes as usual
        other = []
        thread = threading.Thread(target=lambda: other.append(unet(depth=2, filters=4)))
        thread.start(); thread.join()
        out["other_thread_zeros"] = zero(other[0])
        with initializers_deferred():  # nested: the outer block decides
            inner = unet(depth=2, filters=4)
        out["nested_zeros_inside"] = zero(inner)
    keras.utils.set_random_seed(3)
    plain = unet(depth=2, filters=4)
    out["same_as_keras"] = all(np.array_equal(np.asarray(a), np.asarray(b))
                               for a, b in zip(model.weights, plain.weights))
    out["zeros_after"] = zero(model)
    out["nested_zeros_after"] = zero(inner)
    # An error inside leaves nothing deferred behind.
    try:
        with initializers_deferred():
            raise RuntimeError("stop")
    except RuntimeError:
        pass
    out["after_error_zeros"] = zero(unet(depth=2, filters=4))
    # A zoo model: its weights as JAX arrays, for the test to compare with TensorFlow's.
    loaded = load_keras_model(ZOO_MODEL)
    np.savez(WEIGHTS, *[np.asarray(w) for w in loaded.weights])
    out["zoo_types"] = sorted({type(w.value).__name__ for w in loaded.weights})
    print(json.dumps(out))
'''
ZOO_MODEL = "nuclib/zoo/bundled/dsb-binary-mobilenet"


@pytest.fixture(scope="module")
def jax_checks(tmp_path_factory):
    if not have("jax"):
        pytest.skip("needs jax")
    weights = tmp_path_factory.mktemp("lazy_weights") / "zoo.npz"
    out = run_without_tensorflow(f"ZOO_MODEL, WEIGHTS = {ZOO_MODEL!r}, {str(weights)!r}\n"
                                 + textwrap.dedent(JAX_CHECKS), backend="jax")
    out["zoo_weights"] = list(np.load(weights).values())
    return out


def test_under_jax_weights_wait_inside_and_get_kerass_values_on_leaving(jax_checks):
    assert jax_checks["backend"] == "jax"
    assert jax_checks["zeros_inside"] and jax_checks["nested_zeros_inside"]
    assert not jax_checks["zeros_after"] and not jax_checks["nested_zeros_after"]
    assert jax_checks["same_as_keras"]  # same seed, same values: only their time moved


def test_under_jax_other_threads_and_later_models_are_not_deferred(jax_checks):
    assert not jax_checks["other_thread_zeros"]
    assert not jax_checks["after_error_zeros"]


def test_under_jax_a_zoo_model_loads_tensorflows_weights(jax_checks):
    expected = load_keras_model(REPO / ZOO_MODEL).weights  # built here, on TensorFlow
    assert len(jax_checks["zoo_weights"]) == len(expected) > 100
    for got, want in zip(jax_checks["zoo_weights"], expected):
        np.testing.assert_array_equal(got, np.asarray(want))
    assert jax_checks["zoo_types"] == ["ArrayImpl"]  # JAX arrays, not NumPy placeholders


def test_on_tensorflow_it_changes_nothing():
    keras.utils.set_random_seed(5)
    with initializers_deferred():
        model = unet(depth=2, filters=4)
        inside = [np.asarray(w) for w in model.weights]
    keras.utils.set_random_seed(5)
    plain = unet(depth=2, filters=4)
    assert any(np.any(w) for w in inside)  # initialized at once
    for a, b in zip(inside, plain.weights):
        np.testing.assert_array_equal(a, np.asarray(b))
