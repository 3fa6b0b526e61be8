import keras
import numpy as np
import pytest

import keras_gblend as kg


def test_monitor_logs_hand_checkable_figures_and_does_not_change_training(
        toy_data, compiled_toy_model):
    x, y = toy_data(n=120)
    train, holdout = kg.split_holdout((x, y), fraction=0.25, seed=0)
    subset = ({k: v[:40] for k, v in train[0].items()}, train[1][:40])
    plain, watched = compiled_toy_model(seed=3), compiled_toy_model(seed=3)
    plain.fit(*train, batch_size=30, epochs=3, shuffle=False, verbose=0)
    history = watched.fit(
        *train, batch_size=30, epochs=3, shuffle=False, verbose=0,
        validation_data=holdout, callbacks=[kg.OGRMonitor(holdout, subset)])
    for a, b in zip(plain.get_weights(), watched.get_weights()):
        np.testing.assert_array_equal(a, b)
    log = history.history
    assert np.isnan(log["ogr_monitor/ogr/joint"][0])
    holdout_loss = watched.evaluate(*holdout, return_dict=True, verbose=0)
    subset_loss = watched.evaluate(*subset, return_dict=True, verbose=0)
    for head in watched.head_names:
        expected = holdout_loss[f"{head}_loss"] - subset_loss[f"{head}_loss"]
        assert log[f"ogr_monitor/overfitting/{head}"][-1] == pytest.approx(expected, rel=1e-4, abs=1e-6)
        delta_o = log[f"ogr_monitor/overfitting/{head}"][2] - log[f"ogr_monitor/overfitting/{head}"][1]
        assert log[f"ogr_monitor/delta_o/{head}"][2] == pytest.approx(delta_o, rel=1e-4, abs=1e-6)
        # ΔG: the previous epoch's holdout loss minus this one's (Keras's
        # validation pass measures the same weights).
        gain = log[f"val_{head}_loss"][1] - log[f"val_{head}_loss"][2]
        assert log[f"ogr_monitor/delta_g/{head}"][2] == pytest.approx(
            gain, rel=1e-4, abs=1e-6)
        ratio = abs(log[f"ogr_monitor/delta_o/{head}"][2] / log[f"ogr_monitor/delta_g/{head}"][2])
        assert log[f"ogr_monitor/ogr/{head}"][2] == pytest.approx(ratio, rel=1e-4)


def test_monitor_needs_a_blended_model_and_valid_data(toy_data):
    x, y = toy_data(n=60)
    with pytest.raises(ValueError, match="single class"):
        kg.OGRMonitor((x, np.zeros_like(y)), (x, y))
    plain = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    plain.compile("sgd", "mse")
    with pytest.raises(TypeError, match="BlendedModel"):
        plain.fit(x["a"], np.eye(3)[y], epochs=1, verbose=0,
                  callbacks=[kg.OGRMonitor((x, y), (x, y))])
