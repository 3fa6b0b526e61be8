"""Models and checkpoints written before the package was regrouped load
and predict as they did (tests/fixtures/before_regroup)."""

import os

import keras
import numpy as np
import pytest

import keras_gblend as kg

SAVED = os.path.join(os.path.dirname(__file__), "fixtures", "before_regroup")
MODELS = ["late_concat", "late_sum", "late_film", "late_gated", "late_lmf",
          "late_se_gate", "mid_concat_1d", "nl_gate", "mid_se_gate",
          "loss_by_name"]


@pytest.fixture(scope="module")
def expected():
    return dict(np.load(os.path.join(SAVED, "expected.npz")))


def _inputs(toy_data, name):
    if name.startswith(("mid_", "nl_")):
        rng = np.random.default_rng(0)
        return {"audio": rng.normal(size=(24, 16, 8, 1)).astype("float32"),
                "visual": rng.normal(size=(24, 2, 8, 8, 1)).astype("float32")}
    return toy_data(n=48, seed=0)[0]


@pytest.mark.parametrize("name", MODELS)
def test_a_model_saved_before_the_regroup_loads_and_predicts_the_same(
        name, expected, toy_data):
    model = keras.saving.load_model(os.path.join(SAVED, f"{name}.keras"))
    assert isinstance(model, kg.BlendedModel)
    predictions = model.predict(_inputs(toy_data, name), verbose=0)
    for head in model.head_names:
        np.testing.assert_allclose(predictions[head],
                                   expected[f"{name}/{head}"], atol=1e-5)
    if name == "late_concat":
        assert isinstance(model.modulation, kg.OGMGE)
        assert model.modulation.alpha == 0.3
        weights = model.blend_weights
        assert [weights[h] for h in model.head_names] == pytest.approx(
            [0.2, 0.3, 0.5])


def test_a_checkpoint_written_before_the_regroup_restores(
        expected, toy_model, sparse_ce):
    model = toy_model(seed=9, modulation=kg.OGMGE(alpha=0.5, seed=2))
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9), sparse_ce())
    epochs = kg.ResumableCheckpoint.restore(
        model, os.path.join(SAVED, "checkpoint"))
    assert epochs == 3
    for i, weight in enumerate(model.get_weights()):
        np.testing.assert_array_equal(weight, expected[f"checkpoint/weight_{i}"])
    assert int(model.optimizer.iterations.numpy()) == int(
        expected["checkpoint/optimizer_iterations"])
    # The G-Blend schedule position came back with it.
    assert int(keras.ops.convert_to_numpy(model.blend_estimation_epoch)) == 2
