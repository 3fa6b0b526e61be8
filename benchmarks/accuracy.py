"""Every method on UCI Multiple Features, UCI-paradox, AV-digits or spoken
digits: uni-modal networks, naive fusion, offline/online G-Blend, OGM,
OGM-GE and G-Blend + OGM-GE; test accuracy mean ± std over seeds, each
method's worst seed against naive fusion on the same seed, the
holdout-selected answer
(`kg.select_answer`) and the wall time of each method's `fit`, measured
side by side in one run. Same budget (epochs, optimizer, learning rate
schedule, model) for every method; the holdout is carved from the training
split; the test split is evaluated once per run.

A method may carry settings of its own, e.g.
`--methods='naive,gblend_online,gblend_online[noise_z=None;smoothing=0.5]'`
(any `ExperimentConfig` field; the row is labelled as written).

Usage:
    python benchmarks/accuracy.py                  # full table (~35 min, 2 cores)
    python benchmarks/accuracy.py --seeds=0 --epochs=5 --view_sets=fac,mor
    python benchmarks/accuracy.py --dataset=uci_paradox --seeds=0,1,2,3,4
    python benchmarks/accuracy.py --dataset=spoken_digits --probes \
        --spoken_noise=0.3:1.5,0.5:1.5 --methods=naive,unimodal,ogm_ge

    python scripts/make_av_digits.py --out /tmp/avd_clean --n 2000
    python scripts/make_av_digits.py --out /tmp/avd_noisy --n 2000 \
        --image_noise 0.8
    python benchmarks/accuracy.py --dataset=av_digits --epochs=20 \
        --learning_rate=0.05 --lr_schedule=cosine \
        --data_dirs=/tmp/avd_clean,/tmp/avd_noisy          # (~90 min)

Writes benchmarks/results/accuracy/accuracy_<dataset>.{md,json}. Each
finished run is also appended to `<out>.runs.jsonl` as it ends (seeds in
the outer loop, so a stopped benchmark holds every method of its first
seeds); `--resume` reads that file and runs only what it lacks, a run
being reused only if its whole configuration matches. The file is kept
(git ignores it), so a later `--resume` with more seeds or methods runs
only the new ones.
"""

import ast
import dataclasses
import inspect
import json
import os
import re
import sys

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from keras_gblend import datasets  # noqa: E402
from keras_gblend.experiment import cli  # noqa: E402
from keras_gblend.experiment import config as experiment_config, methods, run  # noqa: E402
from results_files import current_commit, write_results  # noqa: E402

FLAGS = flags.FLAGS
HERE = os.path.dirname(os.path.abspath(__file__))


def define_flags():
    flags.DEFINE_enum("dataset", "uci_mfeat", experiment_config.DATASETS, "Dataset.")
    flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
    flags.DEFINE_integer("epochs", 40, "Epochs per run (same for all methods).")
    flags.DEFINE_multi_string(
        "view_sets", ["fac,mor", "fou,fac,kar,pix,zer,mor"],
        "UCI view sets, each comma-separated.")
    flags.DEFINE_list("data_dirs", [],
                      "AV-digits folders (e.g. two noise levels).")
    flags.DEFINE_list("spoken_noise", [],
                      "spoken_digits: image:audio noise pairs, one table each "
                      "(e.g. 0.3:1.5,0.5:1.5; default: the dataset's own).")
    flags.DEFINE_list("methods", list(experiment_config.METHODS),
                      "Methods (as scripts/train.py --method, incl. "
                      "unimodal:<m>), each optionally with its own settings: "
                      "method[field=value;...].")
    flags.DEFINE_float("learning_rate", 0.01, "SGD learning rate.")
    flags.DEFINE_enum("lr_schedule", "constant", experiment_config.LR_SCHEDULES,
                      "Learning rate schedule (cosine: to 0 over --epochs).")
    flags.DEFINE_list("alphas", ["0.5"],
                      "OGM-GE alphas: each OGM method gets a row per alpha.")
    flags.DEFINE_bool("probes", False,
                      "After each run, a linear probe of every encoder "
                      "(train split -> test split), shown per modality.")
    flags.DEFINE_bool("resume", False,
                      "Reuse the finished runs recorded in <out>.runs.jsonl "
                      "by an earlier, stopped run of the same benchmark.")
    flags.DEFINE_string("out", None, "Output path without extension "
                        "(default benchmarks/results/accuracy/"
                        "accuracy_<dataset>).")


def mean_std(values):
    return f"{100 * np.mean(values):.1f} ± {100 * np.std(values):.1f}"


