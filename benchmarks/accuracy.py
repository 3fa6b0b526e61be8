"""Every method on UCI Multiple Features or AV-digits: uni-modal networks,
naive fusion, offline/online G-Blend, OGM, OGM-GE and G-Blend + OGM-GE; test
accuracy mean ± std over seeds and the wall time of each method's `fit`,
measured side by side in one run. Same budget (epochs, optimizer, learning
rate schedule, model) for every method; the holdout is carved from the
training split; the test split is evaluated once per run.

Usage:
    python benchmarks/accuracy.py                  # full table (~35 min, 2 cores)
    python benchmarks/accuracy.py --seeds=0 --epochs=5 --view_sets=fac,mor

    python scripts/make_av_digits.py --out /tmp/avd_clean --n 2000
    python scripts/make_av_digits.py --out /tmp/avd_noisy --n 2000 \
        --image_noise 0.8
    python benchmarks/accuracy.py --dataset=av_digits --epochs=20 \
        --learning_rate=0.05 --lr_schedule=cosine \
        --data_dirs=/tmp/avd_clean,/tmp/avd_noisy          # (~90 min)

Writes benchmarks/results/accuracy_<dataset>.{md,json}.
"""

import json
import os
import sys

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from keras_gblend import experiment  # noqa: E402
from results_files import write_results  # noqa: E402

FLAGS = flags.FLAGS
HERE = os.path.dirname(os.path.abspath(__file__))


def define_flags():
    flags.DEFINE_enum("dataset", "uci_mfeat", experiment.DATASETS, "Dataset.")
    flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
    flags.DEFINE_integer("epochs", 40, "Epochs per run (same for all methods).")
    flags.DEFINE_multi_string(
        "view_sets", ["fac,mor", "fou,fac,kar,pix,zer,mor"],
        "UCI view sets, each comma-separated.")
    flags.DEFINE_list("data_dirs", [],
                      "AV-digits folders (e.g. two noise levels).")
    flags.DEFINE_list("methods", list(experiment.METHODS),
                      "Methods (as scripts/train.py --method, incl. "
                      "unimodal:<m>).")
    flags.DEFINE_float("learning_rate", 0.01, "SGD learning rate.")
    flags.DEFINE_enum("lr_schedule", "constant", experiment.LR_SCHEDULES,
                      "Learning rate schedule (cosine: to 0 over --epochs).")
    flags.DEFINE_list("alphas", ["0.5"],
                      "OGM-GE alphas: each OGM method gets a row per alpha.")
    flags.DEFINE_string("out", None, "Output path without extension "
                        "(default benchmarks/results/accuracy_<dataset>).")


def mean_std(values):
    return f"{100 * np.mean(values):.1f} ± {100 * np.std(values):.1f}"


def trained_heads(method, heads):
    """Heads a method trains (the others' accuracy is not reported)."""
    modality = experiment.unimodal_modality(method)
    if modality is not None:
        return [modality]
    if method == "unimodal":
        return heads[:-1]
    return heads


def settings():
    """(title, ExperimentConfig keyword arguments) per table."""
    if FLAGS.dataset == "av_digits":
        if not FLAGS.data_dirs:
            raise app.UsageError("--data_dirs is required for av_digits.")
        return [(f"AV-digits {d}{av_digits_noise(d)}",
                 {"dataset": "av_digits", "data_dir": d})
                for d in FLAGS.data_dirs]
    return [(f"views {v}", {"views": tuple(v.split(","))})
            for v in FLAGS.view_sets]


def av_digits_noise(data_dir):
    """The noise a generated AV-digits folder was made with, for titles."""
    path = os.path.join(data_dir, "meta.json")
    if not os.path.isfile(path):
        return ""  # validation names the folder before any run
    with open(path) as f:
        meta = json.load(f)
    return (f" ({meta['n']} clips, image noise {meta['image_noise']:g}, "
            f"audio noise {meta['audio_noise']:g})")


FLAG_OF_SETTING = {"method": "methods", "views": "view_sets",
                   "data_dir": "data_dirs"}


