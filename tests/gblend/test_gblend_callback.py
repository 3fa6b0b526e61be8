import csv
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_gblend as kg


def _split(toy_data, n=96, seed=1):
    x, y = toy_data(n=n, seed=seed)
    return kg.split_holdout((x, y), fraction=0.25, seed=0)


def _fit(model, train, callback, epochs, initial_epoch=0, extra=()):
    return model.fit(
        *train,
        batch_size=24,
        epochs=epochs,
        initial_epoch=initial_epoch,
        verbose=0,
        callbacks=[callback, *extra],
    )


def test_schedule_predicate(toy_data):
    # The paper's online schedule: from the initial model, a first
    # super-epoch of 10, then 5.
    paper = kg.GBlendCallback(_split(toy_data)[1])
    assert [e for e in range(30) if paper.is_estimation_epoch(e)] == [
        0, 10, 15, 20, 25]
    assert [paper.weights_used_for(e, 30) for e in (0, 10, 25)] == [10, 5, 5]
    assert paper.weights_used_for(25, 27) == 2  # cut at the run's end
    # Its clones train n = super_epoch = 5 at every estimate, the first
    # included (cut at the run's end); a stated n wins.
    assert [paper.clone_epochs(e, 30) for e in (0, 10, 25)] == [5, 5, 5]
    assert paper.clone_epochs(25, 27) == 2
    assert kg.GBlendCallback(
        _split(toy_data)[1], estimation_epochs=3).clone_epochs(0, 30) == 3
    warm = kg.GBlendCallback(_split(toy_data)[1], warmup_epochs=10,
                             first_super_epoch=5)
    assert [e for e in range(30) if warm.is_estimation_epoch(e)] == [
        10, 15, 20, 25]
    offline = kg.GBlendCallback(_split(toy_data)[1], mode="offline")
    assert not any(offline.is_estimation_epoch(e) for e in range(30))
    assert offline.weights_used_for(0, 30) == 30
    assert offline.weights_used_for(4, 30) == 26
    assert offline.clone_epochs(0, 30) == 30


def test_paper_online_schedule_estimates_at_0_10_15_with_matching_lengths(
        toy_data, compiled_toy_model, spy_estimates):
    train, holdout = _split(toy_data)
    model = compiled_toy_model()
    calls = spy_estimates
    callback = kg.GBlendCallback(holdout, noise_z=None, verbose=0)
    history = _fit(model, train, callback, epochs=17)
    assert history.history["gblend/estimation_epoch"] == (
        [0] * 10 + [10] * 5 + [15] * 2)
    # n = super_epoch = 5 (the last cut at epoch 17).
    assert [call["epochs"] for call in calls] == [5, 5, 2]
    assert model.blend_weights != {"a": 1.0, "v": 1.0, "joint": 1.0}


