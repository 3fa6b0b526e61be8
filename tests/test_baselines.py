"""The G-Blend paper's baselines and fusion architectures."""

import keras
import numpy as np
import pytest

import keras_gblend as kg
from keras_gblend.experiment import build, config as experiment_config, methods, run
from keras_gblend.networks import fusion_layers
from conftest import (
    NUM_CLASSES,
    assert_saves_and_loads,
    sparse_ce,
    toy_data,
    toy_model,
)


def test_uncertainty_weighting_matches_kendall_by_hand():
    # Loss = sum_i (exp(-s_i) L_i + s_i); d/ds_i = 1 - exp(-s_i) L_i.
    x, y = toy_data(n=32)
    model = toy_model(seed=0)
    model = kg.BlendedModel.from_config(
        {**model.get_config(), "loss_weighting": "uncertainty"})
    model.compile(keras.optimizers.SGD(0.5), sparse_ce())
    s = np.array([0.3, -0.2, 0.1], dtype="float32")
    model.log_variances.assign(s)
    y_pred = model(x)
    losses = np.array([float(v) for v in model.compute_head_losses(
        y, y_pred)])
    import tensorflow as tf
    with tf.GradientTape() as tape:
        loss = model.compute_loss(x, y, model(x))
    gradient = tape.gradient(loss, model.log_variances)
    np.testing.assert_allclose(
        float(loss), np.sum(np.exp(-s) * losses + s), rtol=1e-5)
    np.testing.assert_allclose(gradient, 1 - np.exp(-s) * losses, rtol=1e-4)
    # Training moves s_i towards log L_i: the head with the higher loss
    # (v, mostly noise) ends with the smaller weight exp(-s_i).
    model.log_variances.assign(np.zeros(3, "float32"))
    model.fit(x, y, epochs=20, batch_size=32, verbose=0)
    learned = model.learned_loss_weights
    assert learned["v"] < 0.7 * learned["a"]
    reloaded = kg.BlendedModel.from_config(model.get_config())
    assert reloaded.loss_weighting == "uncertainty"


def test_pretrain_finetune_trains_unimodal_then_fused():
    x, y = toy_data(n=64)
    model = toy_model(seed=0, blend_scope="all")
    model.compile(keras.optimizers.SGD(0.1), sparse_ce(),
                  loss_weights=[1.0, 1.0, 0.0])
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(dict(self.model.blend_weights))
    joint_kernel = model.get_layer("joint").kernel
    model.fit(x, y, epochs=1, verbose=0,
              callbacks=[kg.PretrainFinetune(2), Record()])
    start = joint_kernel.numpy().copy()
    model.fit(x, y, epochs=2, verbose=0,
              callbacks=[kg.PretrainFinetune(2), Record()])
    # Epochs 0-1 pre-train: the joint classifier (weight 0, scope 'all')
    # does not move; from epoch 2 only the joint head trains.
    np.testing.assert_array_equal(start, joint_kernel.numpy())
    assert [w["joint"] for w in seen] == [0.0, 0.0, 0.0]
    model.fit(x, y, epochs=4, initial_epoch=2, verbose=0,
              callbacks=[kg.PretrainFinetune(2), Record()])
    assert seen[-1] == {"a": 0.0, "v": 0.0, "joint": 1.0}
    assert not np.array_equal(start, joint_kernel.numpy())
    with pytest.raises(ValueError, match="pretrain_epochs"):
        kg.PretrainFinetune(0)


def test_methods_start_from_the_papers_weights():
    heads = ("a", "v", "joint")
    assert methods.starting_loss_weights("aux_loss", heads) == [1 / 3] * 3
    assert methods.starting_loss_weights(
        "pretrain_finetune", heads) == [1.0, 1.0, 0.0]
    assert methods.starting_loss_weights("early_stop", heads) == [0, 0, 1]
    with pytest.raises(ValueError, match="pretrain_epochs"):
        experiment_config.ExperimentConfig(method="pretrain_finetune", epochs=4,
                                    pretrain_epochs=4).validate()
    with pytest.raises(ValueError, match="fusion: must be one of"):
        experiment_config.ExperimentConfig(fusion="mid").validate()


def test_early_stop_restores_the_best_holdout_epoch(tmp_path):
    config = experiment_config.ExperimentConfig(
        method="early_stop", epochs=60, patience=2, learning_rate=0.5,
        verbose=0, model_dir=str(tmp_path / "run"))
    results = run.run_experiment(config)
    losses = results["history"]["val_joint_loss"]
    assert len(losses) < 60 and results["stopped_early"]
    best = int(np.argmin(losses))
    assert len(losses) == best + 1 + 2  # patience epochs after the best
    # The saved model holds the best epoch's weights: its holdout joint
    # loss is the best logged one.
    model = keras.saving.load_model(str(tmp_path / "run" / "model.keras"))
    _, holdout, _, _, _ = build.load_data(config)
    scores = model.evaluate(*holdout, return_dict=True, verbose=0)
    assert scores["joint_loss"] == pytest.approx(losses[best], rel=1e-4)
    # A rerun keeps the finished run instead of training on.
    again = run.run_experiment(config)
    assert again["history"] == results["history"]


