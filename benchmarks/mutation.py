"""Mutation testing of the core modules with mutmut (outside CI).

mutmut (https://github.com/boxed/mutmut, maintained, pytest-native) makes
small changes to the code, one at a time (an operator, a constant, an
argument, a returned value), and runs the tests that exercise the changed
function; a change the tests do not notice "survives". Chosen over
cosmic-ray (needs a session database and a separate worker per mutant,
slow with TensorFlow's import) and pytest-gremlins (young): mutmut 3 forks
each mutant from a warm process (`process_isolation=forkserver`, needed
with TensorFlow) and runs only the covering tests.

This script copies the repository to a work folder, writes mutmut's
settings for the requested modules, runs it with a time budget, and
writes the report: mutants generated, killed, survived, and each survivor
either listed as a gap or matched to a one-line reason it is equivalent
(changes no behaviour), kept in `benchmarks/mutation_equivalents.json`.

Not mutated (`do_not_mutate_patterns`): the text of error messages and
warnings (lines that are only a string literal), and `print`/logging
lines; tests check messages by the names and values they carry, and a
reworded message is not an algorithmic mistake.

Usage (needs `pip install -e ".[mutation]"`):
    python benchmarks/mutation.py                       # every core module
    python benchmarks/mutation.py --modules=gblend.ogr,inputs.holdout \
        --budget_minutes=30
    python benchmarks/mutation.py --modules=gblend.ogr,gblend.measurement_noise \
        --test_files=gblend/test_ogr.py,gblend/test_measurement_noise.py \
        --children=1

A run stopped by its budget resumes where it stopped when started again
with the same `--workdir` (mutmut keeps each mutant's result there; the
sources and tests are refreshed, and mutmut re-checks what they changed).

Writes benchmarks/results/test_quality/mutation.{md,json}.
"""

import ast
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results_files import write_results  # noqa: E402

FLAGS = flags.FLAGS
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
EQUIVALENTS = os.path.join(HERE, "mutation_equivalents.json")

# Modules as dotted paths under keras_gblend (the mutant names' prefixes).
CORE_MODULES = (
    "gblend.ogr", "gblend.measurement_noise", "gblend.blend_estimate",
    "gblend.blend_estimator", "gblend.clones", "gblend.measurements",
    "gblend.gblend_callback", "gblend.schedule", "gblend.stratified_subset",
    "inputs.holdout", "inputs.input_data", "ogm.ogmge", "ogm.transforms",
    "ogm.gradient_modulator", "ogm.modality_imbalance",
    "ogm.modality_imbalance_monitor", "model.blended_model",
    "model.head_losses", "model.fit_data", "model.blend_state",
    "callbacks.resumable_checkpoint", "evaluation.answer",
    "evaluation.multilabel")
# Fast, in-process tests: mutmut maps each function to the ones that run it.
# Paths under tests/.
TEST_FILES = ("gblend/test_ogr.py", "gblend/test_measurement_noise.py",
              "gblend/test_blend_estimator.py", "gblend/test_clones.py",
              "gblend/test_measurements.py", "gblend/test_gblend_callback.py",
              "gblend/test_ogr_monitor.py", "gblend/test_stratified_subset.py",
              "inputs/test_holdout.py", "inputs/test_input_checks.py",
              "model/test_blended_model.py", "model/test_fit_data.py",
              "model/test_head_losses.py",
              "ogm/test_gradient_modulator.py", "ogm/test_transforms.py",
              "ogm/test_ogmge.py", "ogm/test_modality_imbalance.py",
              "ogm/test_modality_imbalance_monitor.py",
              "callbacks/test_resumable_checkpoint.py",
              "callbacks/test_pretrain_finetune.py",
              "evaluation/test_answer.py", "evaluation/test_multilabel.py",
              "datasets/test_uci_multilabel.py",
              "networks/test_late_fusion.py", "networks/test_fusion_layers.py",
              "experiment/test_methods.py", "experiment/test_run.py")
DO_NOT_MUTATE = (
    r"^\s*(?:[rRfF]{0,2})[\"'].*[\"']\)?,?\s*$",  # message text lines
    r"^\s*(?:print|logging\.\w+|warnings\.warn)\(",
)