def test_offline_estimation_trains_clones_over_the_run_or_a_stated_length(
        monkeypatch, toy_data, compiled_toy_model, spy_estimates):
    from keras_gblend.gblend import clones as clones_lib

    train, holdout = _split(toy_data)
    clones = []
    real_clone = clones_lib.clone_blended_model
    monkeypatch.setattr(
        clones_lib, "clone_blended_model",
        lambda *a, **k: clones.append(real_clone(*a, **k)) or clones[-1])
    calls = spy_estimates
    subset = kg.estimation_subset(  # the default share, the callback's seed
        train, kg.GBlendCallback(_split(toy_data)[1]).estimation_fraction, seed=0)
    steps = -(-len(subset[1]) // 24)
    for stated, expected in ((None, 6), (2, 2)):
        clones.clear()
        callback = kg.GBlendCallback(holdout, mode="offline", verbose=0,
                                     estimation_epochs=stated, batch_size=24,
                                     keep_clones=False)  # a clone per group
        _fit(compiled_toy_model(), train, callback, epochs=6)
        assert calls[-1]["epochs"] == expected
        # Both clones (uni-modal heads fused, then joint) really trained
        # `expected` epochs.
        assert [int(c.optimizer.iterations) for c in clones] == [
            expected * steps] * 2


def test_online_fires_at_warmup_end_then_every_super_epoch_and_resumes(
        toy_data, compiled_toy_model):
    train, holdout = _split(toy_data)
    model = compiled_toy_model()
    callback = kg.GBlendCallback(
        holdout, warmup_epochs=2, first_super_epoch=3, super_epoch=3,
        estimation_epochs=1, noise_z=None, verbose=0
    )
    history = _fit(model, train, callback, epochs=6)
    estimated_at = history.history["gblend/estimation_epoch"]
    assert estimated_at == [-1, -1, 2, 2, 2, 5]
    weights = [
        [history.history[f"blend_weight/{h}"][e] for h in model.head_names]
        for e in range(6)
    ]
    assert weights[0] == weights[1] == [1.0, 1.0, 1.0]  # warm-up: compiled
    assert weights[2] != weights[1] and weights[5] != weights[4]
    assert np.isnan(history.history["gblend/delta_g/a"][0])
    delta_g = history.history["gblend/delta_g/a"]
    assert delta_g[2] == delta_g[4]  # the same estimate until the next one

    # Resume from epoch 6 (as after a restart): the estimate of epoch 5 is
    # not redone; the next one comes at epoch 8.
    resumed = _fit(model, train, callback, epochs=10, initial_epoch=6)
    assert resumed.history["gblend/estimation_epoch"] == [5, 5, 8, 8]


def test_online_does_not_redo_an_estimate_restored_mid_epoch(
        toy_data, compiled_toy_model):
    train, holdout = _split(toy_data)
    model = compiled_toy_model()
    callback = kg.GBlendCallback(
        holdout, warmup_epochs=1, first_super_epoch=2, super_epoch=2,
        estimation_epochs=1, noise_z=None, verbose=0
    )
    _fit(model, train, callback, epochs=2)
    weights = model.blend_weights
    # A restart inside epoch 1 with state saved after its estimate.
    history = _fit(model, train, callback, epochs=2, initial_epoch=1)
    assert history.history["gblend/estimation_epoch"] == [1]
    assert model.blend_weights == weights


def test_offline_estimates_once_and_never_again(toy_data, compiled_toy_model):
    train, holdout = _split(toy_data)
    model = compiled_toy_model()
    callback = kg.GBlendCallback(
        holdout, mode="offline", estimation_epochs=2, verbose=0
    )
    history = _fit(model, train, callback, epochs=3)
    assert history.history["gblend/estimation_epoch"] == [0, 0, 0]
    first = model.blend_weights
    estimate = callback.last_estimate
    assert first == pytest.approx(estimate.weights_dict(), rel=1e-6)
    assert len({tuple(history.history[f"blend_weight/{h}"]) for h in first}) > 1
    _fit(model, train, callback, epochs=5, initial_epoch=3)
    assert model.blend_weights == first


def test_logs_reach_csv_logger_and_tensorboard(
        tmp_path, toy_data, compiled_toy_model):
    train, holdout = _split(toy_data)
    model = compiled_toy_model()
    callback = kg.GBlendCallback(
        holdout, mode="offline", estimation_epochs=1, verbose=0
    )
    csv_path = tmp_path / "log.csv"
    _fit(
        model,
        train,
        callback,
        epochs=2,
        extra=[
            keras.callbacks.CSVLogger(str(csv_path)),
            keras.callbacks.TensorBoard(str(tmp_path / "tb")),
        ],
    )
    rows = list(csv.DictReader(open(csv_path)))
    assert len(rows) == 2
    assert float(rows[1]["blend_weight/joint"]) == pytest.approx(
        model.blend_weights["joint"], rel=1e-5
    )
    tags = set()
    for path in (tmp_path / "tb").rglob("*.tfevents*"):
        for record in tf.data.TFRecordDataset(str(path)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            tags.update(v.tag for v in event.summary.value)
    assert {"epoch_blend_weight/a", "epoch_gblend/ogr/joint", "epoch_a_loss"} <= tags


def test_errors_are_raised_before_any_training_step(
        toy_data, compiled_toy_model):
    train, holdout = _split(toy_data)
    x_h, y_h = holdout
    with pytest.raises(ValueError, match="^The holdout is empty"):
        kg.GBlendCallback(({k: v[:0] for k, v in x_h.items()}, y_h[:0]))
    with pytest.raises(ValueError, match="single class"):
        kg.GBlendCallback((x_h, np.ones_like(y_h)))
    with pytest.raises(ValueError, match="mode"):
        kg.GBlendCallback(holdout, mode="sometimes")
    with pytest.raises(ValueError, match="super_epoch"):
        kg.GBlendCallback(holdout, super_epoch=0)
    for name, bad in (("first_super_epoch", 0), ("warmup_epochs", -1),
                      ("estimation_epochs", 1.5), ("min_delta_o", -1),
                      ("min_delta_o", 0), ("train_subset_fraction", 5),
                      ("train_subset_fraction", 0), ("noise_z", -1),
                      ("noise_z", float("inf")), ("smoothing", 1.0),
                      ("smoothing", "a"), ("joint_weight_floor", 1.0),
                      ("joint_weight_floor", -0.1)):
        with pytest.raises(ValueError, match=name):
            kg.GBlendCallback(holdout, **{name: bad})

    model = compiled_toy_model()
    missing_modality = kg.GBlendCallback(({"a": x_h["a"]}, y_h))
    with pytest.raises(ValueError,
                       match=r"The holdout has no input for modality\(ies\) "
                             r"\['v'\]"):
        _fit(model, train, missing_modality, epochs=1)
    # A holdout dataset whose inputs are one tensor, not {modality: ...}.
    one_tensor = tf.data.Dataset.from_tensor_slices(
        (x_h["a"], y_h)).batch(8)
    with pytest.raises(ValueError):
        _fit(model, train, kg.GBlendCallback(one_tensor), epochs=1)
    x_t, y_t = train
    bad_train = ({**x_t, "a": np.where(np.arange(len(y_t))[:, None] == 3,
                                       np.nan, x_t["a"])}, y_t)
    with pytest.raises(ValueError, match="`train` data"):
        _fit(model, train, kg.GBlendCallback(holdout, train=bad_train),
             epochs=1)
    plain = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    plain.compile("sgd", "mse")
    with pytest.raises(TypeError, match="BlendedModel"):
        plain.fit(
            train[0]["a"], np.eye(3)[train[1]], epochs=1, verbose=0,
            callbacks=[kg.GBlendCallback(holdout)],
        )
    assert int(model.optimizer.iterations.numpy()) == 0


def test_online_run_too_short_to_estimate_warns_in_process(
        toy_data, compiled_toy_model):
    train, holdout = _split(toy_data)
    model = compiled_toy_model()
    callback = kg.GBlendCallback(holdout, mode="online", warmup_epochs=3,
                                 verbose=0)
    with pytest.warns(UserWarning, match="will never estimate"):
        _fit(model, train, callback, epochs=2)
    assert callback.last_estimate is None
    # Offline estimates at the start of any run: no such warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        _fit(compiled_toy_model(), train, kg.GBlendCallback(
            holdout, mode="offline", estimation_epochs=1, noise_z=None,
            verbose=0), epochs=1)


