"""The benchmark scripts run end to end on tiny configurations."""

import dataclasses
import json
import os
import sys
import types

import pytest


BENCHMARKS = os.path.join(os.path.dirname(__file__), "..", "benchmarks")


def kg_default_fraction():
    from keras_gblend.experiment import config as experiment_config
    return experiment_config.ExperimentConfig().resolved().estimation_fraction


def _run(run_script, script, *flags):
    return run_script("benchmarks", script, *flags)


def test_speed_benchmark_tiny(tmp_path, run_script):
    out = tmp_path / "speed"
    # (The ResNet-18 section takes minutes: not here.)
    result = _run(run_script, "speed.py", "--steps=2", "--repeats=1",
                  "--epochs=1", "--fit_repeats=1",
                  "--sections=ogm_step", "--sections=online_vs_naive",
                  "--sections=estimation",
                  "--estimation_epochs=1", "--view_sets=fac,mor",
                  "--view_sets=fac,mor,zer", f"--out={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.load(open(f"{out}.json"))
    assert [(r["mode"], r["variant"]) for r in report["ogm_step"]] == [
        (mode, variant) for mode in ("graph", "XLA")
        for variant in ("keras train_step", "blend_scope=shared",
                        "OGM (no noise)", "OGM-GE")]
    assert all(r["ms_per_step"] > 0 for r in report["ogm_step"])
    online = report["online_vs_naive"]
    default = kg_default_fraction()
    assert [(r["method"], r["estimation_fraction"]) for r in online] == [
        ("naive", None), ("gblend_online", 1.0)] + (
        [("gblend_online", default)] if default != 1.0 else [])
    for row in online[1:]:  # one estimate (epoch 0), its time by phase
        assert row["estimates"] == 1 and row["training_s"] > 0
        assert row["estimation_s"] == sum(
            row[f"{p}_s"] for p in ("subset", "clones", "training",
                                    "measuring", "bootstrap"))
    estimation = report["estimation"]
    assert [(r["k"], r["separate_clones"]) for r in estimation] == [(2, 3), (3, 4)]
    # Fused and separate clones estimate the same weights.
    assert all(r["max_weight_difference"] < 1e-6 for r in estimation)
    text = open(f"{out}.md").read()
    assert "| 3 | fac,mor,zer |" in text

    bad = _run(run_script, "speed.py", "--view_sets=fac,rgb", f"--out={out}")
    assert bad.returncode != 0 and "--view_sets" in bad.stderr


def test_subset_weights_benchmark_tiny(tmp_path, run_script):
    out = tmp_path / "subset"
    result = _run(run_script, "subset_weights.py", "--settings=uci_fac_mor",
                  "--seeds=0", "--batch_norm_statistics=recalibrated,moving",
                  "--fractions=0.5", "--estimation_epochs=1", f"--out={out}",
                  f"--plot={tmp_path}/subset.png")
    assert result.returncode == 0, result.stderr[-3000:]
    setting, moving = json.load(open(f"{out}.json"))
    # One table per way of measuring BatchNormalization statistics (the
    # UCI encoders have none: the same weights either way).
    assert [setting["batch_norm_statistics"], moving["batch_norm_statistics"]
            ] == ["recalibrated", "moving"]
    assert "statistics moving" in moving["title"]
    assert moving["rows"] == setting["rows"]
    half, full, repeat = setting["rows"]
    assert (half["fraction"], full["fraction"]) == (0.5, 1.0)
    assert full["mean_abs_difference_to_full"] == 0.0
    # The fraction reaches the estimate, and another shuffle seed alone
    # moves the weights too: the noise floor.
    assert half["mean_abs_difference_to_full"] > 0
    assert repeat["mean_abs_difference_to_full"] > 0
    assert os.path.getsize(f"{tmp_path}/subset.png") > 0

    bad = _run(run_script, "subset_weights.py", "--fractions=0,1",
               f"--out={out}2")
    assert bad.returncode != 0 and "--fractions" in bad.stderr
    bad = _run(run_script, "subset_weights.py", "--settings=uci_fac_mor",
               "--batch_norm_statistics=stale", f"--out={out}2")
    assert bad.returncode != 0 and "--batch_norm_statistics" in bad.stderr
    assert not os.path.exists(f"{out}2.json")


def test_accuracy_benchmark_tiny(tmp_path, run_script):
    out = tmp_path / "accuracy"
    result = _run(run_script, "accuracy.py", "--seeds=0", "--epochs=2",
                  "--view_sets=fac,mor", "--methods=naive,unimodal:fac,ogm",
                  "--alphas=0.1,2", f"--out={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    (table,) = json.load(open(f"{out}.json"))
    naive, unimodal, ogm_weak, ogm_strong = table["rows"]
    assert (ogm_weak["label"], ogm_strong["label"]) == ("ogm α=0.1", "ogm α=2")
    # The alpha reaches the run: a stronger modulation changes the result.
    assert (ogm_weak["runs"][0]["test_accuracy"]
            != ogm_strong["runs"][0]["test_accuracy"])
    assert naive["runs"][0]["test_accuracy"]["joint"] > 0.5
    assert unimodal["runs"][0]["test_accuracy"]["fac"] > 0.5
    text = open(f"{out}.md").read()
    rows = {line.split(" | ")[0][2:]: line.split(" | ")
            for line in text.splitlines() if line.startswith("| ")}
    # unimodal:fac reports only the fac network; the joint column is empty.
    unimodal_row = rows["unimodal:fac"]
    assert unimodal_row[1] == "—" and unimodal_row[3] == "—"
    assert unimodal_row[6].startswith("fac 1.00, mor 0.00")
    # worst seed vs naive: the OGM row's joint minus naive's joint, one seed.
    gap = 100 * (ogm_strong["runs"][0]["test_accuracy"]["joint"]
                 - naive["runs"][0]["test_accuracy"]["joint"])
    assert rows["ogm α=2"][4] == f"{gap:+.1f}" and rows["naive"][4] == "—"
    # answer: the holdout-selected head mix, each run's test accuracy.
    answer = 100 * ogm_strong["runs"][0]["answer"]["test_accuracy"]
    assert rows["ogm α=2"][5] == f"{answer:.1f} ± 0.0"
    # The premise check's verdict per seed, with the epoch it was made at
    # (halfway through 2 epochs).
    verdict = ogm_strong["runs"][0]["ogm_diagnosis"]["verdict"]
    assert f"ogm α=2: seed 0 {verdict} (after epoch 1)" in text

    for flags, name in ((["--methods=naive,unimodal:rgb"], "--methods"),
                        (["--alphas=strong"], "--alphas"),
                        (["--spoken_noise=0.5:1.5"], "--spoken_noise"),
                        (["--dataset=spoken_digits", "--spoken_noise=0.5"],
                         "--spoken_noise: '0.5' is not image:audio"),
                        (["--dataset=spoken_digits",
                          "--spoken_noise=0.5:-1"],
                         "--spoken_noise: must be")):
        bad = _run(run_script, "accuracy.py", *flags, f"--out={out}2")
        assert bad.returncode != 0 and name in bad.stderr, bad.stderr[-2000:]
        assert not os.path.exists(f"{out}2.json")


def test_accuracy_benchmark_resumes_only_matching_runs(tmp_path, run_script):
    out = tmp_path / "accuracy"
    progress = f"{out}.runs.jsonl"
    common = ["--view_sets=fac,mor", "--methods=naive", f"--out={out}"]
    first = _run(run_script, "accuracy.py", "--seeds=0", "--epochs=1",
                 *common)
    assert first.returncode == 0, first.stderr[-3000:]
    (seed0,) = json.load(open(f"{out}.json"))[0]["rows"][0]["runs"]
    assert len(open(progress).readlines()) == 1
    with open(progress, "a") as f:
        f.write('{"config": "cut short')  # a line a killed run left

    # Another seed, resumed: seed 0 is read back (its wall time too), only
    # seed 1 runs, and the table says so.
    more = _run(run_script, "accuracy.py", "--seeds=0,1", "--epochs=1",
                "--resume", *common)
    assert more.returncode == 0, more.stderr[-3000:]
    assert "unreadable, ignored" in more.stdout
    runs = json.load(open(f"{out}.json"))[0]["rows"][0]["runs"]
    assert [r["seed"] for r in runs] == [0, 1]
    assert runs[0] == seed0
    assert runs[1]["wall_time_s"] != seed0["wall_time_s"]
    assert "Resumed (`--resume`): 1 runs" in open(f"{out}.md").read()

    # Another configuration (2 epochs) reuses nothing; without --resume
    # the progress file starts afresh.
    other = _run(run_script, "accuracy.py", "--seeds=0", "--epochs=2",
                 "--resume", *common)
    assert other.returncode == 0, other.stderr[-3000:]
    (rerun,) = json.load(open(f"{out}.json"))[0]["rows"][0]["runs"]
    assert rerun["wall_time_s"] != seed0["wall_time_s"]
    assert "Resumed" not in open(f"{out}.md").read()
    fresh = _run(run_script, "accuracy.py", "--seeds=0", "--epochs=1",
                 *common)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert len(open(progress).readlines()) == 1


def test_accuracy_benchmark_on_av_digits_tiny(
        av_digits_dir, tmp_path, run_script):
    out = tmp_path / "accuracy"
    result = _run(run_script, "accuracy.py", "--dataset=av_digits",
                  f"--data_dirs={av_digits_dir}", "--seeds=0", "--epochs=1",
                  "--methods=unimodal:audio", "--lr_schedule=cosine",
                  f"--out={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    (table,) = json.load(open(f"{out}.json"))
    # The title says how the folder was generated (its meta.json).
    assert table["setting"].endswith("(200 clips, image noise 0, audio noise 0)")
    (row,) = table["rows"]
    assert row["runs"][0]["blend_weights"] == {
        "audio": 1.0, "visual": 0.0, "joint": 0.0}
    assert "cosine learning rate" in open(f"{out}.md").read()

    bad = _run(run_script, "accuracy.py", "--dataset=av_digits",
               f"--data_dirs={tmp_path}/none", f"--out={out}2")
    assert bad.returncode != 0 and "--data_dirs" in bad.stderr
    assert not os.path.exists(f"{out}2.json")


def test_pipeline_throughput_benchmark_tiny(
        av_digits_dir, tmp_path, run_script):
    out = tmp_path / "pipeline"
    result = _run(run_script, "pipeline_throughput.py",
                  f"--data_dir={av_digits_dir}",
                  "--repeats=1", f"--out={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.load(open(f"{out}.json"))
    assert [r["source"] for r in rows] == [
        "files", "files, cached bytes", "TFRecords", "memory (decoded arrays)"]
    assert all(r["pipeline_examples_per_s"] > 0 and r["fit_examples_per_s"] > 0
               for r in rows)
    assert rows[-1]["fit_ratio_to_memory"] == 1.0
    assert "| TFRecords |" in open(f"{out}.md").read()

    missing = _run(run_script, "pipeline_throughput.py",
                   f"--data_dir={tmp_path}/none",
                   f"--out={out}")
    assert missing.returncode != 0 and "--data_dir" in missing.stderr


def test_mutation_report_matches_equivalents_of_functions_and_methods():
    sys.path.insert(0, BENCHMARKS)
    import mutation

    entries = [{"module": "evaluation.answer", "original": "a = 1",
                "mutated": "a = 2", "reason": "why"}]
    diff = "--- x\n+++ y\n-    a = 1\n+    a = 2\n"
    for name in ("keras_gblend.evaluation.answer.x_select_answer__mutmut_3",
                 "keras_gblend.evaluation.answer.xǁAnswerǁaccuracy__mutmut_22"):
        assert mutation.equivalence_reason(name, diff, entries) == "why"
    assert mutation.equivalence_reason(
        "keras_gblend.gblend.ogr.x_blend_weights__mutmut_3", diff,
        entries) is None
    assert mutation.equivalence_reason(
        "keras_gblend.evaluation.answer.x_select_answer__mutmut_3",
        "-    a = 1\n+    a = 3\n", entries) is None
    # Every recorded equivalent names a module the run mutates.
    recorded = json.load(open(os.path.join(BENCHMARKS,
                                           "mutation_equivalents.json")))
    assert {e["module"] for e in recorded} <= set(mutation.CORE_MODULES)


def test_mutation_sample_draws_unchecked_mutants_of_each_module():
    sys.path.insert(0, BENCHMARKS)
    import mutation

    statuses = {f"keras_gblend.ogr.x_f__mutmut_{i}": "not checked"
                for i in range(40)}
    statuses["keras_gblend.ogr.x_f__mutmut_0"] = "killed"
    statuses.update({f"keras_gblend.ogm.x_g__mutmut_{i}": "not checked"
                     for i in range(3)})
    drawn = mutation.sample_mutants(statuses, ["ogr", "ogm"], 4, seed=1)
    ogr = [n for n in drawn if ".ogr." in n]
    assert len(ogr) == 4 and "keras_gblend.ogr.x_f__mutmut_0" not in ogr
    assert len(drawn) == 7  # ogm has only 3 to give
    assert drawn == mutation.sample_mutants(statuses, ["ogr", "ogm"], 4, 1)
    assert drawn != mutation.sample_mutants(statuses, ["ogr", "ogm"], 4, 2)


def test_mutation_kill_rate_interval_is_wilsons():
    sys.path.insert(0, BENCHMARKS)
    import mutation

    # Wilson's 95% interval for 45 of 50 (tabulated: 0.786-0.957).
    low, high = mutation.wilson_interval(45, 50)
    assert abs(low - 0.7864) < 1e-3 and abs(high - 0.9565) < 1e-3
    low, high = mutation.wilson_interval(30, 30)
    assert high == pytest.approx(1.0) and 0.88 < low < 0.89
    assert mutation.wilson_interval(0, 0) is None
    assert mutation.format_rate(45, 5) == "90.0% (78.6–95.7%)"


def test_ogm_reference_needs_torch_and_a_checkout(tmp_path, monkeypatch):
    sys.path.insert(0, BENCHMARKS)
    import ogm_reference

    monkeypatch.setitem(sys.modules, "torch", None)  # import torch fails
    with pytest.raises(ogm_reference.ReferenceUnavailable, match="torch"):
        ogm_reference.load_reference(str(tmp_path))
    monkeypatch.setitem(sys.modules, "torch", types.ModuleType("torch"))
    with pytest.raises(ogm_reference.ReferenceUnavailable,
                       match=r"--ogm_reference_dir.*main\.py"):
        ogm_reference.load_reference(str(tmp_path))


# A stand-in for the reference checkout: its layout and the names
# `ogm_reference` calls (main.AVClassifier, main.weight_init,
# main.train_epoch), with a data module that cannot import.
FAKE_REFERENCE = {
    "dataset/__init__.py": "",
    "dataset/CramedDataset.py": "import librosa_not_installed_here\n",
    "models/__init__.py": "",
    "models/basic_model.py": """
import torch


class AVClassifier(torch.nn.Module):
    def __init__(self, args):
        super().__init__()
        self.modulation = args.modulation
        self.audio_net = torch.nn.Linear(128 * 94, 6)
        self.visual_net = torch.nn.Linear(3 * 3 * 112 * 112, 6)

    def forward(self, audio, visual):
        return (self.audio_net(audio.flatten(1))
                + self.visual_net(visual.flatten(1)))
""",
    "main.py": """
import time

import torch

from dataset.CramedDataset import CramedDataset
from models.basic_model import AVClassifier

def weight_init(module):
    pass


def train_epoch(args, epoch, model, device, dataloader, optimizer,
                scheduler, writer=None):
    print("Start training ... ")
    with open(__file__ + ".calls", "a") as calls:
        calls.write(f"{args.modulation} {len(dataloader)}\\n")
    for spec, image, label in dataloader:
        optimizer.zero_grad()
        out = model(spec.unsqueeze(1), image)
        torch.nn.functional.cross_entropy(out, label).backward()
        optimizer.step()
        # The noise variant is slower, as the reference's is.
        time.sleep({"Normal": 0.01, "OGM": 0.01, "OGM_GE": 0.03}[
            args.modulation])
""",
}


def test_ogm_reference_times_each_modulation_of_its_train_epoch(tmp_path):
    pytest.importorskip("torch")
    sys.path.insert(0, BENCHMARKS)
    import ogm_reference

    for path, text in FAKE_REFERENCE.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    before = set(sys.modules)
    try:
        rows = ogm_reference.reference_step_times(
            str(tmp_path), batch_size=2, steps=4, repeats=2, alpha=0.5)
    finally:
        for name in set(sys.modules) - before:
            if name.startswith(("dataset", "models")):
                del sys.modules[name]
        sys.path.remove(str(tmp_path))
    assert [r["variant"] for r in rows] == ["plain step", "OGM (no noise)",
                                            "OGM-GE"]
    assert rows[0]["ratio_to_plain"] == 1.0
    # The 30 ms sleep of OGM_GE against 10 ms: its step is ~2x as long.
    assert 1.5 < rows[2]["ratio_to_plain"] < 4
    assert all(r["ms_p10"] <= r["ms_per_step"] <= r["ms_p90"] for r in rows)
    # A warm-up round, then 2 interleaved rounds, each an epoch of 5
    # batches (steps + 1: the first step of each epoch is not timed).
    calls = (tmp_path / "main.py.calls").read_text().split("\n")[:-1]
    assert calls == ["Normal 5", "OGM 5", "OGM_GE 5"] * 3


def test_mutation_deselects_tests_that_run_scripts(tmp_path):
    sys.path.insert(0, BENCHMARKS)
    import mutation

    (tmp_path / "test_a.py").write_text(
        "def helper():\n    run_script('scripts', 'x.py')\n\n"
        "def test_in_process():\n    assert 1\n\n"
        "def test_script():\n    result = run_script('scripts', 'train.py')\n")
    assert mutation.script_tests(["test_a.py"], str(tmp_path)) == [
        "tests/test_a.py::test_script"]
    # The repository's own: the multi-label train-script test is one.
    text = mutation.settings(["ogr"], ["evaluation/test_multilabel.py"])
    assert ("pytest_add_cli_args=\n    --deselect\n    tests/evaluation/"
            "test_multilabel.py"
            "::test_train_script_runs_gblend_on_multi_label_data") in text


def test_gpu_check_refuses_an_unknown_argument_before_any_work(tmp_path):
    # The device check's other paths run on a device machine (and as a
    # CPU rehearsal with --small, outside the suite: minutes).
    import subprocess

    out = tmp_path / "gpu"
    result = subprocess.run(
        ["bash", os.path.join(BENCHMARKS, "gpu_check.sh"), "--small",
         "--epochs=3", f"--out={out}"], capture_output=True, text=True,
        timeout=60)
    assert result.returncode == 2
    assert "unknown argument '--epochs=3'" in result.stderr
    assert not out.exists()  # nothing generated, nothing measured


def test_accuracy_method_overrides_read_flag_spellings():
    sys.path.insert(0, BENCHMARKS)
    import accuracy

    method, settings = accuracy.parse_method(
        "ogm_ge[ogm_premise_check=false;probe_encoders=True;alpha=1;"
        "ogm_apply_to=learning_rate;ogm_end_epoch=9]")
    assert method == "ogm_ge"
    assert settings == {"ogm_premise_check": False, "probe_encoders": True,
                        "alpha": 1, "ogm_apply_to": "learning_rate",
                        "ogm_end_epoch": 9}
    # As scripts/train.py reads the flags; older commands' spellings too.
    assert accuracy.parse_method(
        "gblend_online[noise_z=none;blend_scope=\"all\";views=fac;"
        "estimation_epochs=5;alpha=strong]")[1] == {
            "noise_z": None, "blend_scope": "all", "views": ("fac",),
            "estimation_epochs": 5, "alpha": "strong"}
    assert accuracy.parse_method("naive[noise_z=None;views=('fac', 'mor')]"
                                 )[1] == {"noise_z": None,
                                          "views": ("fac", "mor")}
    with pytest.raises(ValueError, match="unknown field 'alhpa'"):
        accuracy.parse_method("ogm_ge[alhpa=1]")


def test_result_stamps_show_no_machine_paths():
    sys.path.insert(0, BENCHMARKS)
    import results_files

    repo = results_files.REPO
    command = results_files.command_line([
        "/anywhere/benchmarks/accuracy.py", "--data_dirs=/work/data/avd_weak,"
        "/tmp/avd_clean/", f"--out={repo}/benchmarks/results/x", "/home/u/f",
        "--methods=naive", "--alpha=0.5"])
    assert command == (
        "python benchmarks/accuracy.py --data_dirs=avd_weak,avd_clean "
        "--out=benchmarks/results/x f --methods=naive --alpha=0.5")


def test_committed_results_name_no_machine_path():
    import glob
    import re

    stamped = []
    for path in glob.glob(os.path.join(BENCHMARKS, "results", "**", "*.md"),
                          recursive=True):
        for line in open(path, encoding="utf-8"):
            if line.startswith("Made by:"):
                if re.search(r"[ =,]/(work|tmp|root|home)/", line):
                    stamped.append(os.path.relpath(path, BENCHMARKS))
    assert not stamped, stamped


def test_resume_reads_runs_recorded_before_a_later_setting(tmp_path):
    sys.path.insert(0, BENCHMARKS)
    import accuracy
    from keras_gblend.experiment import config as experiment_config

    reference = experiment_config.ExperimentConfig(method="ogm_ge")
    excess = dataclasses.replace(reference, ogm_coefficient="excess")
    old = dataclasses.asdict(reference)
    del old["ogm_coefficient"]  # a run recorded before the setting existed
    path = tmp_path / "p.runs.jsonl"
    path.write_text(json.dumps({
        "config": json.dumps(old, sort_keys=True, default=str),
        "commit": "abc", "run": {"seed": 0}}) + "\n")
    progress = accuracy.RunProgress(str(path), resume=True)
    # It ran at the value that kept the earlier behaviour, and only there.
    assert progress.finished(reference) == {"seed": 0}
    assert progress.finished(excess) is None
    assert progress.reused_commits == ["abc"]
