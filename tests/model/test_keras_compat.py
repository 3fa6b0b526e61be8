"""Every private Keras (and TensorFlow) member the library touches still
exists and behaves as used: a Keras release that changes one fails here,
naming it, instead of deep inside training."""

import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_gblend.model import keras_compat


def _functional():
    inputs = keras.Input((3,), name="x")
    hidden = keras.layers.Dense(4, activation="relu", name="hidden")(inputs)
    output = keras.layers.Dense(2, name="out")(hidden)
    return keras.Model(inputs, output), inputs, hidden, output


def test_the_tested_keras_is_the_installed_one():
    # Bumping Keras? Rerun this file, then raise TESTED_KERAS and setup.py's
    # bound together.
    assert keras.__version__.startswith(keras_compat.TESTED_KERAS + ".")


def test_keras_history_names_the_producing_layer_and_node():
    model, inputs, hidden, output = _functional()
    assert keras_compat.producing_layer(output) is model.get_layer("out")
    assert keras_compat.producing_layer(inputs).name == "x"
    assert keras_compat.producing_layer(np.zeros(2)) is None
    operation, node = keras_compat.producing_node(output)
    assert operation is model.get_layer("out")
    assert node.input_tensors[0] is hidden


def test_aggregate_additional_loss_scales_as_compute_loss_does():
    model, *_ = _functional()
    model.compile("sgd", "mse")
    value = keras_compat.aggregate_additional_loss(model, tf.constant(2.0))
    assert float(value) == pytest.approx(2.0)  # one replica: unscaled


def test_loss_tracker_is_the_metric_behind_the_logged_loss():
    model, *_ = _functional()
    model.compile("sgd", "mse")
    tracker = keras_compat.loss_tracker(model)
    assert isinstance(tracker, keras.metrics.Mean)
    logs = model.train_on_batch(np.ones((4, 3)), np.zeros((4, 2)),
                                return_dict=True)
    assert float(tracker.result()) == pytest.approx(logs["loss"])


def test_jit_compile_off_switches_the_flag_and_restores_it():
    model, *_ = _functional()
    model.compile("sgd", "mse", jit_compile=True)
    with keras_compat.jit_compile_off(model):
        assert model.jit_compile is False
    assert model.jit_compile is True


def test_learning_rate_object_is_the_schedule_given():
    schedule = keras.optimizers.schedules.CosineDecay(0.1, 100)
    assert keras_compat.learning_rate_object(
        keras.optimizers.SGD(schedule)) is schedule
    rate = keras_compat.learning_rate_object(keras.optimizers.SGD(0.3))
    assert float(keras.ops.convert_to_numpy(rate)) == pytest.approx(0.3)


def test_set_initial_epoch_makes_fit_start_there():
    model, *_ = _functional()
    model.compile("sgd", "mse")

    class StartAt(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            keras_compat.set_initial_epoch(self.model, 2)

    history = model.fit(np.ones((4, 3)), np.zeros((4, 2)), epochs=4,
                        verbose=0, callbacks=[StartAt()])
    assert history.epoch == [2, 3]


def test_multi_worker_mode_is_false_without_a_cluster():
    assert keras_compat.in_multi_worker_mode(tf.distribute.get_strategy()) \
        is False
    assert hasattr(tf.distribute.MultiWorkerMirroredStrategy,
                   "extended")


def test_the_symbolic_build_method_exists_with_the_overridden_signature():
    method = getattr(keras.Model, keras_compat.SYMBOLIC_BUILD_METHOD)
    assert list(inspect.signature(method).parameters) == [
        "self", "iterator", "data_batch"]


def test_local_batch_takes_the_first_batch_of_an_epoch_iterator():
    batch = (tf.ones((2, 3)), tf.zeros((2,)))
    iterator = [(0, 0, iter([batch]))]
    got = keras_compat.local_batch(tf.distribute.get_strategy(), iterator)
    assert got[0].shape == (2, 3)
    shaped = keras_compat.reshaped_for_multi_worker_reduce({"loss": 1.5})
    assert tuple(shaped["loss"].shape) == (1,)