_OVERRIDES = re.compile(r"^([^\[\]]+)(?:\[(.*)\])?$")
_FIELDS = {f.name for f in dataclasses.fields(experiment_config.ExperimentConfig)}


def override_value(name, text):
    """A `name=value` override's value, read as scripts/train.py reads the
    flag `--name` (`none`, `true`, numbers); a quoted string or a Python
    tuple or list as a literal; text of the wrong kind as it is, for
    `validate` to name the setting."""
    if text[:1] in "\"'([":
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
    try:
        return cli.setting_value(experiment_config.field_named(name), text)
    except ValueError:
        return text


def parse_method(entry):
    """`"gblend_online[noise_z=1.0;smoothing=0.5]"` ->
    `("gblend_online", {"noise_z": 1.0, "smoothing": 0.5})`."""
    match = _OVERRIDES.match(entry.strip())
    if not match:
        raise ValueError(f"methods: cannot read {entry!r}.")
    method, settings = match.group(1), {}
    for item in filter(None, (match.group(2) or "").split(";")):
        name, _, value = item.partition("=")
        name = name.strip()
        if name not in _FIELDS or name in ("method", "seed"):
            raise ValueError(f"methods: {entry!r} sets unknown field {name!r}.")
        settings[name] = override_value(name, value.strip())
    return method, settings


def trained_heads(method, heads):
    """Heads a method trains (the others' accuracy is not reported)."""
    modality = methods.unimodal_modality(method)
    if modality is not None:
        return [modality]
    if method == "unimodal":
        return heads[:-1]
    return heads


def settings():
    """(title, ExperimentConfig keyword arguments) per table."""
    if FLAGS.dataset == "uci_paradox":
        return [("UCI-paradox (fac + zer with 512 noise columns, 40 training "
                 "examples per class, 256-unit encoders)",
                 {"dataset": "uci_paradox"})]
    if FLAGS.dataset == "spoken_digits":
        return [("Spoken digits (FSDD MFCC recordings + digit images, image "
                 f"noise {image:g}, audio noise {audio:g})",
                 {"dataset": "spoken_digits", "image_noise": image,
                  "audio_noise": audio})
                for image, audio in spoken_noise_pairs()]
    if FLAGS.dataset == "av_digits":
        if not FLAGS.data_dirs:
            raise app.UsageError("--data_dirs is required for av_digits.")
        # The folder by its name only: no machine path in the results.
        return [(f"AV-digits {os.path.basename(os.path.normpath(d))}"
                 f"{av_digits_noise(d)}",
                 {"dataset": "av_digits", "data_dir": d})
                for d in FLAGS.data_dirs]
    return [(f"views {v}", {"views": tuple(v.split(","))})
            for v in FLAGS.view_sets]


def spoken_noise_pairs():
    """(image noise, audio noise) per `--spoken_noise` entry."""
    if not FLAGS.spoken_noise:
        defaults = inspect.signature(datasets.load_spoken_digits).parameters
        return [(defaults["image_noise"].default,
                 defaults["audio_noise"].default)]
    pairs = []
    for entry in FLAGS.spoken_noise:
        try:
            image, audio = (float(v) for v in entry.split(":"))
        except ValueError:
            raise app.UsageError(
                f"--spoken_noise: {entry!r} is not image:audio, e.g. 0.3:1.5.")
        pairs.append((image, audio))
    return pairs


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
                   "data_dir": "data_dirs", "image_noise": "spoken_noise",
                   "audio_noise": "spoken_noise"}


def method_rows(alphas):
    """(row label, method, alpha, settings) for every method (OGM ones per
    alpha)."""
    rows = []
    for entry in FLAGS.methods:
        method, overrides = parse_method(entry)
        if "ogm" in method and len(alphas) > 1:
            rows += [(f"{entry} α={alpha:g}", method, alpha, overrides)
                     for alpha in alphas]
        else:
            rows.append((entry, method, alphas[0], overrides))
    return rows


def make_config(method, seed, kwargs, alpha, overrides=None):
    settings = dict(epochs=FLAGS.epochs, alpha=alpha,
                    learning_rate=FLAGS.learning_rate,
                    lr_schedule=FLAGS.lr_schedule, verbose=0,
                    probe_encoders=FLAGS.probes, **kwargs)
    settings.update(overrides or {})
    return experiment_config.ExperimentConfig(method=method, seed=seed, **settings)


# A row is compared with the naive row of the same network trained the
# same way.
TRAINING_SETTINGS = ("optimizer", "learning_rate", "weight_decay",
                     "lr_schedule", "fusion", "fusion_dropout",
                     "unimodal_heads", "hidden_units")


