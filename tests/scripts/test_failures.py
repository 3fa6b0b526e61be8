"""Failures of the scripts: nothing already saved is lost, and every error
is one line naming the flag, file or value."""

import json
import os
import shutil

import numpy as np
import pytest

import keras_gblend as kg
from keras_gblend.experiment import config as experiment_config
from keras_gblend.experiment import run as experiment_run
from keras_gblend.data.layout import MediaError


def _train(run_script, *flags):
    return run_script("scripts", "train.py", "--verbose=0", *flags, timeout=300)


def _files(folder):
    """`{relative path: bytes}` of every file a run wrote."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, folder)] = f.read()
    return found


def _one_line_error(result, *needles):
    lines = [l for l in result.stderr.strip().splitlines()
             if "error" in l.lower() and not l.startswith(("I0000", "W0000"))]
    assert lines and all(n in lines[-1] for n in needles), result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    return lines[-1]


def test_rerunning_a_finished_run_keeps_everything_it_wrote(
        tmp_path, run_script):
    run = tmp_path / "run"
    first = _train(run_script, "--method=naive", "--epochs=2",
                   f"--model_dir={run}")
    assert first.returncode == 0, first.stderr[-2000:]
    saved = _files(run)
    metrics = json.loads(saved["metrics.json"])
    assert len(metrics["history"]["loss"]) == 2 and metrics["wall_time_s"] > 0
    for flags in ([], ["--epochs=1"]):
        again = _train(run_script, "--method=naive", "--epochs=2", *flags,
                       f"--model_dir={run}")
        assert again.returncode == 0, again.stderr[-2000:]
        assert "already holds all 2 epochs" in again.stdout
        # Nothing written is rewritten (TensorBoard logs, checkpoints,
        # config.json, flags.txt, metrics.json, model.keras).
        assert _files(run) == saved
    # The printed results are the saved ones.
    printed = json.loads(again.stdout[again.stdout.index("{"):
                                      again.stdout.rindex("}") + 1])
    assert printed["test_accuracy"] == metrics["test_accuracy"]


def test_a_finished_run_missing_its_metrics_writes_them_complete(tmp_path):
    run = tmp_path / "run"
    config = experiment_config.ExperimentConfig(method="naive", epochs=2, verbose=0,
                                         model_dir=str(run))
    first = experiment_run.run_experiment(config)
    os.remove(run / "metrics.json")  # killed after its last checkpoint
    again = experiment_run.run_experiment(config)
    assert again["test_accuracy"] == pytest.approx(first["test_accuracy"])
    assert again["history"]["loss"] == pytest.approx(first["history"]["loss"])
    assert json.load(open(run / "metrics.json"))["test_accuracy"] == (
        again["test_accuracy"])


def test_a_diverged_run_stops_with_an_error_and_writes_no_results(
        tmp_path, run_script):
    run = tmp_path / "run"
    result = _train(run_script, "--method=naive", "--epochs=3",
                    "--learning_rate=1e30",
                    f"--model_dir={run}")
    assert result.returncode == 1
    line = _one_line_error(result, "Non-finite loss", "epoch 1",
                           "keeps its checkpoint after epoch 0")
    assert "nan" in line.lower() or "inf" in line.lower()
    assert not (run / "metrics.json").exists()
    assert not (run / "model.keras").exists()
    assert kg.ResumableCheckpoint.saved_epoch(
        str(run / "checkpoints")) == 0


def test_the_last_good_checkpoint_survives_a_divergence_mid_run(
        tmp_path, toy_data, compiled_toy_model):
    import keras
    import keras_gblend as kg

    class Diverge(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:  # as if the learning rate blew up here
                for variable in self.model.trainable_variables:
                    variable.assign(np.full(variable.shape, np.nan))

    x, y = toy_data(n=64)
    model = compiled_toy_model()
    with pytest.raises(FloatingPointError, match="epoch 3"):
        model.fit(x, y, epochs=4, verbose=0, callbacks=[
            Diverge(), kg.RaiseOnNonFiniteLoss(),
            kg.ResumableCheckpoint(str(tmp_path))])
    assert kg.ResumableCheckpoint.saved_epoch(str(tmp_path)) == 2
    restored = compiled_toy_model(seed=2)
    kg.ResumableCheckpoint.restore(restored, str(tmp_path))
    assert all(np.all(np.isfinite(v.numpy()))
               for v in restored.trainable_variables)


@pytest.mark.parametrize(
    "flags, needles",
    [
        (["--learning_rate=inf"], ["--learning_rate", "finite"]),
        (["--momentum=nan"], ["--momentum"]),
        (["--method=gblend_online", "--epochs=2", "--warmup_epochs=5"],
         ["--warmup_epochs", "never estimate"]),
        (["--views=fac,fac"], ["--views", "['fac'] given more than once"]),
        (["--method=ogm_ge", "--ogm_start_epoch=5", "--ogm_end_epoch=2"],
         ["--ogm_end_epoch", "before ogm_start_epoch"]),
    ],
)
def test_bad_settings_are_one_line_naming_the_flag(
        flags, needles, tmp_path, run_script):
    result = _train(run_script, *flags, f"--model_dir={tmp_path}/run")
    assert result.returncode == 2
    _one_line_error(result, *needles)
    assert len(result.stderr.strip().splitlines()) < 8  # no page of help
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_model_dir_that_is_a_file_is_named(tmp_path, run_script):
    path = tmp_path / "a_file"
    path.write_text("not a folder")
    result = _train(run_script, f"--model_dir={path}")
    assert result.returncode == 2
    _one_line_error(result, "--model_dir", "is a file")
    assert path.read_text() == "not a folder"


def test_evaluate_errors_name_the_flag_or_setting(tmp_path, run_script):
    run = tmp_path / "run"
    assert _train(run_script, "--method=naive", "--epochs=1",
                  f"--model_dir={run}").returncode == 0
    too_many = run_script("scripts", "evaluate.py", f"--model_dir={run}",
                          "--top_k=20")
    assert too_many.returncode == 2
    _one_line_error(too_many, "--top_k", "more than the 10 classes")
    config = json.load(open(run / "config.json"))
    json.dump({**config, "colour": "red"}, open(run / "config.json", "w"))
    unknown = run_script("scripts", "evaluate.py", f"--model_dir={run}")
    assert unknown.returncode == 2
    _one_line_error(unknown, "config.json", "unknown setting(s) ['colour']")


def test_estimate_weights_checks_its_output_before_working(
        tmp_path, run_script):
    result = run_script("scripts", "estimate_weights.py",
                        f"--out={tmp_path}/missing/x.json")
    assert result.returncode == 2
    _one_line_error(result, "--out", "does not exist")


# ------------------------------------------------------------- AV-digits
def _copy(av_digits_dir, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(av_digits_dir, copy)
    return copy


def _av_config(data_dir, run, epochs=1):
    return experiment_config.ExperimentConfig(
        dataset="av_digits", data_dir=str(data_dir), method="naive",
        epochs=epochs, verbose=0,
        model_dir=None if run is None else str(run))


def test_resuming_on_other_data_is_refused_naming_it(av_digits_dir, tmp_path):
    data = _copy(av_digits_dir, tmp_path)
    run = tmp_path / "run"
    experiment_run.run_experiment(_av_config(data, run))
    saved = _files(run)
    rows = (data / "train.csv").read_text().splitlines()
    clip, label = rows[0].split(",")
    rows[0] = f"{clip},{(int(label) + 1) % 10}"  # one relabelled clip
    (data / "train.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=r"data_dir: .* is not the data .*"
                       r"\(train.csv changed\)"):
        experiment_run.run_experiment(_av_config(data, run, epochs=2))
    assert _files(run) == saved


def test_a_truncated_wav_with_a_valid_header_is_named(av_digits_dir, tmp_path):
    data = _copy(av_digits_dir, tmp_path)
    wav = sorted((data / "AudioWAV").iterdir())[0]
    with open(wav, "r+b") as f:
        f.truncate(100)  # RIFF/WAVE header intact, samples cut short
    with pytest.raises(MediaError, match=f"audio file .*{wav.name} does not decode"):
        experiment_run.run_experiment(_av_config(data, None))


def test_a_set_too_small_for_a_holdout_says_so(tmp_path):
    import keras_gblend as kg

    kg.datasets.make_av_digits(str(tmp_path / "tiny"), n=20, seed=0)
    with pytest.raises(ValueError, match=r"data_dir: .* G-Blend needs two or more"):
        kg.datasets.load_av_digits(str(tmp_path / "tiny"))


def test_check_decodable_names_or_skips_a_truncated_jpeg(av_digits_dir, tmp_path):
    from keras_gblend.data import layout as layout_lib
    import keras_gblend as kg

    data = _copy(av_digits_dir, tmp_path)
    clips = layout_lib.read_split(kg.datasets.av_digits.layout(str(data)), "test")
    frame = clips.frame_paths[2][1]
    with open(frame, "r+b") as f:
        f.truncate(200)  # JPEG magic intact: read_split's checks pass
    clips = layout_lib.read_split(kg.datasets.av_digits.layout(str(data)), "test")
    with pytest.raises(MediaError, match=f"frame {frame} does not decode"):
        layout_lib.check_decodable(clips)
    kept = layout_lib.check_decodable(clips, on_error="skip")
    assert len(kept) == len(clips) - 1 and frame in kept.skipped[-1][1]


def test_evaluate_finds_moved_data_with_data_dir(
        av_digits_dir, tmp_path, run_script):
    data = _copy(av_digits_dir, tmp_path)
    run = tmp_path / "run"
    trained = _train(run_script, "--dataset=av_digits", f"--data_dir={data}",
                     "--method=naive", "--epochs=1", f"--model_dir={run}")
    assert trained.returncode == 0, trained.stderr[-2000:]
    moved = tmp_path / "moved"
    data.rename(moved)
    lost = run_script("scripts", "evaluate.py", f"--model_dir={run}")
    assert lost.returncode == 2
    _one_line_error(lost, "--data_dir", "may have moved")
    found = run_script("scripts", "evaluate.py", f"--model_dir={run}",
                       f"--data_dir={moved}", "--top_k=2")
    assert found.returncode == 0, found.stderr[-2000:]
    report = json.load(open(run / "evaluation.json"))
    metrics = json.load(open(run / "metrics.json"))
    assert report["joint"]["top1"] == pytest.approx(
        metrics["test_accuracy"]["joint"], abs=1e-6)
