"""What a new user tries first (issue 26's probe): nothing lost, nothing
silent, one line for every mistake."""

import json
import os
import signal
import subprocess
import sys
import time
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_gblend as kg
from keras_gblend.callbacks import resumable_checkpoint as checkpointing
from keras_gblend.experiment import config as experiment_config, run
from keras_gblend.evaluation import training_history

TESTS = os.path.join(os.path.dirname(__file__), "..")
TRAIN = os.path.join(TESTS, "..", "scripts", "train.py")


@pytest.fixture(scope="module")
def without_tensorflow(tmp_path_factory):
    """An environment in which importing TensorFlow fails loudly: what runs
    in it never imported TensorFlow."""
    fake = tmp_path_factory.mktemp("no_tensorflow")
    (fake / "tensorflow").mkdir()
    (fake / "tensorflow" / "__init__.py").write_text(
        "raise ImportError('TensorFlow was imported')\n")
    return {**os.environ, "PYTHONPATH": str(fake)}


def _script(*flags, env=None, script=TRAIN, timeout=300):
    return subprocess.run([sys.executable, script, *flags], env=env,
                          capture_output=True, text=True, timeout=timeout)


def _one_line(result, status, *needles):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == status, result.stderr[-2000:]
    assert len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith(os.path.basename(TRAIN) + ": error: --")
    assert all(n in lines[0] for n in needles), lines[0]
    return lines[0]


def test_help_is_instant_and_exits_0(without_tensorflow):
    result = _script("--help", env=without_tensorflow)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--gblend_preset" in result.stdout and "--noise_z" in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize("flags, needles", [
    (["--epochs=99999999999999999999"], ["--epochs", "<= 1000000"]),
    (["--batch_size=0"], ["--batch_size", ">= 1"]),
    (["--model_dir="], ["--model_dir", "empty"]),
    (["--noise_z=abc"], ["--noise_z", "not a number"]),
    (["--epoch=3"], ["--epoch"]),
    (["--dataset=uci_paradox", "--data_dir=/tmp"], ["--data_dir", "built in"]),
    (["--dataset=uci_paradox", "--views=fac,mor"], ["--views", "fixed"]),
    (["--views=fac,mor,zer", "--fusion=se_gate"], ["--fusion", "exactly two"]),
    (["--views=fac", "--method=gblend_online"], ["--method", "has one"]),
    (["--strategy=multi_worker"], ["--strategy", "TF_CONFIG"]),
    (["--model_dir=/proc/keras_gblend_run"], ["--model_dir", "cannot write"]),
])
def test_flag_mistakes_are_one_line_before_tensorflow(
        flags, needles, without_tensorflow):
    env = {k: v for k, v in without_tensorflow.items() if k != "TF_CONFIG"}
    _one_line(_script(*flags, env=env), 2, *needles)


def test_a_model_dir_under_a_file_is_one_line(tmp_path, without_tensorflow):
    (tmp_path / "file").write_text("x")
    _one_line(_script(f"--model_dir={tmp_path}/file/run",
                      env=without_tensorflow), 2, "--model_dir",
              "cannot write", "file/run")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root writes into read-only folders")
def test_a_read_only_model_dir_is_one_line(tmp_path, without_tensorflow):
    folder = tmp_path / "read_only"
    folder.mkdir(mode=0o500)
    _one_line(_script(f"--model_dir={folder}/run", env=without_tensorflow),
              2, "--model_dir", "cannot write")


