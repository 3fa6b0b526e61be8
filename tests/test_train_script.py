import json
import os
import subprocess
import sys

import pytest

SCRIPTS = os.path.join(os.path.dirname(__file__), "..", "scripts")


def _run(*flags, script="train.py", cwd=None):
    return subprocess.run(
        [sys.executable, os.path.join(SCRIPTS, script), *flags],
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

    # evaluate.py reloads the saved run and agrees with training's numbers.
    evaluated = _run(f"--model_dir={tmp_path}", "--top_k=3", script="evaluate.py")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    report = json.load(open(tmp_path / "evaluation.json"))
    for head, accuracy in metrics["test_accuracy"].items():
        assert report[head]["top1"] == pytest.approx(accuracy, abs=1e-6)
        assert report[head]["top3"] >= report[head]["top1"]
    assert set(report) == {"fac", "mor", "joint", "fused"}


def test_estimate_weights_script(tmp_path):
    out = tmp_path / "weights.json"
    result = _run("--views=fac,mor", "--estimation_epochs=1", f"--out={out}",
                  script="estimate_weights.py")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.load(open(out))
    assert sum(report["weights"].values()) == pytest.approx(1.0)
    assert set(report["ogr"]) == {"fac", "mor", "joint"}
    bad = _run("--metric=f1", script="estimate_weights.py")
    assert bad.returncode != 0 and "--metric" in bad.stderr
    missing = _run(f"--model_dir={tmp_path}/none", script="evaluate.py")
    assert missing.returncode != 0 and "--model_dir" in missing.stderr


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