def define_flags():
    flags.DEFINE_list("modules", list(CORE_MODULES),
                      "keras_gblend modules to mutate.")
    flags.DEFINE_list("test_files", list(TEST_FILES),
                      "Test files mutmut may run, as paths under tests/ "
                      "(fewer: faster, but a mutant only they miss counts "
                      "as survived).")
    flags.DEFINE_integer("budget_minutes", 240, "Time budget of mutmut run.",
                         lower_bound=1)
    flags.DEFINE_integer("children", 2, "Parallel mutant workers.",
                         lower_bound=1)
    flags.DEFINE_string("workdir", os.path.join(REPO, "runs", "mutation"),
                        "Work folder (kept between runs, so that a run "
                        "resumes).")
    flags.DEFINE_string("out", os.path.join(HERE, "results", "test_quality",
                                             "mutation"),
                        "Output path without extension.")
    flags.DEFINE_integer("sample", 0,
                         "Check only this many mutants per module, drawn at "
                         "random (seeded) from those not yet checked; 0: "
                         "all. The report then gives each kill rate with "
                         "its 95% interval.", lower_bound=0)
    flags.DEFINE_integer("sample_seed", 0, "Seed of the --sample draw.")
    flags.DEFINE_bool("recheck_survivors", False,
                      "Run only the work folder's surviving mutants again "
                      "(e.g. after writing tests for them); with --sample, "
                      "the folder's sample is reported as such, no new "
                      "mutant is drawn.")
    flags.DEFINE_bool("report_only", False,
                      "Run no mutant: write the report from the work "
                      "folder's results (e.g. after adding equivalents).")


def script_tests(test_files, tests_dir=os.path.join(REPO, "tests")):
    """Node ids of the tests in `test_files` that run a script in a
    subprocess (`run_script`): mutmut's copy holds no `scripts/`, and they
    are the slow ones, so they are deselected."""
    found = []
    for name in test_files:
        source = open(os.path.join(tests_dir, name)).read()
        for node in ast.parse(source).body:
            if (isinstance(node, ast.FunctionDef)
                    and node.name.startswith("test_")
                    and "run_script(" in ast.get_source_segment(source, node)):
                found.append(f"tests/{name}::{node.name}")
    return found


def settings(modules, test_files=TEST_FILES):
    only = "\n".join(f"    keras_gblend/{m.replace('.', '/')}.py"
                     for m in modules)
    tests = "\n".join(f"    tests/{t}" for t in test_files)
    patterns = "\n".join(f"    {p}" for p in DO_NOT_MUTATE)
    deselect = "".join(f"\n    --deselect\n    {t}"
                       for t in script_tests(test_files))
    return (f"[mutmut]\nsource_paths=keras_gblend\nonly_mutate=\n{only}\n"
            f"pytest_add_cli_args_test_selection=\n{tests}\n"
            f"pytest_add_cli_args={deselect}\n"
            f"do_not_mutate_patterns=\n{patterns}\n"
            "process_isolation=forkserver\nforkserver_warmup=none\n"
            "use_git_change_detection=false\n")


def changed_lines(diff):
    """`(original, mutated)` code of a mutant's diff, whitespace-trimmed."""
    removed = [l[1:].strip() for l in diff.splitlines()
               if l.startswith("-") and not l.startswith("---")]
    added = [l[1:].strip() for l in diff.splitlines()
             if l.startswith("+") and not l.startswith("+++")]
    return " / ".join(removed), " / ".join(added)


def equivalence_reason(name, diff, equivalents):
    """The recorded reason a survivor changes no behaviour, if any."""
    # keras_gblend.<package>.<module>.<mutant>: the module's dotted path.
    module = name.split(".", 1)[1].rsplit(".", 1)[0]
    original, mutated = changed_lines(diff)
    for entry in equivalents:
        if (entry["module"] == module and entry["original"] == original
                and entry["mutated"] == mutated):
            return entry["reason"]
    return None


def wilson_interval(killed, total, z=1.96):
    """95% Wilson score interval of a kill rate measured on a sample.

    Args:
        killed: mutants killed.
        total: mutants killed plus non-equivalent survivors.

    Returns:
        `(low, high)`, or `None` when `total` is 0.
    """
    if total == 0:
        return None
    rate = killed / total
    centre = rate + z * z / (2 * total)
    spread = z * math.sqrt(rate * (1 - rate) / total
                           + z * z / (4 * total * total))
    scale = 1 + z * z / total
    return (centre - spread) / scale, (centre + spread) / scale


