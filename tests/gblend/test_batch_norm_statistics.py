import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_gblend as kg
from keras_gblend.gblend import batch_norm_statistics


def _bn_model(momentum=0.9, trainable=True):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(4, name="dense")(inputs)
    norm = keras.layers.BatchNormalization(momentum=momentum, name="bn")
    norm.trainable = trainable
    return keras.Model(inputs, keras.layers.Dense(2, name="out")(norm(hidden)))


def test_recalibration_sets_the_exact_batch_statistics_and_nothing_else():
    model = _bn_model()
    x = np.random.default_rng(0).normal(3.0, 2.0, (64, 3)).astype("float32")
    norm = model.get_layer("bn")
    norm.moving_mean.assign(np.full(4, 50.0))  # stale statistics
    norm.moving_variance.assign(np.full(4, 9.0))
    trainable = [w.numpy().copy() for w in model.trainable_weights]
    batches = tf.data.Dataset.from_tensor_slices((x, np.zeros(64))).batch(16)
    assert batch_norm_statistics.recalibrate_batch_norm(model, batches) == 1
    # By hand: the BN input is the Dense output; its mean over all batches,
    # and the mean of the four batches' (biased) variances.
    kernel, bias = model.get_layer("dense").get_weights()
    h = x @ kernel + bias
    np.testing.assert_allclose(norm.moving_mean.numpy(), h.mean(0),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        norm.moving_variance.numpy(),
        np.mean([h[i:i + 16].var(0) for i in range(0, 64, 16)], axis=0),
        rtol=1e-4)
    for before, after in zip(trainable, model.trainable_weights):
        np.testing.assert_array_equal(before, after.numpy())
    assert norm.momentum == 0.9  # restored


def test_frozen_or_absent_batch_norm_is_left_alone(toy_model):
    frozen = _bn_model(trainable=False)
    norm = frozen.get_layer("bn")
    norm.moving_mean.assign(np.full(4, 50.0))
    x = np.ones((8, 3), "float32")
    assert batch_norm_statistics.recalibrate_batch_norm(frozen, [x]) == 0
    np.testing.assert_array_equal(norm.moving_mean.numpy(), np.full(4, 50.0))
    # No BatchNormalization: no pass over the data at all.
    plain = toy_model()
    assert batch_norm_statistics.recalibrate_batch_norm(plain, None) == 0
    with pytest.raises(ValueError, match="at least one batch"):
        batch_norm_statistics.recalibrate_batch_norm(_bn_model(), [])


def _bn_blended_model(sparse_ce, num_classes=3):
    """A late-fusion model with a BatchNormalization in modality `a`'s
    encoder whose moving averages barely follow training (momentum 0.999)."""
    keras.utils.set_random_seed(0)
    encoders = {
        "a": keras.Sequential([
            keras.Input((6,)), keras.layers.Dense(8),
            keras.layers.BatchNormalization(momentum=0.999, name="a_bn"),
            keras.layers.ReLU()], name="enc_a"),
        "v": keras.Sequential([keras.Input((4,)), keras.layers.Dense(
            8, activation="relu")], name="enc_v"),
    }
    model = kg.late_fusion_model(encoders, num_classes)
    model.compile(keras.optimizers.SGD(0.1), sparse_ce())
    return model


def test_estimator_measures_clones_with_recalibrated_statistics(
        toy_data, sparse_ce):
    x, y = toy_data(n=160, noise=0.3)
    train, holdout = kg.split_holdout((x, y), fraction=0.25, seed=0)
    model = _bn_blended_model(sparse_ce)
    model.fit(*train, epochs=20, verbose=0)
    model.optimizer.learning_rate = 0.0  # the clones' weights stay put
    norm = model.get_layer("enc_a").get_layer("a_bn")
    stale = np.full(8, 25.0, "float32")
    norm.moving_mean.assign(stale)  # statistics far from the data's
    errors = {}
    for recalibrate in (False, True):
        estimator = kg.BlendEstimator(
            model, train, holdout, estimation_fraction=1.0, metric="accuracy",
            seed=0, recalibrate_batch_norm=recalibrate)
        errors[recalibrate] = estimator.unimodal_holdout_values(epochs=1)["a"]
    # Measured with statistics recomputed on the training data, the
    # informative modality's clone is read as the trained network it is;
    # with the stale ones, as near chance.
    exact = _bn_blended_model(sparse_ce)
    exact.set_weights(model.get_weights())
    batch_norm_statistics.recalibrate_batch_norm(
        exact, tf.data.Dataset.from_tensor_slices(train[0]).batch(32))
    logits = exact.predict(holdout[0], verbose=0)["a"]
    exact_error = float(np.mean(np.argmax(logits, 1) != holdout[1]))
    assert exact_error < 0.2
    assert errors[True] == pytest.approx(exact_error, abs=0.05)
    assert errors[False] > errors[True] + 0.3
    # The model's own statistics are not touched.
    np.testing.assert_array_equal(norm.moving_mean.numpy(), stale)
