"""Plot a run's blend weights, OGR, OGM-GE coefficients and per-head losses
over epochs (needs matplotlib: pip install -e ".[plot]").

Example:
    python scripts/plot_history.py --model_dir=runs/latest
"""

import os

from absl import app, flags

from flags_first import import_before_tensorflow

cli = import_before_tensorflow("keras_gblend.experiment.cli")

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("model_dir", "runs/latest",
                        "Run folder (TensorBoard logs in <model_dir>/logs, or "
                        "metrics.json).")
    flags.DEFINE_string("out", None,
                        "Image path (default <model_dir>/history.png).")
    flags.DEFINE_integer("dpi", 100, "Resolution of a raster image.",
                         lower_bound=10)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not os.path.isdir(FLAGS.model_dir):
        raise app.UsageError(f"--model_dir: {FLAGS.model_dir} is not a folder.")
    out = FLAGS.out or os.path.join(FLAGS.model_dir, "history.png")
    with cli.quiet_tensorflow():
        from keras_gblend.evaluation.plotting import plot_history
    try:
        plot_history(FLAGS.model_dir, out=out, dpi=FLAGS.dpi)
    except ValueError as error:
        raise app.UsageError(f"--model_dir: {error}")
    print(f"Wrote {out}")


if __name__ == "__main__":
    define_flags()
    cli.run(main)
