import keras
import numpy as np
import pytest

import keras_gblend as kg
from conftest import sparse_ce, toy_data, toy_model


@pytest.fixture
def mixed_policy():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_gblend_and_ogm_ge_with_xla_and_mixed_float16(mixed_policy):
    x, y = toy_data(n=96)
    train, holdout = kg.split_holdout((x, y), fraction=0.25, seed=0)
    model = toy_model(hidden=16, modulation=kg.OGMGE(alpha=0.5, seed=0))
    model.compile(keras.optimizers.SGD(0.1), sparse_ce(), jit_compile=True)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert model.predict(x, verbose=0)["joint"].dtype == np.float16
    history = model.fit(
        *train, batch_size=24, epochs=4, verbose=0,
        callbacks=[kg.GBlendCallback(holdout, mode="offline", estimation_epochs=1, verbose=0)],
    )
    assert model.blend_weights_variable.dtype == "float32"
    assert sum(model.blend_weights.values()) == pytest.approx(1.0, abs=1e-6)
    for key in ("loss", "joint_loss", "ogm/coefficient/a", "ogm/ratio/v"):
        assert np.all(np.isfinite(history.history[key])), key
    assert history.history["joint_loss"][-1] < history.history["joint_loss"][0]
    assert min(history.history["ogm/coefficient/a"]) < 1.0
