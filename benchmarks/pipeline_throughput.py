"""Input pipeline throughput on AV-digits: from files (WAV + JPEG folders),
from TFRecord shards, and from the same data decoded into memory — both the
pipeline alone and a training `fit` fed by it, measured side by side
(interleaved repeats, median) in one run.

Usage:
    python scripts/make_av_digits.py --out /tmp/av_digits --n 2000
    python benchmarks/pipeline_throughput.py --data_dir=/tmp/av_digits

Writes benchmarks/results/speed/pipeline_throughput.{md,json}.
"""

import os
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from keras_gblend.experiment import cli  # noqa: E402
import keras_gblend as kg  # noqa: E402
from keras_gblend import data as kd  # noqa: E402
from keras_gblend.datasets import av_digits  # noqa: E402
from results_files import device_description, write_results  # noqa: E402

FLAGS = flags.FLAGS
HERE = os.path.dirname(os.path.abspath(__file__))


def define_flags():
    flags.DEFINE_string("data_dir", None, "AV-digits folder.", required=True)
    flags.DEFINE_integer("batch_size", 32, "Batch size.", lower_bound=1)
    flags.DEFINE_integer("repeats", 3, "Interleaved repeats (median).",
                         lower_bound=1)
    flags.DEFINE_string(
        "out", os.path.join(HERE, "results", "speed", "pipeline_throughput"),
        "Output path without extension.")


def model_for(dataset):
    shapes = [s.shape[1:] for s in dataset.element_spec[0].values()]
    keras.utils.set_random_seed(0)
    model = kg.late_fusion_model(
        {"audio": kg.encoders.spectrogram_encoder(shapes[0]),
         "visual": kg.encoders.frames_encoder(shapes[1])}, num_classes=10)
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  loss_weights=[0.0, 0.0, 1.0])
    return model


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not os.path.isfile(os.path.join(FLAGS.data_dir, "train.csv")):
        raise app.UsageError(
            f"--data_dir: {FLAGS.data_dir!r} holds no AV-digits train.csv "
            "(make one with scripts/make_av_digits.py).")
    with tempfile.TemporaryDirectory() as shard_dir:
        rows, table = measure(shard_dir)
    print(table)
    write_results(FLAGS.out, table, rows)


def measure(shard_dir):
    """Rows of the JSON report and the markdown table."""
    clips = kd.read_split(av_digits.layout(FLAGS.data_dir), "train")
    n = len(clips)
    kd.write_tfrecords(clips, shard_dir, prefix="train", num_shards=8)

    def pipeline(source, cache):
        raw = (kd.clip_bytes_dataset(clips) if source == "files"
               else kd.read_tfrecords(os.path.join(shard_dir, "train-*")))
        return kd.preprocess(raw, av_digits.AUDIO, av_digits.FRAMES,
                             batch_size=FLAGS.batch_size, training=False,
                             cache=cache)

    decoded = [(x, y) for x, y in pipeline("files", False)]
    x_memory = {k: np.concatenate([b[0][k].numpy() for b in decoded])
                for k in ("audio", "visual")}
    y_memory = np.concatenate([b[1].numpy() for b in decoded])
    sources = {
        "files": lambda: pipeline("files", False),
        "files, cached bytes": lambda: pipeline("files", True),
        "TFRecords": lambda: pipeline("tfrecords", False),
        "memory (decoded arrays)": lambda: kd.arrays_dataset(
            x_memory, y_memory, batch_size=FLAGS.batch_size),
    }
    datasets = {name: make() for name, make in sources.items()}
    models = {name: model_for(ds) for name, ds in datasets.items()}
    for name, ds in datasets.items():  # warm up: traces, caches
        for _ in ds:
            pass
        models[name].fit(ds, epochs=1, verbose=0)
    pipeline_rates = {name: [] for name in datasets}
    fit_rates = {name: [] for name in datasets}
    for _ in range(FLAGS.repeats):
        for name, ds in datasets.items():
            start = time.perf_counter()
            for _ in ds:
                pass
            pipeline_rates[name].append(n / (time.perf_counter() - start))
            start = time.perf_counter()
            models[name].fit(ds, epochs=1, verbose=0)
            fit_rates[name].append(n / (time.perf_counter() - start))
    memory_fit = np.median(fit_rates["memory (decoded arrays)"])
    rows = [{"source": name,
             "pipeline_examples_per_s": float(np.median(pipeline_rates[name])),
             "fit_examples_per_s": float(np.median(fit_rates[name])),
             "fit_ratio_to_memory": float(np.median(fit_rates[name]) / memory_fit)}
            for name in datasets]
    lines = ["# Pipeline throughput on AV-digits", "",
             f"{n} training clips (spectrogram 101x64, 3 frames 32x32), batch "
             f"{FLAGS.batch_size}, evaluation-mode decoding, "
             f"{device_description()}, median of {FLAGS.repeats} interleaved "
             "repeats after a warm-up epoch. `fit` trains the conv late-fusion "
             "model of `scripts/train.py --dataset=av_digits`.", "",
             "| source | pipeline alone (examples/s) | fit (examples/s) | fit vs memory |",
             "|---|---|---|---|"]
    lines += [f"| {r['source']} | {r['pipeline_examples_per_s']:.0f} | "
              f"{r['fit_examples_per_s']:.0f} | {r['fit_ratio_to_memory']:.2f}× |"
              for r in rows]
    return rows, "\n".join(lines)


if __name__ == "__main__":
    define_flags()
    cli.run(main)
