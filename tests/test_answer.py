import keras
import numpy as np
import pytest

import keras_gblend as kg
from keras_gblend import answer as answer_lib
from conftest import sparse_ce, toy_data, toy_model


def _trained_on_a_only():
    """Head `a` trained; `v` and `joint` left at their initial weights."""
    x, y = toy_data(n=150, seed=2)
    train, holdout = kg.split_holdout((x, y), fraction=0.3, seed=0)
    model = toy_model(seed=1, blend_scope="all")
    model.compile(keras.optimizers.SGD(0.1), sparse_ce(),
                  loss_weights=[1.0, 0.0, 0.0], metrics=["accuracy"])
    model.fit(*train, epochs=15, verbose=0)
    return model, holdout


def test_select_answer_picks_the_better_head_on_a_constructed_case():
    model, holdout = _trained_on_a_only()
    scores = model.evaluate(*holdout, return_dict=True, verbose=0)
    assert scores["a_accuracy"] > scores["joint_accuracy"] + 0.3
    best = kg.select_answer(model, holdout, candidates="heads")
    assert best.weights == {"a": 1.0, "v": 0.0, "joint": 0.0}
    assert best.holdout_accuracy == pytest.approx(scores["a_accuracy"])
    assert best.head_accuracy["joint"] == pytest.approx(scores["joint_accuracy"])
    mix = kg.select_answer(model, holdout)
    assert max(mix.weights, key=mix.weights.get) == "a"
    # A corner of the simplex is a candidate: the mix is never worse.
    assert mix.holdout_log_loss <= best.holdout_log_loss + 1e-9
    assert mix.accuracy(model, holdout) == pytest.approx(mix.holdout_accuracy)


def test_mixture_weights_minimize_the_log_loss_on_the_simplex():
    # Two heads, each sure of half the examples: the best mix is 50/50.
    p = np.array([[0.9, 0.1] * 50, [0.1, 0.9] * 50])
    np.testing.assert_allclose(answer_lib._mixture_weights(p), [0.5, 0.5],
                               atol=1e-3)
    # A head that is never better than another gets no weight.
    p = np.array([[0.8] * 10, [0.4] * 10])
    np.testing.assert_allclose(answer_lib._mixture_weights(p), [1.0, 0.0])


def test_answer_probabilities_and_config_round_trip():
    model, holdout = _trained_on_a_only()
    answer = kg.select_answer(model, holdout)
    probabilities = answer.predict(model, holdout[0], verbose=0)
    logits = model.predict(holdout[0], verbose=0)
    expected = sum(
        a * answer_lib.head_probabilities(logits[h], True)
        for h, a in answer.weights.items())
    np.testing.assert_allclose(probabilities, expected, rtol=1e-6)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    again = kg.Answer.from_config(answer.get_config())
    assert again == answer


def test_select_answer_errors():
    model, holdout = _trained_on_a_only()
    with pytest.raises(ValueError, match="candidates"):
        kg.select_answer(model, holdout, candidates="best")
    with pytest.raises(ValueError, match="empty"):
        kg.select_answer(model, ({k: v[:0] for k, v in holdout[0].items()},
                                 holdout[1][:0]))
