"""G-Blend on UCI Multiple Features: uni-modal vs naive fusion vs offline and
online G-Blend, mean ± std over seeds, plus wall time of each method, all
measured side by side in one run.

Usage:
    python benchmarks/gblend_uci.py                # full table (~20 min, 2 cores)
    python benchmarks/gblend_uci.py --seeds=0 --epochs=5 --view_sets=fac,mor

Writes benchmarks/results/gblend_uci.{md,json}.
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
    flags.DEFINE_string("out", os.path.join(HERE, "results", "gblend_uci"),
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
                    seed=int(seed), verbose=0)
                result = experiment.run_experiment(config)
                runs.append({k: result[k] for k in
                             ("test_accuracy", "blend_weights", "wall_time_s")})
                print(views, method, seed, result["test_accuracy"],
                      f"{result['wall_time_s']:.1f}s", flush=True)
            rows.append({"views": list(views), "method": method, "runs": runs})

    lines = ["# G-Blend on UCI Multiple Features", "",
             f"Test accuracy (%) mean ± std over seeds {FLAGS.seeds}, "
             f"{FLAGS.epochs} epochs each, SGD(0.01, momentum 0.9), batch 32, "
             "MLP encoders (64 ReLU), concat fusion, 10% holdout from train. "
             "Online: warm-up 10, super-epoch 5. `unimodal` trains each view's "
             "network alone (shown per view); other methods report the joint "
             "head.", ""]
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
