"""The fusion layers of the G-Blend paper's baselines (LMF, SE gate) and
the new fusions with G-Blend and OGM-GE."""

import keras
import numpy as np
import pytest

import keras_gblend as kg
from keras_gblend.networks import fusion_layers


def test_lmf_matches_its_formula_by_hand():
    rng = np.random.default_rng(0)
    fa = rng.normal(size=(3, 4)).astype("float32")
    fv = rng.normal(size=(3, 2)).astype("float32")
    layer = fusion_layers.LowRankFusion(5, units=6, rank=3)
    logits = keras.ops.convert_to_numpy(layer([fa, fv]))
    za = np.concatenate([fa, np.ones((3, 1))], axis=1)
    zv = np.concatenate([fv, np.ones((3, 1))], axis=1)
    a, v = (keras.ops.convert_to_numpy(f) for f in layer.factors)
    lam = keras.ops.convert_to_numpy(layer.rank_weights)
    fused = sum(lam[r] * (za @ a[r]) * (zv @ v[r]) for r in range(3))
    hidden = np.maximum(fused + keras.ops.convert_to_numpy(layer.fusion_bias), 0)
    expected = hidden @ keras.ops.convert_to_numpy(layer.out.kernel) + (
        keras.ops.convert_to_numpy(layer.out.bias))
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)


def test_se_gate_gates_the_target_by_the_source_in_either_direction():
    rng = np.random.default_rng(0)
    fa = rng.normal(size=(2, 4)).astype("float32")
    fv = rng.normal(size=(2, 6)).astype("float32")
    for source, target in ((0, fv), (1, fa)):
        layer = fusion_layers.SEGateFusion(3, source_index=source, reduction=2)
        logits = keras.ops.convert_to_numpy(layer([fa, fv]))
        gate = keras.ops.convert_to_numpy(layer.gate([fa, fv]))
        assert gate.shape == target.shape and np.all((gate > 0) & (gate < 1))
        joined = np.concatenate([[fa, fv][source], target * gate], axis=1)
        expected = joined @ keras.ops.convert_to_numpy(layer.out.kernel) + (
            keras.ops.convert_to_numpy(layer.out.bias))
        np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("fusion", ["lmf", "se_gate", "concat_fc2"])
def test_new_fusions_work_with_gblend_and_ogm_and_save(
        fusion, tmp_path, toy_data, toy_model, sparse_ce,
        assert_saves_and_loads, NUM_CLASSES):
    x, y = toy_data(n=96)
    base = toy_model()
    encoders = {m: base.get_layer(f"enc_{m}") for m in ("a", "v")}
    model = kg.late_fusion_model(
        encoders, NUM_CLASSES, fusion=fusion,
        modulation=kg.OGMGE(alpha=0.5, seed=0))
    model.compile(keras.optimizers.SGD(0.1), sparse_ce(),
                  loss_weights=[1 / 3] * 3, metrics=["accuracy"])
    # Uni-modal heads share no variable: fused estimation applies.
    estimate = kg.estimate_blend_weights(model, (x, y), (x, y), epochs=1,
                                         batch_size=32)
    assert estimate.fused
    history = model.fit(x, y, epochs=6, batch_size=16, verbose=0)
    assert history.history["joint_accuracy"][-1] > 0.6
    assert_saves_and_loads(model, x, str(tmp_path / "m.keras"))
