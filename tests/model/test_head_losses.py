import keras
import numpy as np
import pytest


def test_sample_weight_scales_each_head_loss_as_keras_does(
        toy_data, compiled_toy_model):
    x, y = toy_data(n=48)
    weights = np.linspace(0.0, 3.0, 48).astype("float32")
    model = compiled_toy_model()
    logits = model.predict(x, verbose=0)
    result = model.evaluate(x, y, sample_weight=weights, batch_size=48,
                            return_dict=True, verbose=0)
    for head in model.head_names:
        reference = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        expected = float(reference(y, logits[head], sample_weight=weights))
        assert result[f"{head}_loss"] == pytest.approx(expected, rel=1e-5)
    unweighted = model.evaluate(x, y, batch_size=48, return_dict=True,
                                verbose=0)
    assert result["joint_loss"] != pytest.approx(unweighted["joint_loss"])
