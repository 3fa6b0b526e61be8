import json
import math

import pytest

from keras_gblend.evaluation.training_history import read_event_scalars


def _run(run_script, *flags, script="train.py", cwd=None):
    return run_script("scripts", script, *flags, cwd=cwd, timeout=300)


def test_train_script_writes_metrics_tensorboard_and_plots(
        tmp_path, same_values, run_script):
    result = _run(
        run_script,
        "--views=fac,mor",
        "--method=gblend_online+ogm_ge",
        "--epochs=3",
        "--warmup_epochs=1",
        "--first_super_epoch=1",
        "--super_epoch=1",
        "--noise_z=0",
        "--estimation_epochs=1",
        "--ogr_monitor",
        "--verbose=0",
        f"--model_dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.load(open(tmp_path / "metrics.json"))
    assert set(metrics["test_accuracy"]) == {"fac", "mor", "joint"}
    assert metrics["reported_head"] == "joint"
    # Three epochs of SGD on the strong view beat chance (10%) by far.
    assert metrics["test_accuracy"]["fac"] > 0.5
    history = metrics["history"]
    assert history["gblend/estimation_epoch"] == [-1.0, 1.0, 2.0]
    # The final weights are the last estimate's, logged every epoch.
    assert metrics["blend_weights"] == pytest.approx(
        {h: history[f"blend_weight/{h}"][-1] for h in ("fac", "mor", "joint")})
    assert history["blend_weight/joint"][0] == pytest.approx(1 / 3)
    assert history["blend_weight/joint"][1] != pytest.approx(1 / 3)
    # The answer chosen on the holdout is reported next to the joint head.
    assert set(metrics["answer"]) == {"weights", "holdout_accuracy",
                                      "test_accuracy"}
    assert sum(metrics["answer"]["weights"].values()) == pytest.approx(1.0)
    assert metrics["answer"]["test_accuracy"] > 0.5
    assert (tmp_path / "model.keras").exists()
    assert "--method=gblend_online+ogm_ge" in (tmp_path / "flags.txt").read_text()

    # Every documented TensorBoard tag is there, with the History's values.
    documented = [
        f"{figure}/{head}"
        for head in ("fac", "mor", "joint")
        for figure in ("blend_weight", "gblend/delta_o", "gblend/delta_g",
                       "gblend/ogr", "gblend/delta_g_se", "gblend/delta_o_se",
                       "ogr_monitor/overfitting",
                       "ogr_monitor/delta_o", "ogr_monitor/delta_g",
                       "ogr_monitor/ogr")
    ] + [f"ogm/{kind}/{m}" for kind in ("coefficient", "ratio", "slowed")
         for m in ("fac", "mor")]
    train_tags = read_event_scalars(str(tmp_path / "logs" / "train"))
    holdout_tags = read_event_scalars(str(tmp_path / "logs" / "validation"))
    for key in documented + [f"{h}_loss" for h in ("fac", "mor", "joint")]:
        steps = train_tags[f"epoch_{key}"]
        assert sorted(steps) == [0, 1, 2], key
        assert same_values([steps[s] for s in range(3)], history[key]), key
    for head in ("fac", "mor", "joint"):
        steps = holdout_tags[f"epoch_{head}_loss"]
        assert same_values([steps[s] for s in range(3)], history[f"val_{head}_loss"])
    # OGM-GE slowed a modality at least once; G-Blend estimated finite OGRs.
    assert min(history["ogm/coefficient/fac"] + history["ogm/coefficient/mor"]) < 1
    assert all(math.isfinite(v) for v in history["gblend/ogr/joint"][1:])

    # evaluate.py reloads the saved run and agrees with training's numbers.
    evaluated = _run(run_script, f"--model_dir={tmp_path}", "--top_k=3",
                     script="evaluate.py")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    report = json.load(open(tmp_path / "evaluation.json"))
    for head, accuracy in metrics["test_accuracy"].items():
        assert report[head]["top1"] == pytest.approx(accuracy, abs=1e-6)
        assert report[head]["top3"] >= report[head]["top1"]
    assert set(report) == {"fac", "mor", "joint", "fused", "answer"}
    assert report["answer"]["weights"] == pytest.approx(
        metrics["answer"]["weights"])
    assert report["answer"]["top1"] == pytest.approx(
        metrics["answer"]["test_accuracy"], abs=1e-6)

    # plot_history.py draws the run from its folder.
    plotted = _run(run_script, f"--model_dir={tmp_path}",
                   script="plot_history.py")
    assert plotted.returncode == 0, plotted.stderr[-2000:]
    assert (tmp_path / "history.png").read_bytes()[:4] == b"\x89PNG"
    empty = tmp_path / "empty"
    empty.mkdir()
    refused = _run(run_script, f"--model_dir={empty}",
                   script="plot_history.py")
    assert refused.returncode != 0 and "--model_dir" in refused.stderr


def test_estimate_weights_script(tmp_path, run_script):
    out = tmp_path / "weights.json"
    result = _run(run_script, "--views=fac,mor", "--estimation_epochs=1",
                  f"--out={out}",
                  "--fusion=sum", "--optimizer=adam", script="estimate_weights.py")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.load(open(out))
    # The weights follow from the reported figures (ogr's formula).
    from keras_gblend.gblend import ogr
    heads = ("fac", "mor", "joint")
    expected = ogr.updated_blend_weights(
        [report["previous_weights"][h] for h in heads],
        [report["delta_g"][h] for h in heads],
        [report["delta_o"][h] for h in heads],
        delta_g_se=[report["delta_g_se"][h] for h in heads],
        delta_o_se=[report["delta_o_se"][h] for h in heads])
    assert [report["weights"][h] for h in heads] == pytest.approx(expected)
    assert set(report["ogr"]) == set(heads)
    bad = _run(run_script, "--metric=f1", script="estimate_weights.py")
    assert bad.returncode != 0 and "--metric" in bad.stderr
    missing = _run(run_script, f"--model_dir={tmp_path}/none",
                   script="evaluate.py")
    assert missing.returncode != 0 and "--model_dir" in missing.stderr


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--views=fac,rgb", "--views: unknown ['rgb']"),
        ("--method=magic", "--method"),
        ("--epochs=0", "--epochs"),
        ("--method=unimodal:pix", "--method: 'unimodal:pix' names no modality"),
        ("--optimizer=adam --momentum=0.5", "--momentum applies to --optimizer=sgd"),
        ("--optimizer=rmsprop", "--optimizer"),
        ("--lr_schedule=step", "--lr_schedule"),
    ],
)
def test_bad_flags_exit_nonzero_naming_the_flag(
        flag, message, tmp_path, run_script):
    result = _run(run_script, *flag.split(), f"--model_dir={tmp_path}")
    assert result.returncode != 0
    assert message in result.stderr
    assert not (tmp_path / "metrics.json").exists()


def test_evaluate_fuses_only_the_heads_with_weight(tmp_path, run_script):
    # Naive fusion blends the joint head alone (blend weight 1, the others
    # 0: probes): its fused prediction is the joint head's.
    trained = _run(run_script, "--method=naive", "--epochs=1", "--verbose=0",
                   f"--model_dir={tmp_path}")
    assert trained.returncode == 0, trained.stderr[-2000:]
    evaluated = _run(run_script, f"--model_dir={tmp_path}", "--top_k=2",
                     script="evaluate.py")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    report = json.load(open(tmp_path / "evaluation.json"))
    assert report["fused"] == report["joint"]
    assert report["fac"]["top1"] != report["joint"]["top1"]
