"""Estimate offline G-Blend weights for a dataset and model without training
the model (Algorithm 1 from the initial weights, printed and saved as JSON).

Example:
    python scripts/estimate_weights.py --views=fac,mor --estimation_epochs=5
"""

import json
import os
import sys

from absl import app, flags

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import keras  # noqa: E402

from keras_gblend import cli  # noqa: E402
from keras_gblend import experiment  # noqa: E402
from keras_gblend.estimation import estimate_blend_weights  # noqa: E402

FLAGS = flags.FLAGS


def define_flags():
    defaults = experiment.ExperimentConfig()
    flags.DEFINE_enum("dataset", defaults.dataset, experiment.DATASETS, "Dataset.")
    flags.DEFINE_string("data_dir", None, "AV-digits folder.")
    flags.DEFINE_list("views", list(defaults.views), "UCI views.")
    flags.DEFINE_integer("estimation_epochs", 5, "Epochs each clone trains.",
                         lower_bound=1)
    flags.DEFINE_float("estimation_fraction", defaults.estimation_fraction,
                       "Share of the training data (per class) the clones "
                       "train on.", lower_bound=0.0, upper_bound=1.0)
    flags.DEFINE_enum("metric", "loss", ["loss", "accuracy"], "OGR quantity.")
    flags.DEFINE_float("noise_z", defaults.noise_z,
                       "A head's holdout gain counts only above this many "
                       "bootstrap standard errors.", lower_bound=0.0)
    flags.DEFINE_enum("fusion", defaults.fusion, list(experiment.ALL_FUSIONS),
                      "Fusion.")
    flags.DEFINE_integer("hidden_units", defaults.hidden_units,
                         "Encoder width.", lower_bound=1)
    flags.DEFINE_integer("batch_size", defaults.batch_size, "Batch size.",
                         lower_bound=1)
    flags.DEFINE_enum("optimizer", defaults.optimizer,
                      list(experiment.OPTIMIZERS), "Clones' optimizer.")
    flags.DEFINE_float("learning_rate", None,
                       "Learning rate (default: Keras's for --optimizer).",
                       lower_bound=0.0)
    flags.DEFINE_integer("seed", 0, "Seed.")
    flags.DEFINE_string("out", None, "Optional JSON output path.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if FLAGS.out:
        cli.check_writable(FLAGS.out, "out")  # before any of the work
    config = experiment.ExperimentConfig(
        dataset=FLAGS.dataset, data_dir=FLAGS.data_dir, views=tuple(FLAGS.views),
        method="gblend_offline", fusion=FLAGS.fusion,
        hidden_units=FLAGS.hidden_units, batch_size=FLAGS.batch_size,
        optimizer=FLAGS.optimizer, learning_rate=FLAGS.learning_rate,
        estimation_fraction=FLAGS.estimation_fraction,
        seed=FLAGS.seed, verbose=0)
    try:
        config.validate()
    except ValueError as error:
        raise app.UsageError(f"--{error}")
    keras.utils.set_random_seed(config.seed)
    train, holdout, _, encoders, num_classes = experiment.load_data(config)
    model = experiment.build_model(config, encoders(), num_classes)
    estimate = estimate_blend_weights(
        model, train, holdout, epochs=FLAGS.estimation_epochs,
        metric=FLAGS.metric, estimation_fraction=config.estimation_fraction,
        batch_size=config.batch_size, seed=config.seed,
        noise_z=FLAGS.noise_z, on_no_generalization="keep")
    report = {
        "weights": estimate.weights_dict(),
        "previous_weights": dict(zip(estimate.head_names,
                                     estimate.previous_weights.tolist())),
        **{figure: dict(zip(estimate.head_names, getattr(estimate, figure).tolist()))
           for figure in ("delta_o", "delta_g", "ogr", "delta_g_se",
                          "delta_o_se", "generalizing")},
        "metric": FLAGS.metric,
        "estimation_epochs": FLAGS.estimation_epochs,
        "estimation_fraction": config.estimation_fraction,
        "seconds": estimate.seconds,
    }
    print(json.dumps(report, indent=2))
    if FLAGS.out:
        with open(FLAGS.out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    define_flags()
    cli.run(main)
