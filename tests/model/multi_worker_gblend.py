"""One worker of a 2-process MultiWorkerMirroredStrategy G-Blend fit (reads
TF_CONFIG). Prints one JSON line with its final weights' fingerprint."""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402

strategy = tf.distribute.MultiWorkerMirroredStrategy()

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import keras_gblend as kg  # noqa: E402
from toy_problem import sparse_ce, toy_data, toy_model  # noqa: E402


def main():
    x, y = toy_data(n=96)
    train, holdout = kg.split_holdout((x, y), fraction=0.25, seed=0)
    with strategy.scope():
        model = toy_model()
        model.compile(keras.optimizers.SGD(0.1), sparse_ce())
    model.fit(*train, batch_size=24, epochs=2, shuffle=False, verbose=0,
              callbacks=[kg.GBlendCallback(holdout, mode="offline",
                                           estimation_epochs=1, verbose=0)])
    weights = np.concatenate([w.ravel() for w in model.get_weights()])
    print(json.dumps({
        "task": json.loads(os.environ["TF_CONFIG"])["task"]["index"],
        "replicas": strategy.num_replicas_in_sync,
        "blend_weights": model.blend_weights,
        "weights": weights.tolist(),
    }))


if __name__ == "__main__":
    main()
