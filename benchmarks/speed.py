"""Speed of the two methods, each measured side by side with its baseline in
one run (interleaved repeats, median):

1. OGM-GE train step vs Keras's own train step, on the same conv
   late-fusion model and data, graph (tf.function) and XLA, on a small conv
   model and on two ResNet-18 encoders (the OGM-GE reference's sizes);
2. online G-Blend's total `fit` time vs naive training (UCI fac+mor at the
   `scripts/train.py` defaults, and AV-digits with `--av_digits_dir`), on
   all the training data and at the default `estimation_fraction`, with
   where the estimates' time goes;
3. G-Blend estimation (Algorithm 1) with the uni-modal heads fused into one
   clone vs one clone per head, for k = 2, 3 and 6 UCI views.

Usage:
    python benchmarks/speed.py --av_digits_dir=/tmp/avd  # ~25 min, 2 cores
    python benchmarks/speed.py --steps=5 --repeats=1 --epochs=3 --view_sets=fac,mor

Writes benchmarks/results/speed/speed.{md,json}.
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

from keras_gblend.experiment import cli  # noqa: E402
import keras_gblend as kg  # noqa: E402
from keras_gblend.gblend import blend_estimate  # noqa: E402
from keras_gblend.experiment import build as experiment_build  # noqa: E402
from keras_gblend.experiment import config as experiment_config, run  # noqa: E402
import ogm_reference  # noqa: E402
from results_files import device_description, write_results  # noqa: E402

FLAGS = flags.FLAGS
HERE = os.path.dirname(os.path.abspath(__file__))


def define_flags():
    flags.DEFINE_integer("steps", 40, "OGM-GE: timed steps per measurement.",
                         lower_bound=1)
    flags.DEFINE_integer("repeats", 5, "OGM-GE and estimation: interleaved "
                         "repeats (median taken).", lower_bound=1)
    flags.DEFINE_integer("batch_size", 32, "Batch size.", lower_bound=1)
    flags.DEFINE_integer("resnet_steps", 8, "OGM-GE on ResNet-18: timed "
                         "steps per measurement.", lower_bound=1)
    flags.DEFINE_integer("resnet_batch_size", 16, "OGM-GE on ResNet-18: "
                         "batch size.", lower_bound=1)
    flags.DEFINE_string("ogm_reference_dir", None,
                        "OGM-GE on ResNet-18: a checkout of the public "
                        "reference (GeWu-Lab/OGM-GE_CVPR2022) whose own "
                        "training step is timed on the same shapes in the "
                        "same run (needs torch).")
    flags.DEFINE_integer("epochs", 40, "G-Blend online vs naive: epochs.",
                         lower_bound=1)
    flags.DEFINE_integer("fit_repeats", 3, "G-Blend online vs naive on "
                         "UCI: interleaved repeats (median taken).",
                         lower_bound=1)
    flags.DEFINE_string("av_digits_dir", None,
                        "G-Blend online vs naive: an AV-digits folder "
                        "(scripts/make_av_digits.py --n 2000) to compare on "
                        "as well.")
    flags.DEFINE_integer("av_digits_epochs", 20,
                         "G-Blend online vs naive: AV-digits epochs.",
                         lower_bound=1)
    flags.DEFINE_integer("av_digits_fit_repeats", 1,
                         "G-Blend online vs naive on AV-digits: interleaved "
                         "repeats.", lower_bound=1)
    flags.DEFINE_integer("estimation_epochs", 5,
                         "Estimation: epochs each clone trains.", lower_bound=1)
    flags.DEFINE_multi_string(
        "view_sets", ["fac,mor", "fac,mor,pix", "fou,fac,kar,pix,zer,mor"],
        "Estimation: UCI view sets (k = number of views).")
    flags.DEFINE_multi_enum("sections", list(SECTIONS), list(SECTIONS),
                            "Which comparisons to run.")
    flags.DEFINE_multi_enum("modes", list(MODES), list(MODES),
                            "Step times: graph (tf.function) and/or XLA.")
    flags.DEFINE_multi_enum("precisions", ["float32"], PRECISIONS,
                            "Step times: Keras dtype policies to time.")
    flags.DEFINE_string("out", os.path.join(HERE, "results", "speed", "speed"),
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


def small_encoders():
    return {"audio": conv_encoder((64, 64, 1), "audio_encoder"),
            "visual": conv_encoder((48, 48, 3), "visual_encoder")}


def resnet18_encoders():
    """The OGM-GE reference's sizes: audio spectrogram 128x94, 3 visual
    frames of 112x112, a ResNet-18 each (22.4 M parameters in all)."""
    return {"audio": kg.encoders.resnet18((128, 94, 1), name="audio_encoder"),
            "visual": kg.encoders.resnet18_frames((3, 112, 112, 3))}


def build(encoders, modulation, jit_compile, blend_scope="all"):
    keras.utils.set_random_seed(0)
    model = kg.late_fusion_model(
        encoders(), num_classes=6, fusion="concat", modulation=modulation,
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


MODES = {"graph": False, "xla": True}
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def step_times(encoders, shapes, batch_size, steps, repeats, variants):
    """Median step time of each variant `{name: (modulation, blend scope)}`
    in each of `--modes` and `--precisions`, on random data of `shapes`;
    rows with the ratio to Keras's own train step (the first variant) in
    the same mode and precision."""
    n = batch_size * steps
    rng = np.random.default_rng(0)
    x = {m: rng.normal(size=(n,) + shape).astype("float32")
         for m, shape in shapes.items()}
    y = rng.integers(0, 6, size=n).astype("int32")
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(
        batch_size).cache()
    settings = [(mode, precision) for precision in FLAGS.precisions
                for mode in FLAGS.modes]
    models = {}
    policy = keras.mixed_precision.global_policy().name
    try:
        for mode, precision in settings:
            keras.mixed_precision.set_global_policy(precision)
            for name, (modulation, scope) in variants.items():
                model = build(encoders, modulation, MODES[mode], scope)
                model.fit(dataset, epochs=1, verbose=0)  # trace + warm up
                models[(mode, precision, name)] = model
    finally:
        keras.mixed_precision.set_global_policy(policy)
    # Per-step durations (a batch callback stamps each step's end), pooled
    # over interleaved repeats: the median is robust to the scheduler
    # stalls that make whole-epoch times of a shared 2-core VM bimodal.
    durations = {key: [] for key in models}
    for _ in range(repeats):
        for key, model in models.items():
            timer = StepTimer()
            model.fit(dataset, epochs=1, verbose=0, callbacks=[timer])
            durations[key] += timer.durations()
    rows = []
    first = next(iter(variants))
    for mode, precision in settings:
        base = np.median(durations[(mode, precision, first)])
        for name in variants:
            times = durations[(mode, precision, name)]
            rows.append({"mode": "XLA" if MODES[mode] else "graph",
                         "precision": precision, "variant": name,
                         "ms_per_step": 1000 * float(np.median(times)),
                         "ms_p10": 1000 * float(np.percentile(times, 10)),
                         "ms_p90": 1000 * float(np.percentile(times, 90)),
                         "ratio_to_keras": float(np.median(times) / base)})
    return rows


def step_lines(title, rows):
    lines = [title, "", "| mode | precision | variant | ms/step (p10–p90) "
             "| ratio to Keras |", "|---|---|---|---|---|"]
    lines += [f"| {r['mode']} | {r['precision']} | {r['variant']} | "
              f"{r['ms_per_step']:.2f} ({r['ms_p10']:.1f}–{r['ms_p90']:.1f})"
              f" | {r['ratio_to_keras']:.3f} |" for r in rows]
    return lines


def ogm_step_times():
    """Rows of OGM / OGM-GE step time against Keras's train step."""
    # (modulation, blend scope); "all" with no modulation is Keras's own
    # train_step.
    variants = {
        "keras train_step": (None, "all"),
        "blend_scope=shared": (None, "shared"),
        "OGM (no noise)": (kg.OGMGE(alpha=0.5, noise=False), "all"),
        "OGM-GE": (kg.OGMGE(alpha=0.5, seed=0), "all"),
    }
    rows = step_times(small_encoders, {"audio": (64, 64, 1),
                                       "visual": (48, 48, 3)},
                      FLAGS.batch_size, FLAGS.steps, FLAGS.repeats, variants)
    return rows, step_lines(
        "## OGM-GE step time vs Keras train_step\n\n"
        f"Conv late-fusion model (audio 64x64x1, visual 48x48x3, 3 conv "
        f"layers each), batch {FLAGS.batch_size}, SGD momentum. Median "
        f"(10th–90th percentile) of the step times of {FLAGS.repeats} "
        f"interleaved epochs of {FLAGS.steps} steps.", rows)


