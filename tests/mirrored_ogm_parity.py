"""Run in a fresh process: OGM-GE under MirroredStrategy on 2 logical CPUs vs
one device on the same global batch. Prints one JSON line."""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
import keras_gblend as kg  # noqa: E402
from conftest import sparse_ce, toy_data  # noqa: E402


def build(strategy, modulation, learning_rate, hidden=16):
    with strategy.scope():
        keras.utils.set_random_seed(0)
        encoders = {
            m: keras.Sequential(
                [keras.Input((d,)), keras.layers.Dense(hidden, activation="relu")],
                name=f"enc_{m}",
            )
            for m, d in (("a", 6), ("v", 4))
        }
        model = kg.late_fusion_model(encoders, 3, modulation=modulation)
        model.compile(keras.optimizers.SGD(learning_rate), sparse_ce())
    return model


def train(model, x, y, batch_size, epochs):
    model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=False, verbose=0)
    return [w.copy() for w in model.get_weights()]


def main():
    x, y = toy_data(n=64)
    single_device = tf.distribute.OneDeviceStrategy("/cpu:0")
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    result = {"replicas": mirrored.num_replicas_in_sync}

    # 1. OGM without noise: identical training.
    config = kg.OGMGE(alpha=0.5, noise=False)
    a = build(single_device, config, 0.1)
    b = build(mirrored, config, 0.1)
    b.set_weights(a.get_weights())
    wa, wb = train(a, x, y, 32, 3), train(b, x, y, 32, 3)
    result["max_weight_difference"] = max(
        float(np.abs(p - q).max()) for p, q in zip(wa, wb)
    )
    result["weights_moved"] = max(
        float(np.abs(p - q).max()) for p, q in zip(wa, build(single_device, None, 0.1).get_weights())
    )

    # 2. GE noise level after the cross-replica sum equals the std of the
    #    global-batch gradient (one full-batch step, SGD lr 1).
    ge = kg.OGMGE(modulation=False, noise=True, seed=3)
    plain = build(single_device, None, 1.0, hidden=256)
    noisy = build(mirrored, ge, 1.0, hidden=256)
    noisy.set_weights(plain.get_weights())
    index = [i for i, v in enumerate(plain.trainable_variables) if v.path.startswith("enc_a") and v.path.endswith("kernel")][0]
    start = plain.trainable_variables[index].numpy().copy()
    train(plain, x, y, 64, 1)
    train(noisy, x, y, 64, 1)
    gradient = start - plain.trainable_variables[index].numpy()
    noise = plain.trainable_variables[index].numpy() - noisy.trainable_variables[index].numpy()
    result["noise_std_over_gradient_std"] = float(np.std(noise) / np.std(gradient, ddof=1))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
