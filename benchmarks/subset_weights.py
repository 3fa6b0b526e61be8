"""Supplementary A / Fig. 7 of the G-Blend paper: blend weights estimated on
a share of the training data vs on all of it.

For every setting, seed and `estimation_fraction`, Algorithm 1 runs from
the initial model (as offline G-Blend does) with `--estimation_epochs`
epochs per clone, on a stratified, seeded subset (`kg.estimation_subset`).
The table gives each head's weight as mean ± std over seeds, the mean
absolute difference from the full-data estimate of the same seed; the
figure plots the weights against the fraction.

Usage:
    python benchmarks/subset_weights.py --av_digits_dir=/tmp/avd   # ~25 min
    python benchmarks/subset_weights.py --seeds=0 --fractions=0.5,1 --settings=uci_fac_mor

Writes benchmarks/results/estimation/subset_weights.{md,json} and
docs/subset_weights.png.
"""

import os
import sys

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

import keras_gblend as kg  # noqa: E402
from keras_gblend.experiment import build, cli  # noqa: E402
from keras_gblend.experiment import config as experiment_config  # noqa: E402
from results_files import write_results  # noqa: E402

FLAGS = flags.FLAGS
REPEAT = 1.01  # key of the repeated full-data estimate (sorts last)
HERE = os.path.dirname(os.path.abspath(__file__))
SETTINGS = {
    "uci_fac_mor": ("UCI fac+mor", {"views": ("fac", "mor")}),
    "uci_all": ("UCI, all six views",
                {"views": ("fou", "fac", "kar", "pix", "zer", "mor")}),
    "av_digits": ("AV-digits", {"dataset": "av_digits"}),
}


def define_flags():
    flags.DEFINE_list("settings", list(SETTINGS), "Settings to measure.")
    flags.DEFINE_string("av_digits_dir", None,
                        "AV-digits folder (scripts/make_av_digits.py); "
                        "required for the av_digits setting.")
    flags.DEFINE_list("seeds", ["0", "1", "2", "3", "4"], "Seeds.")
    flags.DEFINE_list("fractions", ["0.1", "0.2", "0.25", "0.5", "0.75", "1"],
                      "Estimation fractions (1 = all the training data).")
    flags.DEFINE_integer("estimation_epochs", 5, "Epochs each clone trains.",
                         lower_bound=1)
    flags.DEFINE_list("batch_norm_statistics", ["recalibrated"],
                      "How the clones' BatchNormalization statistics are "
                      "measured, one table each: recalibrated (the default, "
                      "recomputed at the clone's weights) and/or moving (as "
                      "training left them).")
    flags.DEFINE_float("learning_rate", None,
                       "Learning rate (default: the experiment's).")
    flags.DEFINE_string("out", os.path.join(HERE, "results", "estimation",
                                             "subset_weights"),
                        "Output path without extension.")
    flags.DEFINE_string("plot", os.path.join(HERE, "..", "docs",
                                             "subset_weights.png"),
                        "Figure path ('' for none).")


BATCH_NORM_STATISTICS = {"recalibrated": True, "moving": False}


def estimates(setting_kwargs, seed, fractions, recalibrate):
    """`{fraction: weights}` for one seed, from one initial
    model."""
    config = experiment_config.ExperimentConfig(
        method="gblend_offline", seed=seed, verbose=0,
        learning_rate=FLAGS.learning_rate, **setting_kwargs)
    config.validate()
    keras.utils.set_random_seed(seed)
    train, holdout, _, encoders, num_classes = build.load_data(config)
    model = build.build_model(config, encoders(), num_classes)
    results = {}
    # The last run repeats the full-data estimate with other shuffle and
    # bootstrap seeds: the noise floor of any comparison with it.
    for fraction, estimation_seed in (
            [(f, seed) for f in fractions] + [(REPEAT, seed + 1000)]):
        estimate = kg.estimate_blend_weights(
            model, train, holdout, epochs=FLAGS.estimation_epochs,
            estimation_fraction=min(fraction, 1.0),
            batch_size=config.batch_size, seed=estimation_seed,
            on_no_generalization="keep", recalibrate_batch_norm=recalibrate)
        weights = estimate.weights
        if weights is None:  # nothing generalized: the weights in use
            weights = estimate.previous_weights
        results[fraction] = np.asarray(weights, float)
    return model.head_names, results


