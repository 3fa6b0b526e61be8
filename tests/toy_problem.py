"""The small two-modality problem the tests train on.

Tests take these through the fixtures of conftest.py (`toy_data`,
`toy_model`, `sparse_ce`, `NUM_CLASSES`); this module is imported only
where no fixture can reach: programs a test runs in a subprocess
(model/mirrored_parity.py, model/multi_worker_gblend.py, ...)."""

import keras
import numpy as np

import keras_gblend as kg

NUM_CLASSES = 3


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
