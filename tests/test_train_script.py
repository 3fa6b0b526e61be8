import json
import os
import subprocess
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "scripts", "train.py")


def _run(*flags, cwd=None):
    return subprocess.run(
        [sys.executable, SCRIPT, *flags],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )


def test_train_script_writes_metrics_and_tensorboard(tmp_path):
    result = _run(
        "--views=fac,mor",
        "--method=gblend_online",
        "--epochs=3",
        "--warmup_epochs=1",
        "--super_epoch=1",
        "--estimation_epochs=1",
        "--verbose=0",
        f"--model_dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.load(open(tmp_path / "metrics.json"))
    assert set(metrics["test_accuracy"]) == {"fac", "mor", "joint"}
    # Three epochs of SGD on the strong view beat chance (10%) by far.
    assert metrics["test_accuracy"]["fac"] > 0.5
    assert sum(metrics["blend_weights"].values()) == pytest.approx(1.0, abs=1e-5)
    assert metrics["history"]["gblend/estimation_epoch"] == [-1.0, 1.0, 2.0]
    assert list((tmp_path / "logs").rglob("*.tfevents*"))
    assert (tmp_path / "model.keras").exists()


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--views=fac,rgb", "--views: unknown ['rgb']"),
        ("--method=magic", "--method"),
        ("--epochs=0", "--epochs"),
    ],
)
def test_bad_flags_exit_nonzero_naming_the_flag(flag, message, tmp_path):
    result = _run(flag, f"--model_dir={tmp_path}")
    assert result.returncode != 0
    assert message in result.stderr
    assert not (tmp_path / "metrics.json").exists()
