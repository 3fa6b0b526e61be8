"""Shared fixtures: small two-modality problems and models."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import math  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import keras_gblend as kg  # noqa: E402

NUM_CLASSES = 3
REPO = os.path.join(os.path.dirname(__file__), "..")


def run_script(folder, script, *flags, cwd=None, timeout=600):
    """Runs `python <repo>/<folder>/<script> <flags>` and returns its
    `subprocess.CompletedProcess` (text stdout/stderr)."""
    return subprocess.run(
        [sys.executable, os.path.join(REPO, folder, script), *flags],
        capture_output=True, text=True, timeout=timeout, cwd=cwd,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )


def assert_saves_and_loads(model, x, path, atol=1e-5):
    """Saves `model` to `path` (`.keras`), loads it back and checks that
    the loaded model predicts the same joint logits on `x`."""
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0)["joint"],
                               model.predict(x, verbose=0)["joint"],
                               rtol=1e-5, atol=atol)
    return loaded


def toy_data(n=96, seed=0, noise=0.3):
    """Modality `a` carries the class; `v` is mostly noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % NUM_CLASSES
    rng.shuffle(y)
    centers_a = rng.normal(size=(NUM_CLASSES, 6)) * 2.0
    centers_v = rng.normal(size=(NUM_CLASSES, 4)) * 0.2
    x = {
        "a": (centers_a[y] + noise * rng.normal(size=(n, 6))).astype("float32"),
        "v": (centers_v[y] + rng.normal(size=(n, 4))).astype("float32"),
    }
    return x, y.astype("int32")


def toy_model(seed=0, fusion="concat", hidden=8, modulation=None,
              blend_scope="shared"):
    keras.utils.set_random_seed(seed)
    encoders = {
        "a": keras.Sequential(
            [keras.Input((6,)), keras.layers.Dense(hidden, activation="relu")],
            name="enc_a",
        ),
        "v": keras.Sequential(
            [keras.Input((4,)), keras.layers.Dense(hidden, activation="relu")],
            name="enc_v",
        ),
    }
    return kg.late_fusion_model(
        encoders, NUM_CLASSES, fusion=fusion, modulation=modulation,
        blend_scope=blend_scope,
    )


def sparse_ce():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def compiled_toy_model(optimizer=None, seed=0, **compile_kwargs):
    model = toy_model(seed=seed)
    model.compile(
        optimizer=optimizer or keras.optimizers.SGD(0.1),
        loss=sparse_ce(),
        **compile_kwargs,
    )
    return model


def numpy_sparse_ce(logits, labels):
    logits = logits - logits.max(axis=1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), labels].mean())


@pytest.fixture
def data():
    return toy_data()


@pytest.fixture(scope="session")
def av_digits_dir(tmp_path_factory):
    """A small generated AV-digits folder (needs espeak-ng, flite, sox)."""
    out = tmp_path_factory.mktemp("av_digits")
    kg.datasets.make_av_digits(str(out), n=200, seed=0)
    return str(out)


def same_values(a, b, rel=1e-5):
    """Equal lengths and values (to `rel`), NaN matching NaN."""
    return len(a) == len(b) and all(
        (math.isnan(u) and math.isnan(v)) or u == pytest.approx(v, rel=rel)
        for u, v in zip(a, b)
    )


def spy_estimates(monkeypatch):
    """Every estimate a `GBlendCallback` makes: a dict with the training
    data its estimator was built on (`train`) and the `estimate` call's
    keyword arguments (`epochs`, `seed`, ...)."""
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
