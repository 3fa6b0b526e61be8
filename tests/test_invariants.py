"""Invariants of the algorithms, each guarding against a specific mistake
that would otherwise leave every other test green (found by planting bugs
and, later, by mutation testing; see benchmarks/results/test_quality/mutation.md)."""

import keras
import numpy as np
import pytest

import keras_gblend as kg
from keras_gblend.gblend import blend_estimator, clones, measurements
from keras_gblend.model import head_graph
from keras_gblend.inputs import input_data
from conftest import (
    compiled_toy_model,
    sparse_ce,
    spy_estimates,
    toy_data,
)


def _split(n=120, seed=0):
    x, y = toy_data(n=n, seed=seed)
    return kg.split_holdout((x, y), fraction=0.25, seed=0)


def _capture_clones(monkeypatch):
    """Every estimation clone, with its variables' values when built."""
    clones = []
    real = clones.clone_blended_model

    def capture(*args, **kwargs):
        clone = real(*args, **kwargs)
        clones.append((clone, [v.numpy().copy() for v in clone.variables]))
        return clone

    monkeypatch.setattr(estimation, "clone_blended_model", capture)
    return clones


# ------------------------------------------------------------- estimation
def test_each_clone_trains_only_its_heads_the_others_stay_frozen(monkeypatch):
    train, holdout = _split()
    model = compiled_toy_model(keras.optimizers.SGD(0.1))
    clones = _capture_clones(monkeypatch)
    kg.estimate_blend_weights(model, train, holdout, epochs=1)
    assert len(clones) == 2  # uni-modal heads fused, then the joint head
    for (clone, start), trained in zip(clones, (("a", "v"), ("joint",))):
        per_head = head_graph.head_trainable_variables(clone)
        moving = {id(v) for h in trained for v in per_head[h]}
        values = dict(zip((id(v) for v in clone.variables), start))
        for variable in clone.trainable_variables:
            moved = not np.array_equal(values[id(variable)], variable.numpy())
            assert moved == (id(variable) in moving), variable.path


def test_train_subset_is_training_rows_disjoint_from_the_holdout():
    x, y = toy_data(n=120)
    rows = np.arange(120, dtype="float32")
    x = {**x, "a": np.concatenate([x["a"][:, :5], rows[:, None]], axis=1)}
    train, holdout = kg.split_holdout((x, y), fraction=0.25, seed=0)
    subset = measurements.train_subset_dataset(train, fraction=0.5, seed=3)
    subset_rows = np.concatenate([b[0]["a"][:, -1] for b in subset])
    assert len(subset_rows) == round(0.5 * len(train[1]))
    assert set(subset_rows) <= set(train[0]["a"][:, -1])
    assert not set(subset_rows) & set(holdout[0]["a"][:, -1])


def test_estimate_measures_train_start_on_the_train_subset():
    # T' replaced by the holdout V would make ΔO vanish; the start values
    # must be the model's own losses on T' and on V.
    train, holdout = _split()
    model = compiled_toy_model(keras.optimizers.SGD(0.1))
    estimate = kg.estimate_blend_weights(model, train, holdout, epochs=1,
                                         batch_size=16)
    # T' is 25 % of the training data drawn from the clones' subset: at a
    # default estimation fraction of 25 % or less, all of that subset.
    fraction = blend_estimator.DEFAULT_ESTIMATION_FRACTION
    assert fraction <= 0.25
    subset = input_data.dataset_factory(
        kg.estimation_subset(train, fraction, seed=0), 16)()
    for data, measured in ((subset, estimate.train_start),
                           (input_data.dataset_factory(holdout, 16)(),
                            estimate.holdout_start)):
        scores = model.evaluate(data, return_dict=True, verbose=0)
        expected = [scores[f"{h}_loss"] for h in model.head_names]
        np.testing.assert_allclose(measured, expected, rtol=1e-5)
    assert np.all(np.abs(estimate.train_start - estimate.holdout_start) > 1e-3)


def test_estimation_clones_have_no_modulation():
    # An OGM-GE model estimates exactly as the same model without OGM-GE.
    train, holdout = _split()
    plain = compiled_toy_model(keras.optimizers.SGD(0.1))
    modulated = kg.BlendedModel.from_config({
        **plain.get_config(),
        "modulation": keras.saving.serialize_keras_object(
            kg.OGMGE(alpha=2.0, seed=0))})
    modulated.set_weights(plain.get_weights())
    modulated.compile(keras.optimizers.SGD(0.1), sparse_ce())
    a = kg.estimate_blend_weights(plain, train, holdout, epochs=2)
    b = kg.estimate_blend_weights(modulated, train, holdout, epochs=2)
    for field in ("holdout_end", "train_end", "delta_o", "delta_g", "weights"):
        np.testing.assert_allclose(getattr(b, field), getattr(a, field),
                                   rtol=1e-6, atol=1e-7)


def test_validation_split_rows_never_reach_estimation(monkeypatch):
    x, y = toy_data(n=160)
    x = {**x, "a": np.concatenate(
        [x["a"][:, :5], np.arange(160, dtype="float32")[:, None]], axis=1)}
    holdout = ({k: v[100:] for k, v in x.items()}, y[100:])
    x, y = {k: v[:100] for k, v in x.items()}, y[:100]
    calls = spy_estimates(monkeypatch)
    model = compiled_toy_model()
    model.fit(x, y, validation_split=0.2, epochs=1, verbose=0,
              callbacks=[kg.GBlendCallback(holdout, mode="offline",
                                           estimation_epochs=1, verbose=0)])
    (call,) = calls
    rows = call["train"][0]["a"][:, -1]
    np.testing.assert_array_equal(rows, np.arange(80))  # Keras validates on 80-99


def test_every_estimate_draws_its_own_shuffle_and_bootstrap(monkeypatch):
    calls = spy_estimates(monkeypatch)
    train, holdout = _split()
    callback = kg.GBlendCallback(holdout, first_super_epoch=1, super_epoch=1,
                                 estimation_epochs=1, seed=7, verbose=0)
    compiled_toy_model().fit(*train, epochs=3, verbose=0, callbacks=[callback])
    assert [call["seed"] for call in calls] == [7, 8, 9]


# -------------------------------------------------------------- the loss
def test_sample_weight_scales_each_head_loss_as_keras_does():
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


def test_head_losses_average_over_examples_with_a_partial_last_batch():
    x, y = toy_data(n=50)
    model = compiled_toy_model()
    logits = model.predict(x, verbose=0)
    result = model.evaluate(x, y, batch_size=16, return_dict=True, verbose=0)
    for head in model.head_names:
        per_example = keras.losses.sparse_categorical_crossentropy(
            y, logits[head], from_logits=True)
        assert result[f"{head}_loss"] == pytest.approx(
            float(np.mean(per_example)), rel=1e-5)