def naive_row(rows, row):
    """The naive row with `row`'s optimizer settings, else plain naive."""
    same = {k: v for k, v in row["settings"].items()
            if k in TRAINING_SETTINGS}
    for candidate in rows:
        if candidate["method"] == "naive" and {
                k: v for k, v in candidate["settings"].items()
                if k in TRAINING_SETTINGS} == same and (
                    set(candidate["settings"]) <= set(TRAINING_SETTINGS)):
            return candidate
    return None


# Settings added after runs were recorded, each with the value that kept
# the earlier behaviour: a recorded run without one ran at that value.
LATER_SETTINGS = {"ogm_coefficient": "reference"}


class RunProgress:
    """Finished runs, one JSON line each, so that a stopped benchmark can
    resume: a run is reused only if its configuration (every
    `ExperimentConfig` field) is the one about to run. A record made before
    a setting of `LATER_SETTINGS` existed counts as made at its value.

    Args:
        path: the progress file.
        resume: read the runs `path` holds; otherwise start it afresh.
    """

    def __init__(self, path, resume):
        self.path = path
        self.records = {}
        self.reused_commits = []
        if resume and os.path.isfile(path):
            with open(path) as f:
                for number, line in enumerate(f, 1):
                    try:
                        entry = json.loads(line)
                        fields = json.loads(entry["config"])
                        for name, value in LATER_SETTINGS.items():
                            fields.setdefault(name, value)
                        self.records[self._dump(fields)] = entry
                    except (ValueError, KeyError):
                        # A line cut short when the run was killed.
                        print(f"{path}:{number}: unreadable, ignored.",
                              flush=True)
        elif os.path.isfile(path):
            os.remove(path)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    @staticmethod
    def _dump(fields):
        return json.dumps(fields, sort_keys=True, default=str)

    @classmethod
    def key(cls, config):
        return cls._dump(dataclasses.asdict(config))

    def finished(self, config):
        """The recorded run of `config`, or None."""
        entry = self.records.get(self.key(config))
        if entry is None:
            return None
        self.reused_commits.append(entry["commit"])
        return entry["run"]

    def add(self, config, record):
        entry = {"config": self.key(config), "commit": current_commit(),
                 "run": record}
        with open(self.path, "a") as f:
            f.write(json.dumps(entry) + "\n")

    def summary(self):
        """Lines for the table saying which runs were resumed."""
        if not self.reused_commits:
            return []
        commits = sorted(set(self.reused_commits))
        return [f"Resumed (`--resume`): {len(self.reused_commits)} runs "
                f"read from the progress file, made at commit "
                f"{', '.join(commits)}; the rest ran at the commit above.",
                ""]


