"""The clones an estimate trains: each trains only its heads, none keeps
OGM-GE. Invariants, each guarding against a specific mistake that would
otherwise leave every other test green (found by planting bugs and, later,
by mutation testing; see benchmarks/results/test_quality/mutation.md)."""

import keras
import numpy as np

import keras_gblend as kg
from keras_gblend.gblend import clones as clones_lib
from keras_gblend.model import head_graph


def _split(toy_data, n=120, seed=0):
    x, y = toy_data(n=n, seed=seed)
    return kg.split_holdout((x, y), fraction=0.25, seed=0)


def _capture_clones(monkeypatch):
    """Every estimation clone, with its variables' values when built."""
    clones = []
    real = clones_lib.clone_blended_model

    def capture(*args, **kwargs):
        clone = real(*args, **kwargs)
        clones.append((clone, [v.numpy().copy() for v in clone.variables]))
        return clone

    monkeypatch.setattr(clones_lib, "clone_blended_model", capture)
    return clones


def test_each_clone_trains_only_its_heads_the_others_stay_frozen(
        monkeypatch, toy_data, compiled_toy_model):
    train, holdout = _split(toy_data)
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


def test_estimation_clones_have_no_modulation(
        toy_data, compiled_toy_model, sparse_ce):
    # An OGM-GE model estimates exactly as the same model without OGM-GE.
    train, holdout = _split(toy_data)
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
