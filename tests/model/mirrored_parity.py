"""Run in a fresh process: G-Blend and OGM-GE under MirroredStrategy on 2
logical CPUs vs one device on the same global batch. Prints one JSON line."""

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

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import keras_gblend as kg  # noqa: E402
from toy_problem import sparse_ce, toy_data, toy_model  # noqa: E402


def build(strategy, modulation, learning_rate, hidden=16):
    with strategy.scope():
        model = toy_model(hidden=hidden, modulation=modulation)
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

    # 3. G-Blend: weights estimated (clones in the strategy scope, holdout
    #    evaluated distributed) and applied give the same training.
    train_data, holdout = kg.split_holdout((x, y), fraction=0.25, seed=0)
    runs = {}
    for name, strategy in (("single", single_device), ("mirrored", mirrored)):
        model = build(strategy, None, 0.1)
        if name == "mirrored":
            model.set_weights(runs["single"][0])
        start = model.get_weights()
        callback = kg.GBlendCallback(holdout, mode="online", warmup_epochs=1,
                                     first_super_epoch=1,
                                     super_epoch=1, estimation_epochs=2,
                                     verbose=0)
        history = model.fit(*train_data, batch_size=24, epochs=3, shuffle=False,
                            verbose=0, callbacks=[callback])
        runs[name] = (start, model.get_weights(), model.blend_weights,
                      history.history)
    single, multi = runs["single"], runs["mirrored"]
    result["gblend_max_weight_difference"] = max(
        float(np.abs(p - q).max()) for p, q in zip(single[1], multi[1]))
    result["gblend_weights"] = [single[2], multi[2]]
    result["gblend_head_loss_difference"] = max(
        abs(a - b) for key in ("a_loss", "v_loss", "joint_loss")
        for a, b in zip(single[3][key], multi[3][key]))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