def test_a_run_prints_no_tensorflow_start_up_lines_and_a_short_progress_line(
        tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = _script("--method=gblend_online", "--epochs=2", "--verbose=2",
                     f"--model_dir={tmp_path}/run", env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    for noise in ("I0000", "E0000", "cuInit", "absl::InitializeLog",
                  "cpu_feature_guard"):
        assert noise not in result.stderr, result.stderr[-2000:]
    epoch_lines = [line for line in result.stdout.splitlines()
                   if "val_joint_accuracy" in line]
    assert len(epoch_lines) == 2
    for line in epoch_lines:
        assert "loss:" in line and "joint_accuracy:" in line
        assert "blend_weight/joint:" in line
        assert "fac_loss" not in line and "gblend/" not in line
        assert len(line) < 300
    # The full set is in the logs.
    history = json.load(open(tmp_path / "run" / "metrics.json"))["history"]
    assert "fac_loss" in history and "gblend/delta_g/joint" in history


def test_ctrl_c_is_one_line_saying_where_a_rerun_resumes(tmp_path):
    run = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, TRAIN, "--method=naive", "--epochs=500",
         "--verbose=0", f"--model_dir={run}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # As from a terminal, even where the test runner ignores SIGINT.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    index = run / "checkpoints" / "ckpt-2.index"
    deadline = time.time() + 240
    while not index.exists() and process.poll() is None:
        assert time.time() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    try:
        _, stderr = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        pytest.fail(f"still training 120 s after Ctrl-C: {stderr[-2000:]}")
    lines = stderr.strip().splitlines()
    assert process.returncode == 130, stderr[-2000:]
    assert len(lines) == 1 and "interrupted" in lines[0], stderr[-2000:]
    saved = kg.ResumableCheckpoint.saved_epoch(str(run / "checkpoints"))
    assert saved >= 2 and f"resume after epoch {saved}" in lines[0]


def test_a_full_disk_while_checkpointing_names_the_folder_and_keeps_the_last(
        tmp_path, monkeypatch):
    real_save = tf.train.CheckpointManager.save
    calls = []

    def save(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise tf.errors.ResourceExhaustedError(
                None, None, "{{function_node SaveV2}} ckpt-3_temp/part-0; No "
                "space left on device [Op:SaveV2]")
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(tf.train.CheckpointManager, "save", save)
    config = experiment_config.ExperimentConfig(
        method="naive", epochs=5, verbose=0, model_dir=str(tmp_path / "run"))
    with pytest.raises(checkpointing.CheckpointWriteError) as raised:
        run.run_experiment(config)
    message = str(raised.value)
    assert "No space left on device" in message
    assert str(tmp_path / "run" / "checkpoints") in message
    assert "after epoch 3" in message and "(after epoch 2) is intact" in message
    assert kg.ResumableCheckpoint.saved_epoch(
        str(tmp_path / "run" / "checkpoints")) == 2


def test_unreadable_checkpoints_are_set_aside_and_training_restarts_loudly(
        tmp_path, toy_data, compiled_toy_model):
    x, y = toy_data(n=64)
    folder = str(tmp_path / "checkpoints")
    model = compiled_toy_model()
    model.fit(x, y, epochs=2, verbose=0,
              callbacks=[kg.ResumableCheckpoint(folder)])
    for name in os.listdir(folder):
        if ".data-" in name:  # every checkpoint truncated
            with open(os.path.join(folder, name), "r+b") as f:
                f.truncate(10)
    again = compiled_toy_model(seed=3)
    with pytest.warns(UserWarning, match="starts from scratch") as caught:
        history = again.fit(x, y, epochs=2, verbose=0,
                            callbacks=[kg.ResumableCheckpoint(folder)])
    assert history.epoch == [0, 1]  # restarted, not resumed
    aside = [str(w.message) for w in caught if "moved to" in str(w.message)]
    moved_to = aside[0].split("moved to ")[1].rstrip(".")
    assert os.path.isdir(moved_to)
    assert any(n.startswith("ckpt-1") for n in os.listdir(moved_to))
    assert kg.ResumableCheckpoint.saved_epoch(folder) == 2  # new, readable


def test_tensorboard_listed_first_still_records_the_blend(
        tmp_path, toy_data, compiled_toy_model):
    x, y = toy_data(n=90)
    train, holdout = kg.split_holdout((x, y), fraction=0.25, seed=0)
    model = compiled_toy_model()
    model.fit(*train, epochs=2, verbose=0, callbacks=[
        keras.callbacks.TensorBoard(str(tmp_path)),
        kg.GBlendCallback(holdout, verbose=0)])
    tags = training_history.read_event_scalars(str(tmp_path / "train"))
    for head in model.head_names:
        assert f"epoch_blend_weight/{head}" in tags
        assert f"epoch_gblend/delta_g/{head}" in tags
    assert "epoch_gblend/estimation_epoch" in tags


def test_a_probability_loss_on_logit_heads_is_refused(toy_model, sparse_ce):
    model = toy_model()
    with pytest.raises(ValueError, match=r"Head 'a' outputs logits.*"
                                         r"from_logits=True"):
        model.compile("sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="from_logits"):
        model.compile("sgd", keras.losses.CategoricalCrossentropy())
    model.compile("sgd", sparse_ce())  # logits read as logits: fine


@pytest.mark.parametrize("num_classes", [0, 1, -3, 2.5])
def test_num_classes_below_two_is_refused_naming_it(num_classes):
    encoders = {"a": keras.Sequential([keras.Input((3,)),
                                       keras.layers.Dense(2)])}
    with pytest.raises(ValueError, match="`num_classes` must be an integer"):
        kg.late_fusion_model(encoders, num_classes)
    with pytest.raises(ValueError, match="num_classes"):
        kg.mid_fusion_model(
            {"audio": kg.encoders.spectrogram_trunk((16, 8, 1)),
             "visual": kg.encoders.frames_trunk((2, 8, 8, 1))}, num_classes)


def test_two_gblend_callbacks_in_one_fit_are_refused(
        toy_data, compiled_toy_model):
    x, y = toy_data(n=60)
    model = compiled_toy_model()
    with pytest.raises(ValueError, match="Two GBlendCallbacks"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[
            kg.GBlendCallback((x, y)), kg.GBlendCallback((x, y))])


def test_gblend_on_one_modality_says_so(toy_data, sparse_ce):
    x, y = toy_data(n=60)
    encoders = {"a": keras.Sequential([keras.Input((6,)),
                                       keras.layers.Dense(4)])}
    model = kg.late_fusion_model(encoders, 3)
    model.compile("sgd", sparse_ce())
    with pytest.warns(UserWarning, match="one modality"):
        model.fit({"a": x["a"]}, y, epochs=1, verbose=0,
                  callbacks=[kg.GBlendCallback(({"a": x["a"]}, y),
                                               verbose=0)])


def test_a_holdout_given_as_a_list_of_three_arrays_says_how_to_give_it(
        toy_data):
    x, y = toy_data(n=60)
    with pytest.raises(ValueError, match=r"neither class ids nor one-hot.*"
                                         r"\(x, y\) with x a dict"):
        kg.GBlendCallback([x["a"], x["v"], y])


def test_a_holdout_of_the_wrong_width_is_named(toy_data, compiled_toy_model):
    x, y = toy_data(n=60)
    model = compiled_toy_model()
    wide = ({"a": np.zeros((20, 7), "float32"), "v": x["v"][:20]}, y[:20])
    with pytest.raises(ValueError, match=r"The holdout: modality 'a' has rows "
                                         r"of shape \(7,\).*takes \(6,\)"):
        model.fit(x, y, epochs=1, verbose=0,
                  callbacks=[kg.GBlendCallback(wide, verbose=0)])


def test_an_unbatched_dataset_is_refused_before_any_estimate(
        monkeypatch, toy_data, compiled_toy_model):
    from keras_gblend.gblend import blend_estimator

    estimates = []
    monkeypatch.setattr(blend_estimator.BlendEstimator, "estimate",
                        lambda *a, **k: estimates.append(1))
    x, y = toy_data(n=60)
    model = compiled_toy_model()
    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    with pytest.raises(ValueError, match=r"training dataset is not batched.*"
                                         r"\.batch\(batch_size\)"):
        model.fit(dataset, epochs=1, verbose=0,
                  callbacks=[kg.GBlendCallback((x, y), verbose=0)])
    assert estimates == []


def test_one_hot_labels_under_a_sparse_loss_are_named(
        toy_data, compiled_toy_model):
    x, y = toy_data(n=60)
    model = compiled_toy_model()
    with pytest.raises(ValueError, match=r"one-hot \(shape \(60, 3\)\).*"
                                         r"argmax"):
        model.fit(x, np.eye(3)[y], epochs=1, verbose=0)
    dataset = tf.data.Dataset.from_tensor_slices((x, np.eye(3)[y])).batch(8)
    with pytest.raises(ValueError, match="one-hot"):
        model.fit(dataset, epochs=1, verbose=0)


def test_warnings_count_epochs_from_one_as_the_progress_line_does(
        toy_data, compiled_toy_model):
    x, y = toy_data(n=60)
    model = compiled_toy_model()
    with pytest.warns(UserWarning, match="first estimate is at epoch 4 "
                                         r"\(after warmup_epochs=3\)"):
        model.fit(x, y, epochs=2, verbose=0, callbacks=[
            kg.GBlendCallback((x, y), warmup_epochs=3, verbose=0)])


def test_setup_lists_the_data_folder_as_a_package(REPO):
    # setuptools warns at install (and will stop installing data folders)
    # when a folder holding package data is not in `packages`.
    import setuptools

    captured = {}
    real_setup = setuptools.setup
    setuptools.setup = lambda **kwargs: captured.update(kwargs)
    try:
        source = open(os.path.join(REPO, "setup.py")).read()
        exec(compile(source, "setup.py", "exec"),
             {"__file__": os.path.join(REPO, "setup.py"),
              "__name__": "setup"})
    finally:
        setuptools.setup = real_setup
    for package, patterns in captured["package_data"].items():
        assert package in captured["packages"], package
        folder = os.path.join(REPO, *package.split("."))
        assert os.path.isdir(folder) and os.listdir(folder)


def test_multi_worker_strategy_without_a_cluster_runs_as_one_worker(tmp_path):
    # It failed after epoch 1 in TensorBoard ("Expected scalar shape, saw
    # shape: (1,)"): logs were shaped for a cross-worker reduce that Keras
    # only makes in multi-worker mode.
    program = f"""
import os, sys
sys.path.insert(0, {TESTS!r})
import keras, tensorflow as tf
import keras_gblend as kg
from toy_problem import sparse_ce, toy_data, toy_model
strategy = tf.distribute.MultiWorkerMirroredStrategy()
x, y = toy_data(n=64)
with strategy.scope():
    model = toy_model()
    model.compile("sgd", sparse_ce())
model.fit(x, y, epochs=2, verbose=0, batch_size=16,
          callbacks=[keras.callbacks.TensorBoard({str(tmp_path)!r})])
print("fit done")
"""
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    result = subprocess.run([sys.executable, "-c", program], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "fit done" in result.stdout
    scalars = training_history.read_event_scalars(str(tmp_path / "train"))
    assert sorted(scalars["epoch_loss"]) == [0, 1]