def ogm_step_resnet18_times():
    """The same comparison on the OGM-GE reference's model size."""
    variants = {
        "keras train_step": (None, "all"),
        "OGM (no noise)": (kg.OGMGE(alpha=0.5, noise=False, params="conv"),
                           "all"),
        "OGM-GE": (kg.OGMGE(alpha=0.5, seed=0, params="conv"), "all"),
    }
    rows = step_times(resnet18_encoders, {"audio": (128, 94, 1),
                                          "visual": (3, 112, 112, 3)},
                      FLAGS.resnet_batch_size, FLAGS.resnet_steps,
                      FLAGS.repeats, variants)
    lines = step_lines(
        "## OGM-GE step time vs Keras train_step, ResNet-18\n\n"
        "Two ResNet-18 encoders (22.4 M parameters; audio spectrogram "
        "128x94x1, 3 visual frames of 112x112x3, the OGM-GE reference's "
        f"sizes), concat fusion, batch {FLAGS.resnet_batch_size}, SGD "
        "momentum, `params='conv'` (the reference's modulated set). Median "
        f"(10th–90th percentile) of the step times of {FLAGS.repeats} "
        f"interleaved epochs of {FLAGS.resnet_steps} steps.", rows)
    reference_rows, reference_text = reference_lines(rows)
    return rows + reference_rows, lines + [""] + reference_text


