import keras
import numpy as np
import pytest

import keras_gblend as kg


@pytest.fixture
def mixed_policy():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_gblend_and_ogm_ge_with_xla_and_mixed_float16(
        mixed_policy, toy_data, toy_model, sparse_ce):
    x, y = toy_data(n=96)
    train, holdout = kg.split_holdout((x, y), fraction=0.25, seed=0)
    model = toy_model(hidden=16, modulation=kg.OGMGE(alpha=0.5, seed=0))
    model.compile(keras.optimizers.SGD(0.1), sparse_ce(), jit_compile=True)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert model.predict(x, verbose=0)["joint"].dtype == np.float16
    callback = kg.GBlendCallback(holdout, mode="offline", estimation_epochs=1,
                                 noise_z=None, verbose=0)
    history = model.fit(*train, batch_size=24, epochs=4, verbose=0,
                        callbacks=[callback])
    assert model.blend_weights_variable.dtype == "float32"
    # The float32 estimate from float16 predictions is what the model uses.
    np.testing.assert_allclose(list(model.blend_weights.values()),
                               callback.last_estimate.weights, rtol=1e-6)
    assert np.all(np.isfinite(callback.last_estimate.delta_o))
    for key in ("loss", "joint_loss", "ogm/coefficient/a", "ogm/ratio/v"):
        assert np.all(np.isfinite(history.history[key])), key
    assert history.history["joint_loss"][-1] < history.history["joint_loss"][0]
    assert min(history.history["ogm/coefficient/a"]) < 1.0
