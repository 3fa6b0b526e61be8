"""Kill-and-resume: a SIGKILLed training run, restarted with the same
command, ends with the same weights as an uninterrupted run."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "scripts",
                      "train.py")
FLAGS = [
    "--method=gblend_online+ogm_ge", "--epochs=8", "--warmup_epochs=2",
    "--first_super_epoch=2",
    "--super_epoch=2", "--estimation_epochs=1", "--deterministic",
    "--verbose=0",
]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _command(model_dir):
    return [sys.executable, SCRIPT, *FLAGS, f"--model_dir={model_dir}"]


def _final(model_dir):
    model = keras.saving.load_model(os.path.join(model_dir, "model.keras"))
    metrics = json.load(open(os.path.join(model_dir, "metrics.json")))
    return model, metrics


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("uninterrupted"))
    done = subprocess.run(_command(model_dir), env=ENV, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return _final(model_dir)


@pytest.mark.parametrize("after_checkpoint", [1, 3])
def test_killed_run_resumes_to_identical_weights(reference, tmp_path, after_checkpoint):
    """Killed at a random moment after the given epoch's checkpoint."""
    model_dir = str(tmp_path)
    index = os.path.join(model_dir, "checkpoints", f"ckpt-{after_checkpoint}.index")
    process = subprocess.Popen(_command(model_dir), env=ENV,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not os.path.exists(index) and process.poll() is None:
        assert time.time() < deadline, "no checkpoint was written"
        time.sleep(0.02)
    time.sleep(random.Random(after_checkpoint).uniform(0.05, 0.4))
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "finished before the kill"
    assert not os.path.exists(os.path.join(model_dir, "metrics.json"))

    resumed = subprocess.run(_command(model_dir), env=ENV, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    model, metrics = _final(model_dir)
    reference_model, reference_metrics = reference
    assert metrics["initial_epoch"] >= 1  # it did resume, not restart
    for ours, theirs in zip(model.get_weights(), reference_model.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    assert metrics["blend_weights"] == reference_metrics["blend_weights"]
    # The schedule position and estimates survived the kill, and the
    # history covers the whole run, the epochs before the kill included
    # (read back from the run's logs), as the uninterrupted run's does.
    history, reference_history = metrics["history"], reference_metrics["history"]
    assert history["gblend/estimation_epoch"] == (
        reference_history["gblend/estimation_epoch"])
    assert len(history["loss"]) == 8
    np.testing.assert_allclose(history["loss"], reference_history["loss"],
                               rtol=1e-6)
    # Its wall time includes the seconds trained before the kill.
    progress = json.load(open(os.path.join(model_dir, "checkpoints",
                                           "progress.json")))
    assert metrics["wall_time_s"] > progress[str(metrics["initial_epoch"])] > 0