def format_rate(killed, gaps):
    """`'91.7% (80.5–96.5%)'`: a kill rate and its 95% interval."""
    interval = wilson_interval(killed, killed + gaps)
    if interval is None:
        return "—"
    return (f"{100 * killed / (killed + gaps):.1f}% "
            f"({100 * interval[0]:.1f}–{100 * interval[1]:.1f}%)")


def sample_mutants(statuses, modules, per_module, seed):
    """Names of `per_module` not-yet-checked mutants of each module.

    Args:
        statuses: `{mutant name: mutmut status}`.
        modules: module names (`keras_gblend.<module>.` prefixes).
        per_module: how many to draw from each module.
        seed: seed of the draw.

    Returns:
        The drawn names, sorted.
    """
    rng = random.Random(seed)
    chosen = []
    for module in modules:
        pending = sorted(n for n, s in statuses.items()
                         if n.startswith(f"keras_gblend.{module}.")
                         and s == "not checked")
        chosen += rng.sample(pending, min(per_module, len(pending)))
    return sorted(chosen)


def mutant_statuses(work, env):
    """`{mutant name: status}` as mutmut lists them in `work`."""
    listing = subprocess.run(["mutmut", "results", "--all", "true"],
                             cwd=work, env=env, capture_output=True,
                             text=True).stdout
    return dict(re.findall(r"^\s*(\S+): (.+)$", listing, re.M))


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    unknown = sorted(set(FLAGS.modules) - set(CORE_MODULES))
    if unknown:
        raise app.UsageError(f"--modules: unknown {unknown}; core modules "
                             f"are {list(CORE_MODULES)}.")
    missing = [t for t in FLAGS.test_files
               if not os.path.isfile(os.path.join(REPO, "tests", t))]
    if missing:
        raise app.UsageError(f"--test_files: no such file in tests/: {missing}.")
    if shutil.which("mutmut") is None:
        raise app.UsageError("mutmut is not installed: pip install -e "
                             "\".[mutation]\".")
    equivalents = json.load(open(EQUIVALENTS)) if os.path.isfile(
        EQUIVALENTS) else []
    work = os.path.abspath(FLAGS.workdir)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if FLAGS.report_only:
        if not os.path.isdir(os.path.join(work, "mutants")):
            raise app.UsageError(f"--report_only: no mutmut results in {work}.")
        minutes, finished = None, None
    else:
        minutes, finished = run_mutmut(work, env)
    write_report(work, env, equivalents, minutes, finished)


