"""Step time of the OGM-GE train step vs Keras's own train step, on the same
conv late-fusion model and data, eager-graph (tf.function) and XLA,
measured side by side (interleaved repeats, median) in one run.

Usage:
    python benchmarks/ogm_speed.py [--steps=40 --repeats=5 --batch_size=32]

Writes benchmarks/results/ogm_speed.{md,json}.
"""

import json
import os
import sys
import time

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_gblend as kg  # noqa: E402

FLAGS = flags.FLAGS
HERE = os.path.dirname(os.path.abspath(__file__))


def define_flags():
    flags.DEFINE_integer("steps", 40, "Timed steps per measurement.")
    flags.DEFINE_integer("repeats", 5, "Interleaved repeats (median taken).")
    flags.DEFINE_integer("batch_size", 32, "Batch size.")
    flags.DEFINE_string("out", os.path.join(HERE, "results", "ogm_speed"),
                        "Output path without extension.")


def conv_encoder(shape, name):
    return keras.Sequential(
        [
            keras.Input(shape),
            keras.layers.Conv2D(16, 3, strides=2, activation="relu"),
            keras.layers.Conv2D(32, 3, strides=2, activation="relu"),
            keras.layers.Conv2D(64, 3, strides=2, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
        ],
        name=name,
    )


def build(modulation, jit_compile):
    keras.utils.set_random_seed(0)
    model = kg.late_fusion_model(
        {"audio": conv_encoder((64, 64, 1), "audio_encoder"),
         "visual": conv_encoder((48, 48, 3), "visual_encoder")},
        num_classes=6, fusion="concat", modulation=modulation)
    model.compile(keras.optimizers.SGD(1e-3, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  loss_weights=[0.0, 0.0, 1.0], jit_compile=jit_compile)
    return model


def main(argv):
    del argv
    n = FLAGS.batch_size * FLAGS.steps
    rng = np.random.default_rng(0)
    x = {"audio": rng.normal(size=(n, 64, 64, 1)).astype("float32"),
         "visual": rng.normal(size=(n, 48, 48, 3)).astype("float32")}
    y = rng.integers(0, 6, size=n).astype("int32")
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(
        FLAGS.batch_size).cache()
    variants = {
        "keras train_step": None,
        "OGM (no noise)": kg.OGMGE(alpha=0.5, noise=False),
        "OGM-GE": kg.OGMGE(alpha=0.5, seed=0),
    }
    models = {}
    for jit in (False, True):
        for name, modulation in variants.items():
            model = build(modulation, jit)
            model.fit(dataset, epochs=1, verbose=0)  # trace + warm up
            models[(jit, name)] = model
    times = {key: [] for key in models}
    for _ in range(FLAGS.repeats):
        for key, model in models.items():
            start = time.perf_counter()
            model.fit(dataset, epochs=1, verbose=0)
            times[key].append((time.perf_counter() - start) / FLAGS.steps)
    rows = []
    for jit in (False, True):
        base = np.median(times[(jit, "keras train_step")])
        for name in variants:
            median = float(np.median(times[(jit, name)]))
            rows.append({"mode": "XLA" if jit else "graph", "variant": name,
                         "ms_per_step": 1000 * median,
                         "ratio_to_keras": median / base})
    lines = ["# OGM-GE step time vs Keras train_step", "",
             f"Conv late-fusion model (audio 64x64x1, visual 48x48x3, 3 conv "
             f"layers each), batch {FLAGS.batch_size}, SGD momentum, CPU "
             f"({os.cpu_count()} cores). Median of {FLAGS.repeats} interleaved "
             f"repeats of {FLAGS.steps} steps.", "",
             "| mode | variant | ms/step | ratio to Keras |", "|---|---|---|---|"]
    lines += [f"| {r['mode']} | {r['variant']} | {r['ms_per_step']:.2f} | "
              f"{r['ratio_to_keras']:.3f} |" for r in rows]
    table = "\n".join(lines)
    print(table)
    os.makedirs(os.path.dirname(FLAGS.out), exist_ok=True)
    with open(FLAGS.out + ".md", "w") as f:
        f.write(table + "\n")
    with open(FLAGS.out + ".json", "w") as f:
        json.dump(rows, f, indent=2)


if __name__ == "__main__":
    define_flags()
    app.run(main)
