"""Speed of the two methods, each measured side by side with its baseline in
one run (interleaved repeats, median):

1. OGM-GE train step vs Keras's own train step, on the same conv
   late-fusion model and data, graph (tf.function) and XLA;
2. online G-Blend's total `fit` time vs naive training (UCI fac+mor, the
   `scripts/train.py` defaults);
3. G-Blend estimation (Algorithm 1) with the uni-modal heads fused into one
   clone vs one clone per head, for k = 2, 3 and 6 UCI views.

Usage:
    python benchmarks/speed.py            # ~12 min on 2 CPU cores
    python benchmarks/speed.py --steps=5 --repeats=1 --epochs=3 --view_sets=fac,mor

Writes benchmarks/results/speed.{md,json}.
"""

import os
import sys
import time

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_gblend import cli  # noqa: E402
import keras_gblend as kg  # noqa: E402
from keras_gblend import experiment  # noqa: E402
from results_files import write_results  # noqa: E402

FLAGS = flags.FLAGS
HERE = os.path.dirname(os.path.abspath(__file__))


def define_flags():
    flags.DEFINE_integer("steps", 40, "OGM-GE: timed steps per measurement.",
                         lower_bound=1)
    flags.DEFINE_integer("repeats", 5, "OGM-GE and estimation: interleaved "
                         "repeats (median taken).", lower_bound=1)
    flags.DEFINE_integer("batch_size", 32, "Batch size.", lower_bound=1)
    flags.DEFINE_integer("epochs", 40, "G-Blend online vs naive: epochs.",
                         lower_bound=1)
    flags.DEFINE_integer("fit_repeats", 1, "G-Blend online vs naive: "
                         "interleaved repeats.", lower_bound=1)
    flags.DEFINE_integer("estimation_epochs", 5,
                         "Estimation: epochs each clone trains.", lower_bound=1)
    flags.DEFINE_multi_string(
        "view_sets", ["fac,mor", "fac,mor,pix", "fou,fac,kar,pix,zer,mor"],
        "Estimation: UCI view sets (k = number of views).")
    flags.DEFINE_multi_enum("sections", list(SECTIONS), list(SECTIONS),
                            "Which comparisons to run.")
    flags.DEFINE_string("out", os.path.join(HERE, "results", "speed"),
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


def build(modulation, jit_compile, blend_scope="all"):
    keras.utils.set_random_seed(0)
    model = kg.late_fusion_model(
        {"audio": conv_encoder((64, 64, 1), "audio_encoder"),
         "visual": conv_encoder((48, 48, 3), "visual_encoder")},
        num_classes=6, fusion="concat", modulation=modulation,
        blend_scope=blend_scope)
    model.compile(keras.optimizers.SGD(1e-3, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  loss_weights=[0.0, 0.0, 1.0], jit_compile=jit_compile)
    return model


class StepTimer(keras.callbacks.Callback):
    """Stamps the end of every training step."""

    def on_epoch_begin(self, epoch, logs=None):
        self.stamps = [time.perf_counter()]

    def on_train_batch_end(self, batch, logs=None):
        self.stamps.append(time.perf_counter())

    def durations(self):
        """Seconds of each step but the first (iterator start-up)."""
        return list(np.diff(self.stamps)[1:])


def ogm_step_times():
    """Rows of OGM / OGM-GE step time against Keras's train step."""
    n = FLAGS.batch_size * FLAGS.steps
    rng = np.random.default_rng(0)
    x = {"audio": rng.normal(size=(n, 64, 64, 1)).astype("float32"),
         "visual": rng.normal(size=(n, 48, 48, 3)).astype("float32")}
    y = rng.integers(0, 6, size=n).astype("int32")
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(
        FLAGS.batch_size).cache()
    # (modulation, blend scope); "all" with no modulation is Keras's own
    # train_step.
    variants = {
        "keras train_step": (None, "all"),
        "blend_scope=shared": (None, "shared"),
        "OGM (no noise)": (kg.OGMGE(alpha=0.5, noise=False), "all"),
        "OGM-GE": (kg.OGMGE(alpha=0.5, seed=0), "all"),
    }
    models = {}
    for jit in (False, True):
        for name, (modulation, scope) in variants.items():
            model = build(modulation, jit, scope)
            model.fit(dataset, epochs=1, verbose=0)  # trace + warm up
            models[(jit, name)] = model
    # Per-step durations (a batch callback stamps each step's end), pooled
    # over interleaved repeats: the median is robust to the scheduler
    # stalls that make whole-epoch times of a shared 2-core VM bimodal.
    durations = {key: [] for key in models}
    for _ in range(FLAGS.repeats):
        for key, model in models.items():
            timer = StepTimer()
            model.fit(dataset, epochs=1, verbose=0, callbacks=[timer])
            durations[key] += timer.durations()
    rows = []
    for jit in (False, True):
        base = np.median(durations[(jit, "keras train_step")])
        for name in variants:
            steps = durations[(jit, name)]
            rows.append({"mode": "XLA" if jit else "graph", "variant": name,
                         "ms_per_step": 1000 * float(np.median(steps)),
                         "ms_p10": 1000 * float(np.percentile(steps, 10)),
                         "ms_p90": 1000 * float(np.percentile(steps, 90)),
                         "ratio_to_keras": float(np.median(steps) / base)})
    lines = ["## OGM-GE step time vs Keras train_step", "",
             f"Conv late-fusion model (audio 64x64x1, visual 48x48x3, 3 conv "
             f"layers each), batch {FLAGS.batch_size}, SGD momentum. Median "
             f"(10th–90th percentile) of the step times of {FLAGS.repeats} "
             f"interleaved epochs of {FLAGS.steps} steps.",
             "", "| mode | variant | ms/step (p10–p90) | ratio to Keras |",
             "|---|---|---|---|"]
    lines += [f"| {r['mode']} | {r['variant']} | {r['ms_per_step']:.2f} "
              f"({r['ms_p10']:.1f}–{r['ms_p90']:.1f}) | "
              f"{r['ratio_to_keras']:.3f} |" for r in rows]
    return rows, lines


def online_vs_naive_times():
    """Rows of `fit` wall time: online G-Blend and naive training."""
    methods = ("naive", "gblend_online")
    times = {method: [] for method in methods}
    accuracy = {method: [] for method in methods}
    for _ in range(FLAGS.fit_repeats):
        for method in methods:
            result = experiment.run_experiment(experiment.ExperimentConfig(
                method=method, epochs=FLAGS.epochs,
                batch_size=FLAGS.batch_size, verbose=0))
            times[method].append(result["wall_time_s"])
            accuracy[method].append(result["test_accuracy"]["joint"])
    base = np.median(times["naive"])
    rows = [{"method": method, "fit_s": float(np.median(times[method])),
             "ratio_to_naive": float(np.median(times[method]) / base),
             "joint_test_accuracy": float(np.mean(accuracy[method]))}
            for method in methods]
    defaults = experiment.ExperimentConfig()
    lines = ["## Online G-Blend vs naive training", "",
             f"UCI fac+mor, {FLAGS.epochs} epochs, batch {FLAGS.batch_size}, "
             f"SGD; online G-Blend at the defaults: estimates at epoch "
             f"{defaults.warmup_epochs}, then after a first super-epoch of "
             f"{defaults.first_super_epoch} and every {defaults.super_epoch}, "
             "each training two clones for the super-epoch it estimates. "
             f"`fit` wall time, median of {FLAGS.fit_repeats} interleaved "
             "run(s).", "",
             "| method | fit (s) | ratio to naive | joint test accuracy |",
             "|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['fit_s']:.1f} | "
              f"{r['ratio_to_naive']:.2f} | {100 * r['joint_test_accuracy']:.1f} |"
              for r in rows]
    return rows, lines


def estimation_times():
    """Rows of estimation time, fused vs separate clones, per view set."""
    setups = []
    for view_set in FLAGS.view_sets:
        config = experiment.ExperimentConfig(
            views=tuple(view_set.split(",")), method="gblend_offline",
            batch_size=FLAGS.batch_size, verbose=0)
        config.validate()
        keras.utils.set_random_seed(0)
        train, holdout, _, encoders, num_classes = experiment.load_data(config)
        model = experiment.build_model(config, encoders(), num_classes)
        setups.append((config.views, model, train, holdout))

    def estimate(model, train, holdout, fused):
        start = time.perf_counter()
        result = kg.estimate_blend_weights(
            model, train, holdout, epochs=FLAGS.estimation_epochs,
            batch_size=FLAGS.batch_size, fused=fused, seed=0)
        return time.perf_counter() - start, result

    estimate(*setups[0][1:], fused=True)  # warm up TensorFlow
    times = {(i, fused): [] for i in range(len(setups)) for fused in (True, False)}
    weights = {}
    for _ in range(FLAGS.repeats):
        for i, (_, model, train, holdout) in enumerate(setups):
            for fused in (True, False):
                seconds, result = estimate(model, train, holdout, fused)
                times[(i, fused)].append(seconds)
                weights[(i, fused)] = result.weights
    rows = []
    for i, (views, _, _, _) in enumerate(setups):
        fused_s = float(np.median(times[(i, True)]))
        separate_s = float(np.median(times[(i, False)]))
        rows.append({
            "k": len(views), "views": list(views),
            "fused_s": fused_s, "fused_clones": 2,
            "separate_s": separate_s, "separate_clones": len(views) + 1,
            "speedup": separate_s / fused_s,
            "max_weight_difference": float(np.max(np.abs(
                weights[(i, True)] - weights[(i, False)]))),
        })
    lines = ["## G-Blend estimation: fused vs separate uni-modal clones", "",
             f"Algorithm 1 on UCI views, {FLAGS.estimation_epochs} epochs per "
             f"clone, batch {FLAGS.batch_size}, from the initial model. Fused: "
             "the k uni-modal heads train together in one clone, the joint "
             "head in a second; separate: one clone per head. Median of "
             f"{FLAGS.repeats} interleaved repeats; weight difference = max "
             "|w_fused − w_separate| (0 up to float rounding: same estimate).",
             "", "| k | views | fused (s, 2 clones) | separate (s, k+1 clones) "
             "| speed-up | max weight difference |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['k']} | {','.join(r['views'])} | {r['fused_s']:.1f} | "
              f"{r['separate_s']:.1f} | {r['speedup']:.2f}× | "
              f"{r['max_weight_difference']:.1e} |" for r in rows]
    return rows, lines


SECTIONS = {
    "ogm_step": ogm_step_times,
    "online_vs_naive": online_vs_naive_times,
    "estimation": estimation_times,
}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    for view_set in FLAGS.view_sets:
        unknown = set(view_set.split(",")) - set(kg.datasets.uci_multifeature.VIEWS)
        if unknown:
            raise app.UsageError(f"--view_sets: unknown views {sorted(unknown)}.")
    results, lines = {}, [
        "# Speed: each method side by side with its baseline", "",
        f"CPU, {os.cpu_count()} cores, TensorFlow {tf.__version__}, Keras "
        f"{keras.__version__}; all sections measured in one run of "
        "`benchmarks/speed.py`.", ""]
    for name in FLAGS.sections:
        rows, section = SECTIONS[name]()
        results[name] = rows
        lines += section + [""]
        print("\n".join(section), flush=True)
    write_results(FLAGS.out, "\n".join(lines), results)
    print(f"Wrote {FLAGS.out}.md and .json")


if __name__ == "__main__":
    define_flags()
    cli.run(main)
