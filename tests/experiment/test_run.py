import gc
import os
import signal

import keras
import numpy as np
import pytest

import keras_gblend as kg
from keras_gblend.experiment import build, cli, run
from keras_gblend.experiment import config as experiment_config


def test_early_stop_restores_the_best_holdout_epoch(tmp_path):
    config = experiment_config.ExperimentConfig(
        method="early_stop", epochs=60, patience=2, learning_rate=0.5,
        verbose=0, model_dir=str(tmp_path / "run"))
    results = run.run_experiment(config)
    losses = results["history"]["val_joint_loss"]
    assert len(losses) < 60 and results["stopped_early"]
    best = int(np.argmin(losses))
    assert len(losses) == best + 1 + 2  # patience epochs after the best
    # The saved model holds the best epoch's weights: its holdout joint
    # loss is the best logged one.
    model = keras.saving.load_model(str(tmp_path / "run" / "model.keras"))
    _, holdout, _, _, _ = build.load_data(config)
    scores = model.evaluate(*holdout, return_dict=True, verbose=0)
    assert scores["joint_loss"] == pytest.approx(losses[best], rel=1e-4)
    # A rerun keeps the finished run instead of training on.
    again = run.run_experiment(config)
    assert again["history"] == results["history"]


def test_premise_check_falls_inside_the_modulation_window():
    # Halfway through the run, unless the window closes earlier: after it
    # every coefficient is 1 and the check would read "slowed no modality".
    def check_epoch(**settings):
        return run.premise_check_epoch(
            experiment_config.ExperimentConfig(epochs=20, **settings))

    assert check_epoch() == 10
    assert check_epoch(ogm_end_epoch=4) == 5  # epoch index 4, the last in it
    assert check_epoch(ogm_end_epoch=14) == 10
    assert check_epoch(ogm_start_epoch=12, ogm_end_epoch=14) == 13


def test_a_ctrl_c_that_python_swallowed_still_stops_training(
        tmp_path, monkeypatch):
    monkeypatch.setitem(cli._ctrl_c, "pressed", False)

    class InterruptedInDel:
        def __del__(self):
            cli._on_ctrl_c(signal.SIGINT, None)

    # Python prints a KeyboardInterrupt raised inside `__del__` and drops it.
    InterruptedInDel()
    gc.collect()
    assert cli.interrupted()
    config = experiment_config.ExperimentConfig(
        method="naive", epochs=3, verbose=0, model_dir=str(tmp_path / "run"))
    with pytest.raises(KeyboardInterrupt):
        run.run_experiment(config)
    # Stopped after the first batch: no epoch finished, none checkpointed.
    assert not os.path.exists(tmp_path / "run" / "metrics.json")
    assert kg.ResumableCheckpoint.saved_epoch(
        str(tmp_path / "run" / "checkpoints")) == 0
