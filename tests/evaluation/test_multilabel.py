"""Multi-label tasks: sigmoid heads, OGM-GE's score, G-Blend, mAP, and the
paper's sub-sampling algorithm."""

import json

import keras
import numpy as np
import pytest

import keras_gblend as kg
from keras_gblend.evaluation import multilabel
from keras_gblend.evaluation.training_history import read_event_scalars


def _multi_label_data(n=160, seed=0):
    """Four labels: a decides labels 0 and 1, v labels 2 and 3 (noisily)."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, 4)) < 0.4).astype("float32")
    x = {"a": (labels[:, :2] @ rng.normal(size=(2, 6)) * 2
               + 0.3 * rng.normal(size=(n, 6))).astype("float32"),
         "v": (labels[:, 2:] @ rng.normal(size=(2, 4)) * 2
               + 1.0 * rng.normal(size=(n, 4))).astype("float32")}
    return x, labels


def _model(**kwargs):
    keras.utils.set_random_seed(0)
    encoders = {m: keras.Sequential(
        [keras.Input((d,)), keras.layers.Dense(8, activation="relu")],
        name=f"enc_{m}") for m, d in (("a", 6), ("v", 4))}
    model = kg.late_fusion_model(encoders, 4, multi_label=True, **kwargs)
    model.compile(keras.optimizers.SGD(0.2),
                  keras.losses.BinaryCrossentropy(from_logits=True),
                  loss_weights=[1 / 3] * 3,
                  metrics=multilabel.multi_label_metrics())
    return model


def test_mean_auc_is_the_mean_of_each_labels_pairwise_roc_auc():
    y_true = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.9],
                              [0.8, 0.3]])
    # Label 0: positives 0.9, 0.7 against negatives 0.2, 0.8 rank above
    # in 3 of 4 pairs; label 1 is ranked perfectly: (0.75 + 1) / 2.
    assert multilabel.mean_auc(y_true, probabilities) == pytest.approx(
        0.875, abs=1e-3)
    assert multilabel.mean_auc(y_true, 1 - probabilities) == pytest.approx(
        0.125, abs=1e-3)
    with pytest.raises(ValueError, match=r"\(4, 2\).*\(4, 3\)"):
        multilabel.mean_auc(y_true, np.zeros((4, 3)))


def test_multi_label_trains_with_gblend_and_ogm():
    x, y = _multi_label_data()
    model = _model(modulation=kg.OGMGE(alpha=0.3, seed=0))
    estimate = kg.estimate_blend_weights(model, (x, y), (x, y), epochs=2,
                                         batch_size=32, metric="accuracy")
    assert estimate.fused and np.isclose(estimate.weights.sum(), 1.0)
    # Hamming errors: each head's error is a share of labels, in [0, 1].
    assert np.all((estimate.holdout_end >= 0) & (estimate.holdout_end <= 1))
    history = model.fit(x, y, epochs=15, batch_size=32, verbose=0)
    assert history.history["joint_mauc"][-1] > 0.9
    scores = model.predict(x, verbose=0)
    # Each uni-modal head knows its own labels only.
    assert multilabel.mean_average_precision(
        y[:, :2], scores["a"][:, :2]) > 0.9
    assert multilabel.mean_average_precision(
        y[:, 2:], scores["a"][:, 2:]) < 0.75
    assert "ogm/coefficient/a" in history.history
    with pytest.raises(ValueError, match="multi-label"):
        kg.select_answer(model, (x, y))


def test_average_precision_by_hand():
    # Ranks 1..4: hits at ranks 1 and 3 -> (1/1 + 2/3) / 2.
    assert multilabel.average_precision(
        np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.1])
    ) == pytest.approx((1 + 2 / 3) / 2)
    truth = np.array([[1, 0], [0, 1], [1, 0]])
    scores = np.array([[0.9, 0.2], [0.1, 0.3], [0.2, 0.8]])
    # Label 0: hits at ranks 1, 2 -> 1. Label 1: ranks (0.8, 0.3, 0.2):
    # its one hit is rank 2 -> 0.5. mAP 0.75.
    assert multilabel.mean_average_precision(truth, scores) == 0.75
    with pytest.raises(ValueError, match="examples, labels"):
        multilabel.mean_average_precision(truth, scores[:, :1])


def test_subsample_and_balance_reaches_the_target_volume():
    labels = np.eye(3, dtype=int)[[0] * 1000 + [1] * 100 + [2] * 9]
    rows, kept = multilabel.subsample_and_balance(labels, 10, 50, seed=0)
    assert kept.tolist() == [0, 1]  # label 2 below M = 10: removed
    assert np.bincount(labels[rows].argmax(1), minlength=3).tolist() == [
        50, 50, 0]
    # Correlated labels: label 1 is on every example, label 0 on half,
    # label 2 on a random half (volumes 300, 600, 310). Selecting through
    # labels 0 and 2 adds to label 1, so it passes N; the rarer labels
    # reach N and the imbalance shrinks from 2.0 to 1.5.
    rng = np.random.default_rng(1)
    multi = np.zeros((600, 3), int)
    multi[:300, [0, 1]] = 1
    multi[300:, 1] = 1
    multi[rng.random(600) < 0.5, 2] = 1
    rows, _ = multilabel.subsample_and_balance(multi, 1, 40, seed=0)
    volumes = multi[rows].sum(axis=0)
    assert volumes[0] >= 40 and volumes[2] >= 40
    assert volumes.max() / volumes.min() < 1.6
    assert len(set(rows.tolist())) == len(rows)
    # Same seed, same selection.
    again, _ = multilabel.subsample_and_balance(multi, 1, 40, seed=0)
    np.testing.assert_array_equal(rows, again)
    with pytest.raises(ValueError, match="multi-hot"):
        multilabel.subsample_and_balance(np.array([0, 1, 2]), 1, 5)


def test_multi_label_metrics_read_logits_and_differ_by_curve():
    # Correctly ranked, all logits negative: read as logits (sigmoid) the
    # ranking is perfect; read as probabilities every score sits below
    # every threshold.
    mauc, mean_ap = multilabel.multi_label_metrics()
    assert (mauc.name, mean_ap.name) == ("mauc", "map")
    truth = np.array([[1, 0], [0, 1], [0, 0], [1, 1]], "float32")
    logits = np.array([[-1, -4], [-4, -1], [-4, -4], [-1, -1]], "float32")
    for metric in (mauc, mean_ap):
        metric.update_state(truth, logits)
        assert float(metric.result()) == pytest.approx(1.0, abs=0.02)
    # One positive ranked second of four: ROC AUC 2/3, average precision 1/2.
    mauc, mean_ap = multilabel.multi_label_metrics()
    truth = np.array([[0], [1], [0], [0]], "float32")
    logits = np.array([[3.0], [1.0], [-1.0], [-3.0]], "float32")
    mauc.update_state(truth, logits)
    mean_ap.update_state(truth, logits)
    assert float(mauc.result()) == pytest.approx(2 / 3, abs=0.02)
    assert float(mean_ap.result()) < float(mauc.result()) - 0.1


def test_subsample_and_balance_validates_and_keeps_a_label_at_m():
    labels = np.eye(2, dtype=int)[[0] * 5 + [1] * 4]
    _, kept = multilabel.subsample_and_balance(labels, 5, 3)
    assert kept.tolist() == [0]  # volume 5 >= M = 5 kept, 4 removed
    rows, _ = multilabel.subsample_and_balance(labels, 0, 1)
    assert len(rows) == 2  # N = 1 is allowed: one example per label
    for bad in (dict(labels=np.array([0, 1, 1]), m=1, n=5),  # not 2-D
                dict(labels=labels, m=-1, n=5), dict(labels=labels, m=1, n=0)):
        with pytest.raises(ValueError):
            multilabel.subsample_and_balance(bad["labels"], bad["m"], bad["n"])


def test_train_script_runs_gblend_on_multi_label_data(tmp_path, run_script):
    run = tmp_path / "run"
    result = run_script("scripts", "train.py", "--dataset=uci_multilabel",
                        "--method=gblend_online", "--epochs=8",
                        "--first_super_epoch=4", "--super_epoch=4",
                        f"--model_dir={run}", "--verbose=0")
    assert result.returncode == 0, result.stderr[-3000:]
    with open(run / "metrics.json") as f:
        metrics = json.load(f)
    assert metrics["answer"] is None  # select_answer is single-label
    assert metrics["history"]["gblend/estimation_epoch"][-1] == 4.0
    assert all(np.isfinite(metrics["history"]["gblend/delta_g/joint"]))
    # mAP well above what a random ranking scores (about the prevalence).
    assert metrics["test_map"]["joint"] > 0.9
    assert metrics["test_map"]["mor"] < metrics["test_map"]["fac"]
    assert 0.9 < metrics["test_mauc"]["joint"] <= 1.0
    holdout_tags = read_event_scalars(str(run / "logs" / "validation"))
    assert {"epoch_joint_map", "epoch_joint_mauc"} <= set(holdout_tags)
    evaluated = run_script("scripts", "evaluate.py", f"--model_dir={run}")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    with open(run / "evaluation.json") as f:
        report = json.load(f)
    for head in ("fac", "mor", "joint"):
        assert report[head]["map"] == pytest.approx(metrics["test_map"][head],
                                                    abs=1e-6)
        assert report[head]["label_accuracy"] == pytest.approx(
            metrics["test_accuracy"][head], abs=1e-4)
        assert report[head]["mauc"] == pytest.approx(
            metrics["test_mauc"][head], abs=1e-4)


def test_multi_label_metrics_average_each_label_not_the_pooled_scores():
    # Each label is ranked perfectly on its own, so per label (macro, the
    # paper's mAUC/mAP) both are 1; pooled over labels (micro) label 1's
    # positives (-2) fall below label 0's negatives (3): ROC AUC 0.75.
    truth = np.array([[1, 0], [0, 1], [1, 0], [0, 1], [0, 0], [0, 0]],
                     "float32")
    logits = np.array([[4, -3], [3, -2], [4, -3], [3, -2], [3, -3],
                       [3, -3]], "float32")
    for metric in multilabel.multi_label_metrics():
        metric.update_state(truth, logits)
        assert float(metric.result()) == pytest.approx(1.0, abs=0.02), \
            metric.name


def test_subsample_and_balance_defaults_and_empty_selection():
    labels = np.eye(3, dtype=int)[[0] * 60 + [1] * 30 + [2] * 12]
    default, _ = multilabel.subsample_and_balance(labels, 1, 10)
    seeded, _ = multilabel.subsample_and_balance(labels, 1, 10, seed=0)
    np.testing.assert_array_equal(default, seeded)
    other, _ = multilabel.subsample_and_balance(labels, 1, 10, seed=1)
    assert not np.array_equal(default, other)
    # Every label below M: nothing is selected, still integer row indices.
    rows, kept = multilabel.subsample_and_balance(labels, 100, 10)
    assert rows.size == 0 and kept.size == 0
    assert rows.dtype == np.int64
    with pytest.raises(ValueError,
                       match=r"^`labels` must be multi-hot \(examples, "
                             r"classes\) of 0 and 1\.$"):
        multilabel.subsample_and_balance(np.array([[0, 2]]), 1, 5)


def test_average_precision_edge_cases():
    # No positive: undefined, NaN (mAP skips it).
    assert np.isnan(multilabel.average_precision(np.zeros(3), [0.1, 0.5, 0.2]))
    # Column vectors read as one label.
    assert multilabel.average_precision(
        np.array([[1], [0], [1]]), np.array([[0.9], [0.8], [0.1]])
    ) == pytest.approx(5 / 6)
    # Hard yes/no predictions given as booleans rank as 1/0: the positives
    # rank first and third (precision 1/1 and 2/3).
    assert multilabel.average_precision(
        np.array([1, 0, 0, 1]), np.array([True, False, True, True])
    ) == pytest.approx((1 + 2 / 3) / 2)
    # Ties are broken by position, the documented order: checked against
    # an explicit stable sort on a set with many ties.
    rng = np.random.default_rng(0)
    scores = (rng.random(300) < 0.5).astype(float)
    truth = (rng.random(300) < 0.3).astype(int)
    order = sorted(range(300), key=lambda i: -scores[i])
    hits = truth[order].astype(bool)
    expected = (np.cumsum(hits) / np.arange(1, 301))[hits].mean()
    assert multilabel.average_precision(truth, scores) == pytest.approx(
        expected, rel=1e-12)
