"""G-Blend's presets: the paper's Algorithms 2 and 3 as published, and the
library's measured deviations, each with a switch."""

import os

import keras
import numpy as np
import pytest

import keras_gblend as kg
from keras_gblend.gblend import blend_estimate, blend_estimator, presets as gblend_presets
from keras_gblend.experiment.config import ExperimentConfig

DOCS = os.path.join(os.path.dirname(__file__), "..", "..", "docs")


def test_the_paper_preset_switches_off_every_deviation(toy_data):
    paper = kg.GBlendCallback((toy_data()[0], toy_data()[1]), preset="paper")
    assert paper.noise_z is None
    assert paper.update_rule == "fresh"
    assert paper.joint_weight_floor == 0.0
    assert paper.estimation_fraction == 1.0
    assert paper.estimation_epochs == "span"
    assert paper.min_delta_o == 1e-12
    default = kg.GBlendCallback(toy_data())
    assert (default.noise_z, default.update_rule, default.joint_weight_floor,
            default.estimation_fraction, default.estimation_epochs) == (
        2.0, "noise_aware", 0.2, 0.25, "auto")
    # An argument given explicitly wins over its preset.
    mixed = kg.GBlendCallback(toy_data(), preset="paper",
                              estimation_fraction=0.5, noise_z=1.0)
    assert (mixed.estimation_fraction, mixed.noise_z, mixed.update_rule) == (
        0.5, 1.0, "fresh")
    # The config carries the preset and the resolved values.
    restored = kg.GBlendCallback.from_config(
        {**mixed.get_config(), "holdout": toy_data()})
    assert restored.get_config() == mixed.get_config()
    with pytest.raises(ValueError, match="preset"):
        kg.GBlendCallback(toy_data(), preset="published")


def test_every_setting_the_table_names_is_an_argument_with_both_values(
        toy_data):
    callback = kg.GBlendCallback(toy_data())
    for deviation in gblend_presets.DEVIATIONS:
        if deviation.setting == "blend_scope":
            continue  # the model's, checked when fit starts
        assert hasattr(callback, deviation.setting), deviation.setting
        for preset in gblend_presets.PRESETS:
            values = gblend_presets.preset_values(preset)
            made = kg.GBlendCallback(toy_data(), preset=preset)
            expected = values[deviation.setting]
            assert getattr(made, deviation.setting) == expected


def test_the_deviations_page_shows_the_table_as_declared():
    with open(os.path.join(DOCS, "deviations.md"), encoding="utf-8") as f:
        page = f.read()
    assert gblend_presets.deviations_table() in page
    assert len(gblend_presets.DEVIATIONS) == 8


