"""Every method on UCI Multiple Features: uni-modal networks, naive fusion,
offline/online G-Blend, OGM, OGM-GE and G-Blend + OGM-GE; test accuracy mean
± std over seeds and the wall time of each method's `fit`, measured side by
side in one run. Same budget (epochs, optimizer, model) for every method;
the holdout is carved from the training split; the test split is evaluated
once per run.

Usage:
    python benchmarks/accuracy.py                  # full table (~35 min, 2 cores)
    python benchmarks/accuracy.py --seeds=0 --epochs=5 --view_sets=fac,mor

Writes benchmarks/results/accuracy_uci.{md,json}.
"""

import json
import os
import sys

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from keras_gblend import experiment  # noqa: E402

FLAGS = flags.FLAGS
HERE = os.path.dirname(os.path.abspath(__file__))


def define_flags():
    flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
    flags.DEFINE_integer("epochs", 40, "Epochs per run (same for all methods).")
    flags.DEFINE_multi_string(
        "view_sets", ["fac,mor", "fou,fac,kar,pix,zer,mor"],
        "View sets, each comma-separated.")
    flags.DEFINE_list("methods", list(experiment.METHODS), "Methods.")
    flags.DEFINE_float("alpha", 0.5, "OGM-GE alpha.")
    flags.DEFINE_string("out", os.path.join(HERE, "results", "accuracy_uci"),
                        "Output path without extension.")


def mean_std(values):
    return f"{100 * np.mean(values):.1f} ± {100 * np.std(values):.1f}"


def main(argv):
    del argv
    rows = []
    for view_set in FLAGS.view_sets:
        views = tuple(view_set.split(","))
        for method in FLAGS.methods:
            runs = []
            for seed in FLAGS.seeds:
                config = experiment.ExperimentConfig(
                    views=views, method=method, epochs=FLAGS.epochs,
                    alpha=FLAGS.alpha, seed=int(seed), verbose=0)
                result = experiment.run_experiment(config)
                runs.append({k: result[k] for k in
                             ("test_accuracy", "blend_weights", "wall_time_s")})
                print(views, method, seed, result["test_accuracy"],
                      f"{result['wall_time_s']:.1f}s", flush=True)
            rows.append({"views": list(views), "method": method, "runs": runs})

    lines = ["# Methods on UCI Multiple Features", "",
             f"Test accuracy (%) mean ± std over seeds {FLAGS.seeds}, "
             f"{FLAGS.epochs} epochs each, SGD(0.01, momentum 0.9), batch 32, "
             "MLP encoders (64 ReLU), concat fusion, 10% holdout from train. "
             "Online G-Blend: warm-up 10, super-epoch 5, estimation 5 epochs. "
             f"OGM-GE: alpha {FLAGS.alpha}, whole run. `unimodal` trains each "
             "view's network alone (shown per view); other methods report the "
             "joint head (their per-view columns are the auxiliary heads).",
             ""]
    for view_set in FLAGS.view_sets:
        views = view_set.split(",")
        lines += [f"## views {view_set}", "",
                  "| method | joint | " + " | ".join(views) +
                  " | final weights (mean) | fit wall time (s) |",
                  "|---" * (len(views) + 4) + "|"]
        for row in rows:
            if row["views"] != views:
                continue
            accs = {h: [r["test_accuracy"][h] for r in row["runs"]]
                    for h in views + ["joint"]}
            weights = {h: np.mean([r["blend_weights"][h] for r in row["runs"]])
                       for h in views + ["joint"]}
            wall = np.mean([r["wall_time_s"] for r in row["runs"]])
            joint = ("—" if row["method"] == "unimodal"
                     else mean_std(accs["joint"]))
            lines.append(
                f"| {row['method']} | {joint} | "
                + " | ".join(mean_std(accs[v]) for v in views)
                + " | " + ", ".join(f"{h} {w:.2f}" for h, w in weights.items())
                + f" | {wall:.1f} |")
        lines.append("")
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