def measure(name, statistics):
    title, kwargs = SETTINGS[name]
    if len(FLAGS.batch_norm_statistics) > 1:
        title += f", BatchNormalization statistics {statistics}"
    if name == "av_digits":
        kwargs = {**kwargs, "data_dir": FLAGS.av_digits_dir}
    fractions = sorted({float(f) for f in FLAGS.fractions} | {1.0})
    per_seed = []
    for seed in (int(s) for s in FLAGS.seeds):
        heads, results = estimates(kwargs, seed, fractions,
                                   BATCH_NORM_STATISTICS[statistics])
        per_seed.append(results)
        print(title, "seed", seed, {f: np.round(w, 3).tolist()
                                    for f, w in results.items()},
              flush=True)
    rows = []
    for fraction in fractions + [REPEAT]:
        weights = np.stack([r[fraction] for r in per_seed])
        full = np.stack([r[1.0] for r in per_seed])
        rows.append({
            "fraction": fraction,
            "weights_mean": dict(zip(heads, weights.mean(0).tolist())),
            "weights_std": dict(zip(heads, weights.std(0).tolist())),
            "mean_abs_difference_to_full": float(
                np.abs(weights - full).mean()),
            "max_seed_difference_to_full": float(
                np.abs(weights - full).mean(1).max()),
        })
    return {"setting": name, "title": title, "heads": list(heads),
            "batch_norm_statistics": statistics, "rows": rows}


def table(result):
    heads = result["heads"]
    lines = [f"## {result['title']}", "",
             "| fraction | " + " | ".join(heads) +
             " | mean abs. difference to 100 % (worst seed) |",
             "|---|" + "---|" * len(heads) + "---|"]
    for row in result["rows"]:
        cells = [f"{row['weights_mean'][h]:.3f} ± {row['weights_std'][h]:.3f}"
                 for h in heads]
        label = (f"{100 * row['fraction']:g} %" if row["fraction"] != REPEAT
                 else "100 %, other shuffle seed")
        lines.append(
            f"| {label} | " + " | ".join(cells) +
            f" | {row['mean_abs_difference_to_full']:.3f} "
            f"({row['max_seed_difference_to_full']:.3f}) |")
    return lines


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(results),
                                figsize=(4.5 * len(results), 3.6))
    for axis, result in zip(np.atleast_1d(axes), results):
        rows = [r for r in result["rows"] if r["fraction"] != REPEAT]
        fractions = [100 * r["fraction"] for r in rows]
        for head in result["heads"]:
            axis.errorbar(fractions,
                          [r["weights_mean"][head] for r in rows],
                          yerr=[r["weights_std"][head] for r in rows],
                          marker="o", capsize=3, label=head)
        axis.set_title(result["title"])
        axis.set_xlabel("training data used for estimation (%)")
        axis.set_ylabel("blend weight")
        axis.legend(fontsize="small")
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path, dpi=110)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        fractions = [float(f) for f in FLAGS.fractions]
        seeds = [int(s) for s in FLAGS.seeds]
    except ValueError:
        raise app.UsageError("--fractions: numbers, --seeds: integers.")
    bad = [f for f in fractions if not 0 < f <= 1]
    if bad:
        raise app.UsageError(f"--fractions must be in (0, 1], got {bad}.")
    if not seeds:
        raise app.UsageError("--seeds: give at least one seed.")
    unknown = set(FLAGS.settings) - set(SETTINGS)
    if unknown:
        raise app.UsageError(f"--settings: unknown {sorted(unknown)}; "
                             f"choose from {list(SETTINGS)}.")
    if "av_digits" in FLAGS.settings and not FLAGS.av_digits_dir:
        raise app.UsageError("--av_digits_dir is required for the av_digits "
                             "setting (make one with scripts/make_av_digits.py)"
                             ", or leave it out of --settings.")
    unknown = set(FLAGS.batch_norm_statistics) - set(BATCH_NORM_STATISTICS)
    if unknown or not FLAGS.batch_norm_statistics:
        raise app.UsageError(
            f"--batch_norm_statistics: choose from "
            f"{list(BATCH_NORM_STATISTICS)}, got {FLAGS.batch_norm_statistics}.")
    results = [measure(name, statistics) for name in FLAGS.settings
               for statistics in FLAGS.batch_norm_statistics]
    lines = ["# Blend weights estimated on a subset of the training data",
             "", "Supplementary A / Fig. 7 of the paper. Algorithm 1 from "
             f"the initial model, {FLAGS.estimation_epochs} epochs per clone, "
             "on a stratified, seeded `estimation_fraction` of the training "
             f"data; mean ± std over seeds {FLAGS.seeds}. Difference: mean "
             "over heads and seeds of |w(fraction) − w(100 %)|, same seed "
             "(worst seed in brackets); the last row repeats the full-data "
             "estimate with other shuffle and bootstrap seeds, which is "
             "how far two estimates differ by chance alone. Written by "
             "`benchmarks/subset_weights.py`.", ""]
    for result in results:
        lines += table(result) + [""]
    write_results(FLAGS.out, "\n".join(lines), results)
    if FLAGS.plot:
        plot(results, FLAGS.plot)
    print("\n".join(lines))


if __name__ == "__main__":
    define_flags()
    cli.run(main)