def method_rows(alphas):
    """(row label, method, alpha) for every method (OGM ones per alpha)."""
    rows = []
    for method in FLAGS.methods:
        if "ogm" in method and len(alphas) > 1:
            rows += [(f"{method} α={alpha:g}", method, alpha) for alpha in alphas]
        else:
            rows.append((method, method, alphas[0]))
    return rows


def make_config(method, seed, kwargs, alpha):
    return experiment.ExperimentConfig(
        method=method, epochs=FLAGS.epochs, alpha=alpha,
        learning_rate=FLAGS.learning_rate, lr_schedule=FLAGS.lr_schedule,
        seed=seed, verbose=0, **kwargs)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        seeds = [int(seed) for seed in FLAGS.seeds]
    except ValueError:
        raise app.UsageError(f"--seeds: integers expected, got {FLAGS.seeds}.")
    try:
        alphas = [float(alpha) for alpha in FLAGS.alphas]
    except ValueError:
        raise app.UsageError(f"--alphas: numbers expected, got {FLAGS.alphas}.")
    for _, kwargs in settings():  # every setting is valid before any run
        for _, method, alpha in method_rows(alphas):
            try:
                make_config(method, seeds[0], kwargs, alpha).validate()
            except ValueError as error:
                # Config errors start with the setting's name.
                field, _, detail = str(error).partition(" ")
                flag = FLAG_OF_SETTING.get(field.rstrip(":"), field.rstrip(":"))
                raise app.UsageError(f"--{flag}: {detail}")
    tables = []
    for title, kwargs in settings():
        rows = []
        for label, method, alpha in method_rows(alphas):
            runs = []
            for seed in seeds:
                result = experiment.run_experiment(
                    make_config(method, seed, kwargs, alpha))
                runs.append({k: result[k] for k in
                             ("views", "test_accuracy", "blend_weights",
                              "wall_time_s")})
                print(title, label, seed, result["test_accuracy"],
                      f"{result['wall_time_s']:.1f}s", flush=True)
            rows.append({"method": method, "label": label, "alpha": alpha,
                         "runs": runs})
        tables.append({"setting": title, "rows": rows})

    lines = [f"# Methods on {FLAGS.dataset}", "",
             f"Test accuracy (%) mean ± std over seeds {FLAGS.seeds}, "
             f"{FLAGS.epochs} epochs each, SGD({FLAGS.learning_rate}, momentum "
             f"0.9), {FLAGS.lr_schedule} learning rate, batch 32, concat "
             "fusion, 10% holdout carved from train, test evaluated once "
             "per run. Online G-Blend: warm-up 10, super-epoch 5, "
             f"estimation 5 epochs. OGM-GE: alpha {', '.join(FLAGS.alphas)}, "
             "whole run. `unimodal` trains each modality's network alone "
             "(its columns), `unimodal:<m>` modality m's; other methods "
             "report the joint head, their per-modality columns being the "
             "auxiliary heads. Wall time: `fit` only.", ""]
    for table in tables:
        heads = table["rows"][0]["runs"][0]["views"] + ["joint"]
        lines += [f"## {table['setting']}", "",
                  "| method | joint | " + " | ".join(heads[:-1]) +
                  " | final weights (mean) | fit wall time (s) |",
                  "|---" * (len(heads) + 3) + "|"]
        for row in table["rows"]:
            runs = row["runs"]
            accs = {h: [r["test_accuracy"][h] for r in runs] for h in heads}
            weights = {h: np.mean([r["blend_weights"][h] for r in runs])
                       for h in heads}
            wall = np.mean([r["wall_time_s"] for r in runs])
            trained = trained_heads(row["method"], heads)
            lines.append(
                f"| {row['label']} | "
                + " | ".join(mean_std(accs[h]) if h in trained else "—"
                             for h in ["joint"] + heads[:-1])
                + " | " + ", ".join(f"{h} {w:.2f}" for h, w in weights.items())
                + f" | {wall:.1f} |")
        lines.append("")
    text = "\n".join(lines)
    print(text)
    out = FLAGS.out or os.path.join(HERE, "results", f"accuracy_{FLAGS.dataset}")
    write_results(out, text, tables)


if __name__ == "__main__":
    define_flags()
    app.run(main)
