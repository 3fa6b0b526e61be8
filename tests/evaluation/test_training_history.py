import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_gblend.evaluation.training_history import (
    load_epoch_logs,
    read_event_scalars,
)


def test_event_files_read_back_with_resumed_steps_overriding(tmp_path):
    train_dir = tmp_path / "logs" / "train"
    first = tf.summary.create_file_writer(str(train_dir))
    with first.as_default():
        for step, value in enumerate([0.2, 0.4, 0.6]):
            tf.summary.scalar("epoch_blend_weight/joint", value, step=step)
    first.close()
    # A resumed run repeats epoch 2 (after its last checkpoint) in a new file.
    second = tf.summary.create_file_writer(str(train_dir), filename_suffix=".b")
    with second.as_default():
        for step, value in [(2, 0.7), (3, 0.9)]:
            tf.summary.scalar("epoch_blend_weight/joint", value, step=step)
            tf.summary.histogram("epoch_ignored", np.ones(3), step=step)
    second.close()
    scalars = read_event_scalars(str(train_dir))
    assert set(scalars) == {"epoch_blend_weight/joint"}
    logs = load_epoch_logs(tmp_path)
    epochs, values = logs["blend_weight/joint"]
    assert epochs == [0, 1, 2, 3]
    assert values == pytest.approx([0.2, 0.4, 0.7, 0.9])


def test_history_epochs_follow_initial_epoch(toy_data, toy_model, sparse_ce):
    x, y = toy_data(n=48)
    model = toy_model()
    model.compile(keras.optimizers.SGD(0.1), sparse_ce())
    history = model.fit(x, y, epochs=4, initial_epoch=2, verbose=0)
    assert load_epoch_logs(history)["joint_loss"][0] == [2, 3]


def test_metrics_json_of_a_resumed_run_keeps_its_epochs(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps(
        {"initial_epoch": 3, "history": {"blend_weight/joint": [0.1, 0.2]}}))
    logs = load_epoch_logs(tmp_path)
    assert logs == {"blend_weight/joint": ([3, 4], [0.1, 0.2])}
    (tmp_path / "metrics.json").write_text(json.dumps({"history": {}}))
    with pytest.raises(ValueError, match="holds no epoch logs"):
        load_epoch_logs(tmp_path)