def test_no_generalization_keeps_previous_weights(
        toy_data, compiled_toy_model):
    train, holdout = _split(toy_data)
    model = compiled_toy_model(keras.optimizers.SGD(0.0))  # nothing learns
    model.set_blend_weights([0.2, 0.3, 0.5])
    callback = kg.GBlendCallback(
        holdout, mode="offline", estimation_epochs=1, verbose=0
    )
    with pytest.warns(UserWarning, match="keeping the previous blend weights"):
        _fit(model, train, callback, epochs=1)
    assert model.blend_weights == pytest.approx({"a": 0.2, "v": 0.3, "joint": 0.5})


def _converged_on_random_labels(toy_data, compiled_toy_model, noise_z):
    """A model fitted to labels that carry no signal, so that one more
    epoch moves every head's holdout loss by noise only."""
    x, y = toy_data(n=96, seed=1)
    y = np.random.default_rng(0).permutation(y)
    train, holdout = kg.split_holdout((x, y), fraction=0.25, seed=0)
    model = compiled_toy_model(keras.optimizers.SGD(0.02))
    model.fit(*train, epochs=5, batch_size=32, verbose=0)
    model.set_blend_weights([0.2, 0.3, 0.5])
    callback = kg.GBlendCallback(holdout, mode="offline", estimation_epochs=1,
                                 estimation_fraction=1.0, batch_size=32,
                                 noise_z=noise_z, verbose=0)
    return model, train, callback