def test_fusion_dropout_drops_only_at_the_fusion():
    model = toy_model()
    model = kg.late_fusion_model(
        {m: model.get_layer(f"enc_{m}") for m in ("a", "v")}, NUM_CLASSES,
        fusion_dropout=0.5)
    x, _ = toy_data(n=16)
    first = model(x, training=True)
    second = model(x, training=True)
    # The uni-modal heads see no dropout; the joint head does.
    np.testing.assert_allclose(first["a"], second["a"], rtol=1e-6)
    assert not np.allclose(first["joint"], second["joint"])
    np.testing.assert_allclose(model(x)["joint"], model(x)["joint"])
    # Linear concat still splits into per-modality logits for OGM-GE.
    assert model.modality_logits_output is not None


def test_concat_presets_are_the_papers_heads():
    encoders = {m: keras.Sequential([keras.Input((5,)), keras.layers.Dense(
        8)], name=f"enc_{m}") for m in ("a", "v")}
    for preset, layers in (("concat_fc0", 0), ("concat_fc1", 1),
                           ("concat_fc2", 2), ("concat_fc4", 4)):
        model = kg.late_fusion_model(encoders, NUM_CLASSES, fusion=preset)
        dense = [l for l in model.layers if l.name.startswith("fusion_dense")]
        assert len(dense) == layers
        # kn -> n, then n -> n.
        assert [tuple(l.kernel.shape) for l in dense] == (
            [(16, 8)] + [(8, 8)] * (layers - 1))[:layers]
    uneven = {"a": encoders["a"], "v": keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(6)], name="enc_w")}
    with pytest.raises(ValueError, match="one width n"):
        kg.late_fusion_model(uneven, NUM_CLASSES, fusion="concat_fc2")


def test_lmf_matches_its_formula_by_hand():
    rng = np.random.default_rng(0)
    fa = rng.normal(size=(3, 4)).astype("float32")
    fv = rng.normal(size=(3, 2)).astype("float32")
    layer = fusion_layers.LowRankFusion(5, units=6, rank=3)
    logits = keras.ops.convert_to_numpy(layer([fa, fv]))
    za = np.concatenate([fa, np.ones((3, 1))], axis=1)
    zv = np.concatenate([fv, np.ones((3, 1))], axis=1)
    a, v = (keras.ops.convert_to_numpy(f) for f in layer.factors)
    lam = keras.ops.convert_to_numpy(layer.rank_weights)
    fused = sum(lam[r] * (za @ a[r]) * (zv @ v[r]) for r in range(3))
    hidden = np.maximum(fused + keras.ops.convert_to_numpy(layer.fusion_bias), 0)
    expected = hidden @ keras.ops.convert_to_numpy(layer.out.kernel) + (
        keras.ops.convert_to_numpy(layer.out.bias))
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)


def test_se_gate_gates_the_target_by_the_source_in_either_direction():
    rng = np.random.default_rng(0)
    fa = rng.normal(size=(2, 4)).astype("float32")
    fv = rng.normal(size=(2, 6)).astype("float32")
    for source, target in ((0, fv), (1, fa)):
        layer = fusion_layers.SEGateFusion(3, source_index=source, reduction=2)
        logits = keras.ops.convert_to_numpy(layer([fa, fv]))
        gate = keras.ops.convert_to_numpy(layer.gate([fa, fv]))
        assert gate.shape == target.shape and np.all((gate > 0) & (gate < 1))
        joined = np.concatenate([[fa, fv][source], target * gate], axis=1)
        expected = joined @ keras.ops.convert_to_numpy(layer.out.kernel) + (
            keras.ops.convert_to_numpy(layer.out.bias))
        np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("fusion", ["lmf", "se_gate", "concat_fc2"])
def test_new_fusions_work_with_gblend_and_ogm_and_save(fusion, tmp_path):
    x, y = toy_data(n=96)
    base = toy_model()
    encoders = {m: base.get_layer(f"enc_{m}") for m in ("a", "v")}
    model = kg.late_fusion_model(
        encoders, NUM_CLASSES, fusion=fusion,
        modulation=kg.OGMGE(alpha=0.5, seed=0))
    model.compile(keras.optimizers.SGD(0.1), sparse_ce(),
                  loss_weights=[1 / 3] * 3, metrics=["accuracy"])
    # Uni-modal heads share no variable: fused estimation applies.
    estimate = kg.estimate_blend_weights(model, (x, y), (x, y), epochs=1,
                                         batch_size=32)
    assert estimate.fused
    history = model.fit(x, y, epochs=6, batch_size=16, verbose=0)
    assert history.history["joint_accuracy"][-1] > 0.6
    assert_saves_and_loads(model, x, str(tmp_path / "m.keras"))