def run_mutmut(work, env):
    """Refreshes the work folder and runs mutmut in it, within the budget.

    Returns:
        `(minutes, finished)`.
    """
    os.makedirs(work, exist_ok=True)
    for folder in ("keras_gblend", "tests"):
        # Refresh the sources and tests; mutmut's own state (mutants/) stays.
        shutil.rmtree(os.path.join(work, folder), ignore_errors=True)
        shutil.copytree(os.path.join(REPO, folder), os.path.join(work, folder),
                        ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.py", "pytest.ini", "README.md"):
        shutil.copy(os.path.join(REPO, name), work)
    with open(os.path.join(work, "setup.cfg"), "w") as f:
        f.write(settings(FLAGS.modules, FLAGS.test_files))
    start = time.perf_counter()
    command = ["mutmut", "run", "--max-children", str(FLAGS.children)]
    try:
        if FLAGS.recheck_survivors:
            survivors = [name for name, status in
                         mutant_statuses(work, env).items()
                         if status == "survived"]
            if not survivors:
                raise app.UsageError(f"--recheck_survivors: {work} has no "
                                     "surviving mutants.")
            command += survivors
        elif FLAGS.sample:
            # Generate the mutants and the test map without checking any
            # (a pattern that matches no mutant), then draw the sample.
            subprocess.run(command + ["keras_gblend.no_such_module.*"],
                           cwd=work, env=env,
                           timeout=60 * FLAGS.budget_minutes,
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            command += sample_mutants(mutant_statuses(work, env),
                                      FLAGS.modules, FLAGS.sample,
                                      FLAGS.sample_seed)
        remaining = 60 * FLAGS.budget_minutes - (time.perf_counter() - start)
        log_path = os.path.join(work, "mutmut.log")
        with open(log_path, "w") as log:
            result = subprocess.run(command, cwd=work, env=env,
                                    timeout=max(remaining, 1), stdout=log,
                                    stderr=subprocess.STDOUT)
        if result.returncode != 0:
            tail = open(log_path, errors="replace").read()[-2000:]
            raise app.UsageError(
                f"mutmut run failed (exit status {result.returncode}); the "
                f"end of {log_path}:\n{tail}")
        finished = True
    except subprocess.TimeoutExpired:
        finished = False
    return (time.perf_counter() - start) / 60, finished


def write_report(work, env, equivalents, minutes, finished):
    """Reads mutmut's results in `work` and writes the report."""
    statuses = mutant_statuses(work, env)
    survivors = []
    for name, status in statuses.items():
        if status != "survived":
            continue
        diff = subprocess.run(["mutmut", "show", name], cwd=work, env=env,
                              capture_output=True, text=True).stdout
        original, mutated = changed_lines(diff)
        survivors.append({
            "mutant": name, "original": original, "mutated": mutated,
            "equivalent": equivalence_reason(name, diff, equivalents)})
    rows = []
    for module in FLAGS.modules:
        mine = {n: s for n, s in statuses.items()
                if n.startswith(f"keras_gblend.{module}.")}
        counts = {}
        for status in mine.values():
            counts[status] = counts.get(status, 0) + 1
        own = [s for s in survivors
               if s["mutant"].startswith(f"keras_gblend.{module}.")]
        equivalent = sum(1 for s in own if s["equivalent"])
        killed = counts.get("killed", 0) + counts.get("timeout", 0)
        gaps = len(own) - equivalent
        rows.append({
            "module": module, "generated": len(mine), "killed": killed,
            "survived": len(own), "equivalent": equivalent, "gaps": gaps,
            "not_checked": len(mine) - killed - len(own),
            "kill_rate": killed / (killed + gaps) if killed + gaps else None,
            "kill_rate_95": wilson_interval(killed, killed + gaps),
        })
    total_killed = sum(r["killed"] for r in rows)
    total_gaps = sum(r["gaps"] for r in rows)
    lines = ["# Mutation testing (mutmut)", "",
             f"`python benchmarks/mutation.py --modules="
             f"{','.join(FLAGS.modules)}"
             + ("" if FLAGS.test_files == list(TEST_FILES) else
                f" --test_files={','.join(FLAGS.test_files)}")
             + (f" --sample={FLAGS.sample} --sample_seed={FLAGS.sample_seed}"
                if FLAGS.sample else "")
             + (" --recheck_survivors" if FLAGS.recheck_survivors else "")
             + ("`: results as left in the work folder by earlier runs"
                if minutes is None else
                f"`: {minutes:.0f} min on {os.cpu_count()} cores, "
                f"{FLAGS.children} workers"
                + ("" if finished else " (stopped by the time budget)"))
             + ". "
             + (f"A random sample (seed {FLAGS.sample_seed}) of "
                f"{FLAGS.sample} mutants per module was checked; the 95% "
                "interval is Wilson's, for the module's whole population. "
                if FLAGS.sample else "")
             + "Kill rate = killed / (killed + survivors not shown equivalent).",
             "", "| module | mutants | killed | survived | of which "
             "equivalent | not checked | kill rate (95% interval) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['module']} | {r['generated']} | {r['killed']} | "
                     f"{r['survived']} | {r['equivalent']} | "
                     f"{r['not_checked']} | "
                     f"{format_rate(r['killed'], r['gaps'])} |")
    if total_killed + total_gaps:
        lines += ["", f"All: {total_killed} killed, {total_gaps} non-equivalent "
                  f"survivors: {format_rate(total_killed, total_gaps)} "
                  "of the non-equivalent mutants killed."]
    lines += ["", "## Survivors", "",
              "| mutant | original → mutated | equivalent because |",
              "|---|---|---|"]
    for s in sorted(survivors, key=lambda s: s["mutant"]):
        lines.append(f"| `{s['mutant']}` | `{s['original']}` → "
                     f"`{s['mutated']}` | {s['equivalent'] or '**gap**'} |")
    text = "\n".join(lines)
    print(text)
    write_results(FLAGS.out, text, {"modules": rows, "survivors": survivors,
                                    "minutes": minutes, "finished": finished})


if __name__ == "__main__":
    define_flags()
    app.run(main)