def test_gains_all_within_noise_keep_the_previous_weights(
        toy_data, compiled_toy_model):
    model, train, callback = _converged_on_random_labels(
        toy_data, compiled_toy_model, noise_z=2.0)
    with pytest.warns(UserWarning, match="no head clearly improved"):
        _fit(model, train, callback, epochs=1)
    estimate = callback.last_estimate
    assert np.all(estimate.delta_g > 0)  # each gain is positive...
    assert not np.any(estimate.generalizing)  # ...but within its noise
    assert np.all(estimate.delta_g < 2 * estimate.delta_g_se)
    assert model.blend_weights == pytest.approx({"a": 0.2, "v": 0.3, "joint": 0.5})
    # Ignoring the noise, the same gains would have set new weights.
    model, train, callback = _converged_on_random_labels(
        toy_data, compiled_toy_model, noise_z=None)
    _fit(model, train, callback, epochs=1)
    assert model.blend_weights != pytest.approx(
        {"a": 0.2, "v": 0.3, "joint": 0.5})


# Weights in use as set (normalised by the smoothing: .25, .5, .25), and
# already summing to exactly 1.
@pytest.mark.parametrize("in_use", [[1.0, 2.0, 1.0], [0.25, 0.5, 0.25]])
def test_smoothing_mixes_the_estimate_with_the_weights_in_use(
        in_use, toy_data, compiled_toy_model):
    train, holdout = _split(toy_data)
    model = compiled_toy_model()
    model.set_blend_weights(in_use)
    callback = kg.GBlendCallback(holdout, mode="offline", estimation_epochs=1,
                                 noise_z=None, smoothing=0.25, verbose=0)
    _fit(model, train, callback, epochs=1)
    expected = 0.75 * callback.last_estimate.weights + 0.25 * np.array(
        [0.25, 0.5, 0.25])
    np.testing.assert_allclose(list(model.blend_weights.values()), expected,
                               rtol=1e-6)


def test_joint_weight_floor_lifts_the_answer_head_after_the_estimate(
        toy_data, compiled_toy_model):
    train, holdout = _split(toy_data)
    for floor in (0.0, 0.9):
        model = compiled_toy_model()
        callback = kg.GBlendCallback(holdout, mode="offline",
                                     estimation_epochs=1, noise_z=None,
                                     joint_weight_floor=floor, verbose=0)
        _fit(model, train, callback, epochs=1)
        estimated = callback.last_estimate.weights
        weights = np.array(list(model.blend_weights.values()))
        if floor == 0.0:  # Proposition 1's weights as they came
            np.testing.assert_allclose(weights, estimated, rtol=1e-6)
            continue
        assert estimated[-1] < floor  # so the floor has work to do
        assert weights[-1] == pytest.approx(floor)
        # The modalities share the rest in the estimate's proportions.
        np.testing.assert_allclose(
            weights[:-1], (1 - floor) * estimated[:-1] / estimated[:-1].sum(),
            rtol=1e-5)


def test_get_config_round_trips(toy_data):
    _, holdout = _split(toy_data)
    callback = kg.GBlendCallback(holdout, mode="offline", warmup_epochs=3,
                                 seed=4, joint_weight_floor=0.1)
    config = callback.get_config()
    clone = kg.GBlendCallback.from_config({**config, "holdout": holdout})
    assert clone.get_config() == config
    assert config["seed"] == 4 and config["warmup_epochs"] == 3
    assert config["joint_weight_floor"] == 0.1


def test_every_estimate_draws_its_own_shuffle_and_bootstrap(
        toy_data, compiled_toy_model, spy_estimates):
    calls = spy_estimates
    train, holdout = _split(toy_data, n=120, seed=0)
    callback = kg.GBlendCallback(holdout, first_super_epoch=1, super_epoch=1,
                                 estimation_epochs=1, seed=7, verbose=0)
    compiled_toy_model().fit(*train, epochs=3, verbose=0, callbacks=[callback])
    assert [call["seed"] for call in calls] == [7, 8, 9]