def worst_against_naive(rows, row):
    """Lowest per-seed difference (points) of `row`'s reported accuracy
    minus naive fusion's (trained with the same optimizer settings) on the
    same seed; None without such a naive row."""
    naive = naive_row(rows, row)
    if naive is None or row is naive or row["method"] == "unimodal":
        return None
    base = {run["seed"]: run["test_accuracy"]["joint"]
            for run in naive["runs"]}
    head = methods.unimodal_modality(row["method"]) or "joint"
    gaps = [100 * (run["test_accuracy"][head] - base[run["seed"]])
            for run in row["runs"] if run["seed"] in base]
    return min(gaps) if gaps else None


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if FLAGS.spoken_noise and FLAGS.dataset != "spoken_digits":
        raise app.UsageError(
            f"--spoken_noise: --dataset={FLAGS.dataset} is not spoken_digits.")
    try:
        seeds = [int(seed) for seed in FLAGS.seeds]
    except ValueError:
        raise app.UsageError(f"--seeds: integers expected, got {FLAGS.seeds}.")
    try:
        alphas = [float(alpha) for alpha in FLAGS.alphas]
    except ValueError:
        raise app.UsageError(f"--alphas: numbers expected, got {FLAGS.alphas}.")
    try:
        rows_to_run = method_rows(alphas)
    except ValueError as error:
        raise app.UsageError(f"--{error}")
    for _, kwargs in settings():  # every setting is valid before any run
        for _, method, alpha, overrides in rows_to_run:
            try:
                make_config(method, seeds[0], kwargs, alpha,
                            overrides).validate()
            except (ValueError, TypeError) as error:
                # Config errors start with the setting's name.
                field, _, detail = str(error).partition(" ")
                flag = FLAG_OF_SETTING.get(field.rstrip(":"), field.rstrip(":"))
                raise app.UsageError(f"--{flag}: {detail}")
    out = FLAGS.out or os.path.join(HERE, "results", "accuracy",
                                    f"accuracy_{FLAGS.dataset}")
    progress = RunProgress(out + ".runs.jsonl", resume=FLAGS.resume)
    tables = []
    for title, kwargs in settings():
        runs = {label: [] for label, *_ in rows_to_run}
        for seed in seeds:
            for label, method, alpha, overrides in rows_to_run:
                config = make_config(method, seed, kwargs, alpha, overrides)
                record = progress.finished(config)
                if record is None:
                    result = run.run_experiment(config)
                    record = {"seed": seed, **{k: result[k] for k in (
                        "views", "test_accuracy", "blend_weights", "answer",
                        "wall_time_s", "probe_accuracy", "ogm_diagnosis")}}
                    progress.add(config, record)
                runs[label].append(record)
                print(title, label, seed, record["test_accuracy"],
                      f"answer {record['answer']['test_accuracy']:.3f}",
                      f"{record['wall_time_s']:.1f}s", flush=True)
        tables.append({"setting": title, "rows": [
            {"method": method, "label": label, "alpha": alpha,
             "settings": overrides, "runs": runs[label]}
            for label, method, alpha, overrides in rows_to_run]})

    lines = [f"# Methods on {FLAGS.dataset}", "",
             f"Test accuracy (%) mean ± std over seeds {FLAGS.seeds}, "
             f"{FLAGS.epochs} epochs each, SGD({FLAGS.learning_rate}, momentum "
             f"0.9), {FLAGS.lr_schedule} learning rate, batch 32, concat "
             "fusion, 10% holdout carved from train, test evaluated once "
             "per run. G-Blend (unless a row says otherwise): blend scope "
             "`shared`; online estimates at epochs 0, 10, 15, ... (the "
             "paper's schedule), each estimate's clones training n = 5 "
             "epochs; offline estimates once over the whole "
             "run; a gain counts if above 2 bootstrap standard errors. "
             f"OGM-GE: alpha {', '.join(FLAGS.alphas)}, whole run. "
             "`unimodal` trains each modality's network alone (its columns), "
             "`unimodal:<m>` modality m's; other methods report the joint "
             "head, their per-modality columns being the other heads "
             "(trained by their blend weight; a weight-0 head is a probe of "
             "its encoder). *worst seed vs naive*: the lowest per-seed "
             "difference to naive fusion on the same seed (points). "
             "*answer*: the head mix `kg.select_answer` picks on the "
             "holdout. Wall time: `fit` only.", ""]
    for table in tables:
        heads = table["rows"][0]["runs"][0]["views"] + ["joint"]
        probes = [f"probe {h}" for h in heads[:-1]] if FLAGS.probes else []
        lines += [f"## {table['setting']}", "",
                  "| method | joint | " + " | ".join(heads[:-1] + probes) +
                  " | worst seed vs naive | answer | final weights (mean) "
                  "| fit wall time (s) |",
                  "|---" * (len(heads) + len(probes) + 5) + "|"]
        for row in table["rows"]:
            runs = row["runs"]
            accs = {h: [r["test_accuracy"][h] for r in runs] for h in heads}
            weights = {h: np.mean([r["blend_weights"][h] for r in runs])
                       for h in heads}
            wall = np.mean([r["wall_time_s"] for r in runs])
            trained = trained_heads(row["method"], heads)
            worst = worst_against_naive(table["rows"], row)
            answer = [r["answer"]["test_accuracy"] for r in runs]
            probe_cells = [mean_std([r["probe_accuracy"][h] for r in runs])
                           for h in heads[:-1]] if FLAGS.probes else []
            lines.append(
                f"| {row['label']} | "
                + " | ".join([mean_std(accs[h]) if h in trained else "—"
                              for h in ["joint"] + heads[:-1]] + probe_cells)
                + f" | {'—' if worst is None else f'{worst:+.1f}'}"
                + f" | {mean_std(answer)} | "
                + ", ".join(f"{h} {w:.2f}" for h, w in weights.items())
                + f" | {wall:.1f} |")
        verdicts = [
            f"{row['label']}: " + ", ".join(
                f"seed {r['seed']} {r['ogm_diagnosis']['verdict']} (after "
                f"epoch {r['ogm_diagnosis']['epoch']})"
                for r in row["runs"] if r.get("ogm_diagnosis"))
            for row in table["rows"]
            if any(r.get("ogm_diagnosis") for r in row["runs"])]
        if verdicts:
            lines += ["", "OGM-GE's premise check (`kg.ModalityImbalanceMonitor`"
                      "): " + "; ".join(verdicts) + "."]
        lines.append("")
    lines += progress.summary()
    text = "\n".join(lines)
    print(text)
    write_results(out, text, tables)


if __name__ == "__main__":
    define_flags()
    cli.run(main)
