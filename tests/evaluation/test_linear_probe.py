"""A linear probe measures how much of the task an encoder's frozen
features hold."""

import keras
import numpy as np

from keras_gblend.evaluation import linear_probe


def test_a_probe_reads_an_informative_encoder_and_not_a_noise_one(
        toy_data, toy_model, sparse_ce):
    x, y = toy_data(n=240, seed=1)
    train = ({m: v[:160] for m, v in x.items()}, y[:160])
    holdout = ({m: v[160:] for m, v in x.items()}, y[160:])
    model = toy_model(seed=2)
    model.compile(keras.optimizers.SGD(0.1), sparse_ce(),
                  loss_weights=[1.0, 1.0, 0.0])
    model.fit(*train, epochs=20, verbose=0)
    probes = linear_probe.probe_every_encoder(
        model, ["a", "v"], train, holdout, num_classes=3)
    assert probes["a"] > 0.9  # `a` carries the class
    assert probes["v"] < 0.75  # `v` is mostly noise (chance 0.33)


def test_the_features_probed_are_the_uni_modal_heads_input(toy_model):
    model = toy_model(seed=0)
    extractor = linear_probe.encoder_features(model, "a")
    x = np.random.default_rng(0).normal(size=(5, 6)).astype("float32")
    features = extractor.predict(x, verbose=0)
    head = model.get_layer("a_head")
    np.testing.assert_allclose(
        head(features).numpy(),
        model.predict({"a": x, "v": np.zeros((5, 4), "float32")},
                      verbose=0)["a"], rtol=1e-5, atol=1e-6)


def test_a_probe_of_label_features_is_perfect_and_of_constants_is_chance():
    inputs = {"a": keras.Input((3,), name="a"), "b": keras.Input((3,), name="b")}
    identity = keras.layers.Identity(name="a_features")(inputs["a"])
    constant = keras.layers.Lambda(lambda t: t * 0.0, name="b_features")(
        inputs["b"])
    model = keras.Model(inputs, {
        "a": keras.layers.Dense(3, name="a_head")(identity),
        "b": keras.layers.Dense(3, name="b_head")(constant)})
    y = np.arange(90) % 3
    one_hot = np.eye(3, dtype="float32")[y]
    data = ({"a": one_hot, "b": one_hot}, y)
    assert linear_probe.linear_probe_accuracy(model, "a", data, data, 3) == 1.0
    assert linear_probe.linear_probe_accuracy(model, "b", data, data, 3) < 0.4