def reference_lines(keras_rows):
    """Rows and lines of the PyTorch reference's own step on the ResNet-18
    shapes, with keras_gblend's graph step time as a ratio of it; or a line
    saying why it was not timed."""
    if not FLAGS.ogm_reference_dir:
        return [], ["The PyTorch reference was not timed: pass "
                    "`--ogm_reference_dir=<checkout of GeWu-Lab/"
                    "OGM-GE_CVPR2022>` with torch installed."]
    try:
        rows = ogm_reference.reference_step_times(
            FLAGS.ogm_reference_dir, FLAGS.resnet_batch_size,
            FLAGS.resnet_steps, FLAGS.repeats, alpha=0.5)
    except ogm_reference.ReferenceUnavailable as error:
        return [], [f"The PyTorch reference was not timed: {error}"]
    import torch
    graph = {r["variant"]: r["ms_per_step"] for r in keras_rows
             if r["mode"] == "graph" and r["precision"] == "float32"}
    keras_names = dict(zip(ogm_reference.VARIANTS.values(), graph))
    lines = ["### The reference's own step (PyTorch "
             f"{torch.__version__}, {torch.get_num_threads()} threads)", "",
             "Its `main.train_epoch` on its `AVClassifier` (concat), the same "
             "shapes and batch, SGD momentum; median (10th–90th percentile) "
             f"of {FLAGS.repeats} interleaved epochs of "
             f"{FLAGS.resnet_steps} steps, timed after the Keras rows.", "",
             "| variant | reference ms/step (p10–p90) | ratio to its plain "
             "step | keras_gblend graph ms/step | keras_gblend / reference |",
             "|---|---|---|---|---|"]
    for row in rows:
        ours = graph[keras_names[row["variant"]]]
        row.update(mode="reference", keras_graph_ms=ours,
                   keras_to_reference=ours / row["ms_per_step"])
        lines.append(f"| {row['variant']} | {row['ms_per_step']:.0f} "
                     f"({row['ms_p10']:.0f}–{row['ms_p90']:.0f}) | "
                     f"{row['ratio_to_plain']:.3f} | {ours:.0f} | "
                     f"{row['keras_to_reference']:.2f}× |")
    return rows, lines


def online_settings():
    """(title, repeats, ExperimentConfig keyword arguments) of each
    online-vs-naive comparison: UCI fac+mor at the train.py defaults, and
    AV-digits (2,000 clips) at the accuracy benchmark's settings."""
    settings = [("UCI fac+mor", FLAGS.fit_repeats, {"epochs": FLAGS.epochs})]
    if FLAGS.av_digits_dir:
        settings.append((
            f"AV-digits ({av_digits_size(FLAGS.av_digits_dir)} clips)",
            FLAGS.av_digits_fit_repeats,
            {"dataset": "av_digits", "data_dir": FLAGS.av_digits_dir,
             "epochs": FLAGS.av_digits_epochs, "learning_rate": 0.05,
             "lr_schedule": "cosine"}))
    return settings


def av_digits_size(data_dir):
    with open(os.path.join(data_dir, "meta.json")) as f:
        return json.load(f)["n"]


