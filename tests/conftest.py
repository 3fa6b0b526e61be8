"""Shared fixtures: small two-modality problems and models, and helpers.

Each helper is a fixture of its own name that returns the helper (a
function), so that a test takes `toy_data` as an argument and calls
`toy_data(n=60)`; the constants are fixtures too (`NUM_CLASSES`,
`REPO`). Session-scoped (they hold no state), so that fixtures of any
scope can use them; `spy_estimates` patches, per test."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import math  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import keras_gblend as kg  # noqa: E402
import toy_problem  # noqa: E402  (tests/ is on pytest's pythonpath)

_REPO = os.path.join(os.path.dirname(__file__), "..")


@pytest.fixture(scope="session")
def NUM_CLASSES():  # noqa: N802  (named as the constant it is)
    """The toy problem's number of classes."""
    return toy_problem.NUM_CLASSES


@pytest.fixture(scope="session")
def REPO():  # noqa: N802
    """The repository's root folder."""
    return _REPO


@pytest.fixture(scope="session")
def toy_data():
    """`toy_data(n=96, seed=0, noise=0.3)`: `(x, y)` of the toy problem;
    modality `a` carries the class, `v` is mostly noise."""
    return toy_problem.toy_data


@pytest.fixture(scope="session")
def toy_model():
    """`toy_model(seed=0, fusion="concat", hidden=8, modulation=None,
    blend_scope="shared")`: a late-fusion model of the toy problem."""
    return toy_problem.toy_model


@pytest.fixture(scope="session")
def sparse_ce():
    """`sparse_ce()`: sparse categorical cross-entropy on logits."""
    return toy_problem.sparse_ce


@pytest.fixture(scope="session")
def compiled_toy_model(toy_model, sparse_ce):
    """`compiled_toy_model(optimizer=None, seed=0, **compile_kwargs)`: a
    toy model compiled with `optimizer` (default SGD(0.1)) and `sparse_ce`."""
    def compiled_toy_model(optimizer=None, seed=0, **compile_kwargs):
        model = toy_model(seed=seed)
        model.compile(
            optimizer=optimizer or keras.optimizers.SGD(0.1),
            loss=sparse_ce(),
            **compile_kwargs,
        )
        return model

    return compiled_toy_model


@pytest.fixture(scope="session")
def numpy_sparse_ce():
    """`numpy_sparse_ce(logits, labels)`: the mean sparse cross-entropy,
    in NumPy."""
    def numpy_sparse_ce(logits, labels):
        logits = logits - logits.max(axis=1, keepdims=True)
        log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        return float(-log_probs[np.arange(len(labels)), labels].mean())

    return numpy_sparse_ce


@pytest.fixture(scope="session")
def run_script():
    """`run_script(folder, script, *flags, cwd=None, timeout=600)`: runs
    `python <repo>/<folder>/<script> <flags>` and returns its
    `subprocess.CompletedProcess` (text stdout/stderr)."""
    def run_script(folder, script, *flags, cwd=None, timeout=600):
        return subprocess.run(
            [sys.executable, os.path.join(_REPO, folder, script), *flags],
            capture_output=True, text=True, timeout=timeout, cwd=cwd,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )

    return run_script


@pytest.fixture(scope="session")
def assert_saves_and_loads():
    """`assert_saves_and_loads(model, x, path, atol=1e-5)`: saves `model`
    to `path` (`.keras`), loads it back, checks that the loaded model
    predicts the same joint logits on `x`, and returns it."""
    def assert_saves_and_loads(model, x, path, atol=1e-5):
        model.save(path)
        loaded = keras.saving.load_model(path)
        np.testing.assert_allclose(loaded.predict(x, verbose=0)["joint"],
                                   model.predict(x, verbose=0)["joint"],
                                   rtol=1e-5, atol=atol)
        return loaded

    return assert_saves_and_loads


@pytest.fixture(scope="session")
def same_values():
    """`same_values(a, b, rel=1e-5)`: equal lengths and values (to `rel`),
    NaN matching NaN."""
    def same_values(a, b, rel=1e-5):
        return len(a) == len(b) and all(
            (math.isnan(u) and math.isnan(v)) or u == pytest.approx(v, rel=rel)
            for u, v in zip(a, b)
        )

    return same_values


@pytest.fixture
def spy_estimates(monkeypatch):
    """Every estimate a `GBlendCallback` makes in the test: a list, filled
    as they happen, of dicts with the training data its estimator was built
    on (`train`) and the `estimate` call's keyword arguments (`epochs`,
    `seed`, ...)."""
    from keras_gblend.gblend import blend_estimator

    calls = []
    real_init = blend_estimator.BlendEstimator.__init__
    real_estimate = blend_estimator.BlendEstimator.estimate

    def init(self, model, train, *args, **kwargs):
        self._spied_train = train
        real_init(self, model, train, *args, **kwargs)

    def estimate(self, *args, **kwargs):
        calls.append({"train": self._spied_train, **kwargs})
        return real_estimate(self, *args, **kwargs)

    monkeypatch.setattr(blend_estimator.BlendEstimator, "__init__", init)
    monkeypatch.setattr(blend_estimator.BlendEstimator, "estimate", estimate)
    return calls


@pytest.fixture
def data(toy_data):
    return toy_data()


@pytest.fixture(scope="session")
def av_digits_dir(tmp_path_factory):
    """A small generated AV-digits folder (needs espeak-ng, flite, sox)."""
    out = tmp_path_factory.mktemp("av_digits")
    kg.datasets.make_av_digits(str(out), n=200, seed=0)
    return str(out)