def _paper_run(toy_data, toy_model, sparse_ce, mode, epochs):
    """A toy model trained with the paper preset; every estimate it made."""
    x, y = toy_data(n=120, seed=3)
    train, holdout = kg.split_holdout((x, y), fraction=0.25, seed=0)
    model = toy_model(seed=1, blend_scope="all")
    model.compile(keras.optimizers.SGD(0.05), sparse_ce())
    estimates = []
    clone_epochs = []

    class Spy(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if gblend.last_estimate is not None and (
                    not estimates or gblend.last_estimate is not estimates[-1]):
                estimates.append(gblend.last_estimate)
                clone_epochs.append(gblend.clone_epochs(
                    int(keras.ops.convert_to_numpy(
                        self.model.blend_estimation_epoch)), epochs))
                weights.append(np.array(list(self.model.blend_weights.values())))

    weights = []
    gblend = kg.GBlendCallback(holdout, mode=mode, preset="paper", verbose=0,
                               first_super_epoch=4, super_epoch=2)
    model.fit(*train, epochs=epochs, verbose=0, batch_size=16,
              callbacks=[gblend, Spy()])
    return train, estimates, clone_epochs, weights


@pytest.mark.parametrize("mode", ["online", "offline"])
def test_the_paper_preset_gives_the_literal_formula(
        mode, toy_data, toy_model, sparse_ce):
    epochs = 7
    train, estimates, clone_epochs, weights = _paper_run(
        toy_data, toy_model, sparse_ce, mode, epochs)
    assert len(estimates) == (3 if mode == "online" else 1)
    # Clones over the span each estimate is used for: 4, then 2 online
    # (first super-epoch, then super-epoch, cut at the end of the run); the
    # whole run offline.
    assert clone_epochs == ([4, 2, 1] if mode == "online" else [epochs])
    checked = 0
    for estimate, used in zip(estimates, weights):
        assert estimate.delta_g_se is None  # no noise rule
        if estimate.weights is None:
            continue  # no head gained: the weights in use are kept
        checked += 1
        gain = np.maximum(estimate.delta_g, 0.0)
        literal = gain / estimate.delta_o**2
        np.testing.assert_allclose(used, literal / literal.sum(), rtol=1e-5)
    assert checked >= 1


def test_the_paper_preset_estimates_on_all_the_training_data(
        monkeypatch, toy_data, toy_model, sparse_ce):
    fractions = []
    real = blend_estimator.BlendEstimator.__init__

    def init(self, *args, **kwargs):
        fractions.append(kwargs["estimation_fraction"])
        real(self, *args, **kwargs)

    monkeypatch.setattr(blend_estimator.BlendEstimator, "__init__", init)
    _paper_run(toy_data, toy_model, sparse_ce, "offline", 2)
    assert fractions == [1.0]


def test_the_paper_preset_needs_the_literal_loss(
        toy_data, toy_model, sparse_ce):
    x, y = toy_data(n=60)
    model = toy_model(blend_scope="shared")
    model.compile("sgd", sparse_ce())
    with pytest.raises(ValueError, match="blend_scope='all'"):
        model.fit(x, y, epochs=1, verbose=0,
                  callbacks=[kg.GBlendCallback((x, y), preset="paper")])


def test_the_scripts_settings_resolve_through_the_preset():
    paper = ExperimentConfig(gblend_preset="paper").resolved()
    assert (paper.noise_z, paper.update_rule, paper.joint_weight_floor,
            paper.estimation_fraction, paper.estimation_epochs,
            paper.blend_scope, paper.min_delta_o) == (
        None, "fresh", 0.0, 1.0, "span", "all", 1e-12)
    default = ExperimentConfig().resolved()
    assert (default.noise_z, default.blend_scope) == (2.0, "shared")
    overridden = ExperimentConfig(gblend_preset="paper", noise_z=2.5).resolved()
    assert overridden.noise_z == 2.5 and overridden.update_rule == "fresh"


def test_clone_repeats_add_the_training_spread_to_the_errors():
    # Two repeats whose holdout ends differ by 0.2 in mean for head 0 only:
    # its ΔG error grows by the spread of the mean, sd / sqrt(2); head 1's
    # repeats agree, its error is the bootstrap's.
    rng = np.random.default_rng(0)
    start = rng.normal(1.0, 0.1, (2, 200))
    train = rng.normal(0.8, 0.1, (2, 100))
    end = np.stack([start - 0.3, start - 0.3])
    end[1, 0] -= 0.2
    once = blend_estimate.blend_estimate(["a", "joint"], start, train,
                                     end.mean(axis=0), train)
    twice = blend_estimate.blend_estimate(["a", "joint"], start, train, end,
                                      np.stack([train, train]))
    np.testing.assert_allclose(twice.delta_g, once.delta_g)
    spread = np.std([0.3, 0.5], ddof=1) / np.sqrt(2)
    np.testing.assert_allclose(twice.delta_g_se[0],
                               np.hypot(once.delta_g_se[0], spread))
    np.testing.assert_allclose(twice.delta_g_se[1], once.delta_g_se[1])


def test_clone_repeats_train_the_clones_with_different_seeds(
        toy_data, toy_model, sparse_ce):
    x, y = toy_data(n=90, seed=5)
    train, holdout = kg.split_holdout((x, y), fraction=0.25, seed=0)
    model = toy_model()
    model.compile(keras.optimizers.SGD(0.05), sparse_ce())
    # Batches of 4: the order of the examples matters.
    one = kg.estimate_blend_weights(model, train, holdout, epochs=1,
                                    batch_size=4)
    two = kg.estimate_blend_weights(model, train, holdout, epochs=1,
                                    batch_size=4, repeats=2)
    # The second repeat trained differently (another order), so the mean
    # end values moved and the errors grew.
    assert not np.allclose(one.holdout_end, two.holdout_end)
    assert np.all(two.delta_g_se >= one.delta_g_se * 0.5)
    with pytest.raises(ValueError, match="seed"):
        kg.estimate_blend_weights(model, train, holdout, epochs=1,
                                  repeats=2, seed=None)
