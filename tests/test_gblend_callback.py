import csv

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_gblend as kg
from conftest import compiled_toy_model, toy_data


def _split():
    x, y = toy_data(n=96, seed=1)
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


def test_schedule_predicate():
    callback = kg.GBlendCallback(_split()[1], warmup_epochs=10, super_epoch=5)
    fired = [e for e in range(30) if callback.is_estimation_epoch(e)]
    assert fired == [10, 15, 20, 25]
    offline = kg.GBlendCallback(_split()[1], mode="offline")
    assert not any(offline.is_estimation_epoch(e) for e in range(30))


def test_online_fires_at_warmup_end_then_every_super_epoch_and_resumes():
    train, holdout = _split()
    model = compiled_toy_model()
    callback = kg.GBlendCallback(
        holdout, warmup_epochs=2, super_epoch=3, estimation_epochs=1, verbose=0
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
    assert sum(weights[2]) == pytest.approx(1.0, abs=1e-6)
    assert np.isnan(history.history["gblend/delta_g/a"][0])
    delta_g = history.history["gblend/delta_g/a"]
    assert delta_g[2] == delta_g[4]  # the same estimate until the next one
    assert delta_g[5] == pytest.approx(callback.last_estimate.delta_g[0])

    # Resume from epoch 6 (as after a restart): the estimate of epoch 5 is
    # not redone; the next one comes at epoch 8.
    resumed = _fit(model, train, callback, epochs=10, initial_epoch=6)
    assert resumed.history["gblend/estimation_epoch"] == [5, 5, 8, 8]


def test_online_does_not_redo_an_estimate_restored_mid_epoch():
    train, holdout = _split()
    model = compiled_toy_model()
    callback = kg.GBlendCallback(
        holdout, warmup_epochs=1, super_epoch=2, estimation_epochs=1, verbose=0
    )
    _fit(model, train, callback, epochs=2)
    weights = model.blend_weights
    # A restart inside epoch 1 with state saved after its estimate.
    history = _fit(model, train, callback, epochs=2, initial_epoch=1)
    assert history.history["gblend/estimation_epoch"] == [1]
    assert model.blend_weights == weights


def test_offline_estimates_once_and_never_again():
    train, holdout = _split()
    model = compiled_toy_model()
    callback = kg.GBlendCallback(
        holdout, mode="offline", estimation_epochs=2, verbose=0
    )
    history = _fit(model, train, callback, epochs=3)
    assert history.history["gblend/estimation_epoch"] == [0, 0, 0]
    first = model.blend_weights
    assert sum(first.values()) == pytest.approx(1.0, abs=1e-6)
    assert len({tuple(history.history[f"blend_weight/{h}"]) for h in first}) > 1
    _fit(model, train, callback, epochs=5, initial_epoch=3)
    assert model.blend_weights == first


def test_logs_reach_csv_logger_and_tensorboard(tmp_path):
    train, holdout = _split()
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


def test_errors_are_raised_before_any_training_step():
    train, holdout = _split()
    x_h, y_h = holdout
    with pytest.raises(ValueError, match="empty"):
        kg.GBlendCallback(({k: v[:0] for k, v in x_h.items()}, y_h[:0]))
    with pytest.raises(ValueError, match="single class"):
        kg.GBlendCallback((x_h, np.ones_like(y_h)))
    with pytest.raises(ValueError, match="mode"):
        kg.GBlendCallback(holdout, mode="sometimes")
    with pytest.raises(ValueError, match="super_epoch"):
        kg.GBlendCallback(holdout, super_epoch=0)

    model = compiled_toy_model()
    missing_modality = kg.GBlendCallback(({"a": x_h["a"]}, y_h))
    with pytest.raises(ValueError, match=r"modality\(ies\) \['v'\]"):
        _fit(model, train, missing_modality, epochs=1)
    plain = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    plain.compile("sgd", "mse")
    with pytest.raises(TypeError, match="BlendedModel"):
        plain.fit(
            train[0]["a"], np.eye(3)[train[1]], epochs=1, verbose=0,
            callbacks=[kg.GBlendCallback(holdout)],
        )
    assert int(model.optimizer.iterations.numpy()) == 0


def test_no_generalization_keeps_previous_weights():
    train, holdout = _split()
    model = compiled_toy_model(keras.optimizers.SGD(0.0))  # nothing learns
    model.set_blend_weights([0.2, 0.3, 0.5])
    callback = kg.GBlendCallback(
        holdout, mode="offline", estimation_epochs=1, verbose=0
    )
    with pytest.warns(UserWarning, match="keeping the previous blend weights"):
        _fit(model, train, callback, epochs=1)
    assert model.blend_weights == pytest.approx({"a": 0.2, "v": 0.3, "joint": 0.5})


def test_get_config_round_trips():
    _, holdout = _split()
    callback = kg.GBlendCallback(holdout, mode="offline", warmup_epochs=3, seed=4)
    config = callback.get_config()
    clone = kg.GBlendCallback.from_config({**config, "holdout": holdout})
    assert clone.get_config() == config
    assert clone.estimation_epochs == callback.super_epoch