def online_vs_naive_times():
    """Rows of `fit` wall time: naive training, online G-Blend on all the
    training data and at the default `estimation_fraction`, with where
    the estimates' time went."""
    default = experiment_config.ExperimentConfig().resolved().estimation_fraction
    variants = [("naive", 1.0), ("gblend_online", 1.0)]
    if default != 1.0:
        variants.append(("gblend_online", default))
    rows = []
    for title, repeats, kwargs in online_settings():
        runs = {variant: [] for variant in variants}
        for _ in range(repeats):
            for method, fraction in variants:
                runs[(method, fraction)].append(run.run_experiment(
                    experiment_config.ExperimentConfig(
                        method=method, estimation_fraction=fraction,
                        batch_size=FLAGS.batch_size, verbose=0, **kwargs)))
        base = np.median([r["wall_time_s"] for r in runs[variants[0]]])
        for (method, fraction), results in runs.items():
            fit_s = float(np.median([r["wall_time_s"] for r in results]))
            phases = {
                phase: float(np.median([
                    sum(t[phase] for t in r["estimation_timings"])
                    for r in results]))
                for phase in ("subset",) + blend_estimate.SECONDS}
            rows.append({
                "setting": title, "method": method, "repeats": repeats,
                "estimation_fraction": fraction if method != "naive" else None,
                "estimates": len(results[0]["estimation_timings"]),
                "fit_s": fit_s, "ratio_to_naive": fit_s / base,
                "estimation_s": sum(phases.values()), **{
                    f"{phase}_s": value for phase, value in phases.items()},
                "joint_test_accuracy": float(np.mean(
                    [r["test_accuracy"]["joint"] for r in results])),
            })
            print(rows[-1], flush=True)
    defaults = experiment_config.ExperimentConfig().resolved()
    lines = ["## Online G-Blend vs naive training", "",
             f"Online G-Blend at the paper's schedule (estimates at epoch "
             f"{defaults.warmup_epochs}, then after a first super-epoch of "
             f"{defaults.first_super_epoch} and every {defaults.super_epoch}; "
             "each estimate trains two clones, uni-modal heads fused and the "
             f"joint head, for n = {defaults.super_epoch} epochs), on all the "
             f"training data and on the default estimation fraction "
             f"({default:g}). UCI fac+mor: {FLAGS.epochs} epochs, SGD 0.01; "
             f"AV-digits: {FLAGS.av_digits_epochs} epochs, SGD 0.05 cosine; "
             f"batch {FLAGS.batch_size}. `fit` wall time (includes the "
             "estimates and a validation pass per epoch), median of "
             f"{FLAGS.fit_repeats} interleaved runs on UCI and "
             f"{FLAGS.av_digits_fit_repeats} on AV-digits; the estimates' time "
             "per phase: drawing the subset, building or reloading the "
             "clones, training them, the per-example measurements on V and "
             "T', the bootstrap and blend.", "",
             "| setting | method | fraction | fit (s) | ratio to naive | "
             "estimates | estimation (s) | subset | clones | training | "
             "measuring | bootstrap | joint test accuracy |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        fraction = ("" if r["estimation_fraction"] is None
                    else f"{r['estimation_fraction']:g}")
        lines.append(
            f"| {r['setting']} | {r['method']} | {fraction} | "
            f"{r['fit_s']:.1f} | {r['ratio_to_naive']:.2f} | "
            f"{r['estimates']} | {r['estimation_s']:.1f} | "
            + " | ".join(f"{r[f'{p}_s']:.2f}" for p in
                         ("subset",) + blend_estimate.SECONDS)
            + f" | {100 * r['joint_test_accuracy']:.1f} |")
    return rows, lines


def estimation_times():
    """Rows of estimation time, fused vs separate clones, per view set."""
    setups = []
    for view_set in FLAGS.view_sets:
        config = experiment_config.ExperimentConfig(
            views=tuple(view_set.split(",")), method="gblend_offline",
            batch_size=FLAGS.batch_size, verbose=0)
        config.validate()
        keras.utils.set_random_seed(0)
        train, holdout, _, encoders, num_classes = experiment_build.load_data(config)
        model = experiment_build.build_model(config, encoders(), num_classes)
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
    "ogm_step_resnet18": ogm_step_resnet18_times,
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
    if FLAGS.av_digits_dir and not os.path.isfile(
            os.path.join(FLAGS.av_digits_dir, "meta.json")):
        raise app.UsageError(
            f"--av_digits_dir: {FLAGS.av_digits_dir} holds no AV-digits data; "
            "make it with scripts/make_av_digits.py --out DIR --n 2000.")
    results, lines = {}, [
        "# Speed: each method side by side with its baseline", "",
        f"{device_description()}, TensorFlow {tf.__version__}, Keras "
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
