"""Estimate offline G-Blend weights for a dataset and model without training
the model (Algorithm 1 from the initial weights, printed and saved as JSON).

Example:
    python scripts/estimate_weights.py --views=fac,mor --estimation_epochs=5
"""

import json

from absl import app, flags

from flags_first import import_before_tensorflow

cli = import_before_tensorflow("keras_gblend.experiment.cli")
experiment_config = import_before_tensorflow("keras_gblend.experiment.config")

FLAGS = flags.FLAGS
# The settings this script reads, as `train.py` names them but one.
SETTINGS = ("dataset", "data_dir", "views", "estimation_epochs",
            "estimation_fraction", "gblend_metric", "gblend_preset", "noise_z",
            "min_delta_o", "update_rule", "clone_repeats", "fusion",
            "hidden_units", "batch_size", "optimizer", "learning_rate", "seed")
RENAMED = {"gblend_metric": "metric"}


def _fields():
    return [experiment_config.field_named(name) for name in SETTINGS]


def define_flags():
    cli.define_flags(_fields(), experiment_config.check_value,
                     renamed=RENAMED, defaults={"estimation_epochs": 5})
    flags.DEFINE_string("out", None, "Optional JSON output path.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if FLAGS.out:
        cli.check_writable(FLAGS.out, "out")  # before any of the work
    values = cli.flag_values(_fields(), RENAMED)
    if not isinstance(values["estimation_epochs"], int):
        raise app.UsageError(
            "--estimation_epochs: a number of epochs here (this script trains "
            "no run whose length 'auto' or 'span' could follow).")
    config = experiment_config.ExperimentConfig(
        **values, method="gblend_offline", verbose=0)
    try:
        config.validate()
    except ValueError as error:
        raise app.UsageError(
            experiment_config.flag_message(error) or str(error))
    config = config.resolved()
    with cli.quiet_tensorflow():
        import keras
        from keras_gblend.experiment import build
        from keras_gblend.gblend.blend_estimator import estimate_blend_weights
    keras.utils.set_random_seed(config.seed)
    train, holdout, _, encoders, num_classes = build.load_data(config)
    model = build.build_model(config, encoders(), num_classes)
    estimate = estimate_blend_weights(
        model, train, holdout, epochs=config.estimation_epochs,
        metric=config.gblend_metric,
        estimation_fraction=config.estimation_fraction,
        batch_size=config.batch_size, seed=config.seed,
        noise_z=config.noise_z, min_delta_o=config.min_delta_o,
        update_rule=config.update_rule, repeats=config.clone_repeats,
        on_no_generalization="keep")
    report = {
        "weights": estimate.weights_dict(),
        "previous_weights": dict(zip(estimate.head_names,
                                     estimate.previous_weights.tolist())),
        **{figure: (None if getattr(estimate, figure) is None else
                    dict(zip(estimate.head_names,
                             getattr(estimate, figure).tolist())))
           for figure in ("delta_o", "delta_g", "ogr", "delta_g_se",
                          "delta_o_se", "generalizing")},
        "metric": config.gblend_metric,
        "gblend_preset": config.gblend_preset,
        "estimation_epochs": config.estimation_epochs,
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
