"""Plants known mistakes in the core algorithms, one at a time, in a copy of
the repository, and runs the tests named to catch each. Every planted bug
must make its tests fail; the real code must pass them.

Each bug is a one-line source edit (exact text, so the script fails loudly
if the code it targets has moved). The list is the one of the issue "Tests
that catch the algorithms' mistakes", plus later additions.

Usage:
    python benchmarks/planted_bugs.py            # ~5 min on 2 CPU cores
    python benchmarks/planted_bugs.py --only=clone_trains_every_head

Writes benchmarks/results/test_quality/planted_bugs.{md,json}.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results_files import write_results  # noqa: E402

FLAGS = flags.FLAGS
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# name: (description, file, original text, planted text, tests)
BUGS = {
    "clone_trains_every_head": (
        "estimation clones train every head, not only the head(s) under "
        "estimation",
        "keras_gblend/gblend/clones.py",
        "mask = {h: float(h in train_heads) for h in model.head_names}",
        "mask = {h: 1.0 for h in model.head_names}",
        ["tests/gblend/test_clones.py::"
         "test_each_clone_trains_only_its_heads_the_others_stay_frozen"]),
    "train_subset_is_holdout": (
        "the train subset T' replaced by the holdout V (ΔO ≡ 0)",
        "keras_gblend/gblend/blend_estimator.py",
        '        self._train_subset = measurements.train_subset_dataset(\n',
        '        self._train_subset = self._holdout if True else measurements.train_subset_dataset(\n',
        ["tests/gblend/test_measurements.py::"
         "test_estimate_measures_train_start_on_the_train_subset"]),
    "clones_keep_modulation": (
        "estimation clones keep OGM-GE modulation",
        "keras_gblend/gblend/clones.py",
        '    config["modulation"] = None\n',
        "",
        ["tests/gblend/test_clones.py::"
         "test_estimation_clones_have_no_modulation"]),
    "noise_std_of_modulated_gradient": (
        "GE noise std taken from the modulated gradient",
        "keras_gblend/ogm/gradient_modulator.py",
        "updates, reference, groups, model.modulation_seed_generator,",
        "updates, updates, groups, model.modulation_seed_generator,",
        ["tests/ogm/test_gradient_modulator.py::"
         "test_noise_std_is_that_of_the_unmodulated_gradient"]),
    "sample_weight_dropped": (
        "sample_weight dropped from the per-head losses",
        "keras_gblend/model/head_losses.py",
        '_weight_of(sample_weight, head)), "float32")',
        'None), "float32")',
        ["tests/model/test_head_losses.py::"
         "test_sample_weight_scales_each_head_loss_as_keras_does"]),
    "trackers_unweighted_by_batch": (
        "per-head loss trackers not weighted by batch size",
        "keras_gblend/model/blended_model.py",
        'head_losses_lib.unscale_loss_for_replicas(value),\n                sample_weight=batch_size)',
        'head_losses_lib.unscale_loss_for_replicas(value))',
        ["tests/model/test_blended_model.py::"
         "test_head_losses_average_over_examples_with_a_partial_last_batch"]),
    "validation_split_rows_estimated": (
        "fit(validation_split=...) rows used by the G-Blend estimation",
        "keras_gblend/model/fit_data.py",
        '        if self.validation_split:',
        '        if False:',
        ["tests/model/test_fit_data.py::"
         "test_validation_split_rows_never_reach_estimation"]),
    "same_seed_every_estimate": (
        "the same seed at every estimation",
        "keras_gblend/gblend/gblend_callback.py",
        "seed=self.seed + epoch,",
        "seed=self.seed,",
        ["tests/gblend/test_gblend_callback.py::"
         "test_every_estimate_draws_its_own_shuffle_and_bootstrap"]),
    "checkpoint_no_initial_epoch": (
        "ResumableCheckpoint's initial-epoch hand-off removed",
        "keras_gblend/callbacks/resumable_checkpoint.py",
        "            self.model._initial_epoch = int(self._epoch.numpy())\n",
        "",
        ["tests/callbacks/test_resumable_checkpoint.py::"
         "test_resumable_checkpoint_resumes_plain_fit_at_the_next_epoch"]),
    "delta_o_sign_flipped": (
        "ΔO sign flipped inside estimation",
        "keras_gblend/gblend/blend_estimate.py",
        "    delta_o = ogr.delta_overfitting(*means)",
        "    delta_o = -ogr.delta_overfitting(*means)",
        ["tests/gblend/test_blend_estimator.py::"
         "test_estimate_figures_are_ogr_functions_of_its_measured_losses"]),
    "noise_on_every_replica": (
        "GE noise added on every replica",
        "keras_gblend/ogm/gradient_modulator.py",
        'noise_scale = ops.cast(active, "float32") * is_first_replica()',
        'noise_scale = ops.cast(active, "float32")',
        ["tests/model/test_distributed.py::"
         "test_mirrored_strategy_matches_single_device"]),
    "no_loss_unscaling_across_replicas": (
        "per-head losses not un-scaled across replicas",
        "keras_gblend/model/blended_model.py",
        'head_losses_lib.unscale_loss_for_replicas(value),\n                sample_weight=batch_size)',
        'value,\n                sample_weight=batch_size)',
        ["tests/model/test_distributed.py::"
         "test_mirrored_strategy_matches_single_device"]),
    "negative_delta_o_floored": (
        "a negative ΔO floored (the old rule) instead of squared",
        "keras_gblend/gblend/ogr.py",
        "spread = np.maximum(np.abs(delta_o), min_delta_o)",
        "spread = np.maximum(delta_o, min_delta_o)",
        ["tests/gblend/test_ogr.py::"
         "test_negative_delta_o_enters_squared_as_in_the_paper"]),
    "noise_ignored": (
        "ΔG counted without its noise",
        "keras_gblend/gblend/ogr.py",
        "clear &= delta_g > noise_z * np.asarray(delta_g_se, dtype=np.float64)",
        "clear &= True",
        ["tests/gblend/test_gblend_callback.py::"
         "test_gains_all_within_noise_keep_the_previous_weights"]),
    "shared_scope_blends_heads": (
        "blend_scope='shared' gives the heads' own variables the blended "
        "gradient",
        "keras_gblend/model/blended_model.py",
        "            for i, gradient in zip(rows, own):\n"
        "                gradients[i] = gradient\n",
        "",
        ["tests/model/test_blended_model.py::"
         "test_shared_scope_gradients_match_a_hand_computation"]),
    "estimation_fraction_ignored": (
        "estimation clones train on all the training data whatever "
        "estimation_fraction says",
        "keras_gblend/gblend/blend_estimator.py",
        'train, self.estimation_fraction, self.seed, self.model.num_classes',
        'train, 1.0, self.seed, self.model.num_classes',
        ["tests/gblend/test_blend_estimator.py::test_clones_train_only_on_the_"
         "subset_the_same_at_every_estimate_and_resume"]),
    "kept_clone_optimizer_not_reset": (
        "a kept clone starts its next estimate with the optimizer state "
        "of the last one",
        "keras_gblend/gblend/blend_estimator.py",
        "            variable.assign(value)\n",
        "            pass\n",
        ["tests/gblend/test_blend_estimator.py::"
         "test_kept_clones_estimate_exactly_as_fresh_clones"]),
    "kept_clone_schedule_not_continued": (
        "a kept clone's learning-rate schedule does not continue from the "
        "model's current step",
        "keras_gblend/gblend/blend_estimator.py",
        '        clones.continue_learning_rate(model.optimizer, clone.optimizer)\n',
        '',
        ["tests/gblend/test_blend_estimator.py::"
         "test_kept_clones_estimate_exactly_as_fresh_clones"]),
    "clear_gain_locked_out": (
        "re-estimation without the floor: unclear heads holding all the "
        "weight lock a clearly generalizing head out",
        "keras_gblend/gblend/ogr.py",
        '    if share <= _LOCKED_OUT:\n',
        '    if False:\n',
        ["tests/gblend/test_ogr.py::"
         "test_a_clear_gain_is_not_locked_out_by_heads_within_noise"]),
    "uncertainty_weight_sign": (
        "learned loss weights exp(+s) instead of exp(-s)",
        "keras_gblend/model/blended_model.py",
        "ops.exp(-log_variances) * stacked + log_variances",
        "ops.exp(log_variances) * stacked + log_variances",
        ["tests/model/test_blended_model.py::"
         "test_uncertainty_weighting_matches_kendall_by_hand"]),
    "multi_label_score_not_averaged": (
        "multi-label OGM score summed over true labels, not averaged",
        "keras_gblend/ogm/transforms.py",
        "        return ops.sum(true_mass / count, axis=0)",
        "        return ops.sum(true_mass, axis=0)",
        ["tests/ogm/test_transforms.py::"
         "test_ogm_score_is_the_mean_sigmoid_probability_of_true_labels"]),
    "premise_judged_on_the_slowed_modality": (
        "OGM premise check compares the slowed modality with itself",
        "keras_gblend/ogm/modality_imbalance.py",
        "    others = [m for m in info if m != slowed]",
        "    others = [m for m in info if m == slowed]",
        ["tests/ogm/test_modality_imbalance.py::test_diagnosis_by_hand"]),
    "joint_weight_floor_ignored": (
        "the joint head's weight floor not applied after an estimate",
        "keras_gblend/gblend/gblend_callback.py",
        "weights, index=-1, floor=self.joint_weight_floor))",
        "weights, index=-1, floor=0.0))",
        ["tests/gblend/test_gblend_callback.py::"
         "test_joint_weight_floor_lifts_the_answer_head_after_the_estimate"]),
    "weight_floor_rescales_wrong_heads": (
        "the floor takes its share from the floored head, not the others",
        "keras_gblend/gblend/ogr.py",
        "    others[index] = False\n",
        "",
        ["tests/gblend/test_ogr.py::"
         "test_weight_floor_raises_the_head_and_keeps_the_others_proportions"]),
}


def define_flags():
    flags.DEFINE_list("only", [], "Names of the bugs to plant (default all).")
    flags.DEFINE_string("out", os.path.join(HERE, "results", "test_quality",
                                             "planted_bugs"),
                        "Output path without extension.")


def run_tests(root, tests):
    """(passed, seconds, tail of the output) of pytest on `tests` in `root`."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
         *tests],
        cwd=root, capture_output=True, text=True, timeout=1200,
        env={**os.environ, "PYTHONPATH": root, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return (result.returncode == 0, time.perf_counter() - start,
            (result.stdout + result.stderr)[-600:])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    unknown = sorted(set(FLAGS.only) - set(BUGS))
    if unknown:
        raise app.UsageError(f"--only: unknown bugs {unknown}; known: "
                             f"{sorted(BUGS)}.")
    names = FLAGS.only or list(BUGS)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        copy = os.path.join(scratch, "repo")
        shutil.copytree(REPO, copy, ignore=shutil.ignore_patterns(
            ".git", "runs", "__pycache__", "*.egg-info", "results"))
        for name in names:
            description, path, original, planted, tests = BUGS[name]
            source = os.path.join(copy, path)
            with open(source) as f:
                text = f.read()
            if text.count(original) != 1:
                raise RuntimeError(
                    f"{name}: {path} holds {text.count(original)} copies of "
                    f"the text to mutate: {original!r}.")
            clean, _, clean_log = run_tests(copy, tests)
            with open(source, "w") as f:
                f.write(text.replace(original, planted))
            try:
                survived, seconds, log = run_tests(copy, tests)
            finally:
                with open(source, "w") as f:
                    f.write(text)
            rows.append({"bug": name, "description": description,
                         "tests": tests, "passes_on_real_code": clean,
                         "caught": not survived, "seconds": seconds,
                         "log": clean_log if not clean else log})
            print(f"{name}: real code {'passes' if clean else 'FAILS'}, "
                  f"bug {'caught' if not survived else 'NOT caught'} "
                  f"({seconds:.0f} s)", flush=True)
    lines = ["# Planted bugs", "",
             "Each bug planted alone in a copy of the repository; the named "
             "tests must pass on the real code and fail on the bug "
             "(`python benchmarks/planted_bugs.py`).", "",
             "| bug | test(s) | real code passes | bug caught |",
             "|---|---|---|---|"]
    lines += [f"| {r['description']} | "
              + ", ".join(f"`{t.split('::')[-1]}`" for t in r["tests"])
              + f" | {'yes' if r['passes_on_real_code'] else 'NO'} | "
              f"{'yes' if r['caught'] else 'NO'} |" for r in rows]
    caught = sum(r["caught"] and r["passes_on_real_code"] for r in rows)
    lines += ["", f"{caught} of {len(rows)} planted bugs caught."]
    print("\n".join(lines))
    write_results(FLAGS.out, "\n".join(lines), rows)
    if caught < len(rows):
        sys.exit(1)


if __name__ == "__main__":
    define_flags()
    app.run(main)
