import copy

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_gblend as kg
from keras_gblend.model import head_graph


def test_loss_is_weighted_sum_of_unweighted_head_losses(
        data, compiled_toy_model, numpy_sparse_ce):
    x, y = data
    weights = {"a": 0.5, "v": 0.0, "joint": 2.0}
    model = compiled_toy_model(loss_weights=weights)
    result = model.evaluate(x, y, batch_size=len(y), return_dict=True, verbose=0)
    logits = model.predict(x, verbose=0)
    expected = {h: numpy_sparse_ce(logits[h], y) for h in model.head_names}
    for head in model.head_names:
        assert result[f"{head}_loss"] == pytest.approx(expected[head], rel=1e-5)
    assert result["loss"] == pytest.approx(
        sum(weights[h] * expected[h] for h in model.head_names), rel=1e-5
    )


@pytest.mark.parametrize("blend_scope", ["all", "shared"])
def test_zero_weight_head_parameters_by_blend_scope(
        data, blend_scope, toy_model, sparse_ce):
    x, y = data
    model = toy_model(blend_scope=blend_scope)
    model.compile(keras.optimizers.SGD(0.1), sparse_ce(),
                  loss_weights={"a": 1.0, "v": 0.0, "joint": 1.0})
    exclusive = head_graph.exclusive_trainable_variables(model, model.head_names)
    before = {h: [v.numpy().copy() for v in vs] for h, vs in exclusive.items()}
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    for head, variables in exclusive.items():
        changed = [
            not np.array_equal(b, v.numpy())
            for b, v in zip(before[head], variables)
        ]
        if head == "v" and blend_scope == "all":
            assert exclusive["v"] and not any(changed)
        else:  # "shared": a weight-0 head still learns, as a probe
            assert all(changed), head


def test_shared_scope_gradients_match_a_hand_computation(
        data, toy_model, sparse_ce):
    """One SGD step: encoders move by the blended gradient, each head's own
    variables by the gradient of its own loss."""
    x, y = data
    weights = [0.5, 0.0, 0.1]
    model = toy_model(blend_scope="shared")
    model.compile(keras.optimizers.SGD(1.0), sparse_ce(), loss_weights=weights)
    model.predict(x[:1] if not isinstance(x, dict) else
                  {k: v[:1] for k, v in x.items()}, verbose=0)
    variables = model.trainable_variables
    start = [v.numpy().copy() for v in variables]
    per_head = head_graph.head_trainable_variables(model)
    with tf.GradientTape(persistent=True) as tape:
        y_pred = model(x, training=True)
        losses = dict(zip(model.head_names,
                          model.compute_head_losses(y, y_pred)))
        blended = sum(w * losses[h] for h, w in zip(model.head_names, weights))
    expected = []
    for variable in variables:
        users = [h for h in model.head_names
                 if any(variable is u for u in per_head[h])]
        target = losses[users[0]] if len(users) == 1 else blended
        expected.append(tape.gradient(target, variable).numpy())
    model.fit(x, y, batch_size=len(y), epochs=1, shuffle=False, verbose=0)
    probe = head_graph.exclusive_trainable_variables(model, model.head_names)
    for variable, before, gradient in zip(variables, start, expected):
        np.testing.assert_allclose(before - variable.numpy(), gradient,
                                   rtol=2e-4, atol=1e-6)
    # The weight-0 head `v` learned (a probe), the encoders felt it not.
    assert any(np.abs(v.numpy() - b).sum() > 0 for v, b in zip(variables, start)
               if any(v is p for p in probe["v"]))
def test_weight_change_scales_the_gradient(data, compiled_toy_model):
    x, y = data
    model = compiled_toy_model()
    variables = head_graph.exclusive_trainable_variables(model)["a"]

    def gradients(weights):
        model.set_blend_weights(weights)
        with tf.GradientTape() as tape:
            loss = model.compute_loss(y=y, y_pred=model(x, training=True))
        return tape.gradient(loss, variables)

    base = gradients({"a": 1.0, "v": 1.0, "joint": 1.0})
    scaled = gradients({"a": 2.5, "v": 0.3, "joint": 1.0})
    for g1, g2 in zip(base, scaled):
        np.testing.assert_allclose(g2.numpy(), 2.5 * g1.numpy(), rtol=1e-5)
        assert np.abs(g1.numpy()).sum() > 0


class TraceCountingModel(kg.BlendedModel):
    traces = 0

    def train_step(self, data):
        TraceCountingModel.traces += 1  # Python side effect: runs per trace.
        return super().train_step(data)


class RotateWeights(keras.callbacks.Callback):
    def __init__(self, schedule):
        super().__init__()
        self.schedule = schedule
        self.used = []

    def on_epoch_begin(self, epoch, logs=None):
        self.model.set_blend_weights(self.schedule[epoch])
        self.used.append(self.model.blend_weights)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_changing_weights_does_not_retrace_and_takes_effect(
        data, jit_compile, toy_model, sparse_ce):
    x, y = data
    base = toy_model()
    model = TraceCountingModel(
        inputs=base.input,
        outputs=base.output,
        joint_output="joint",
        modality_logits_output=base.modality_logits_output,
    )
    model.compile(
        keras.optimizers.SGD(0.05), sparse_ce(), jit_compile=jit_compile
    )
    TraceCountingModel.traces = 0
    schedule = [[1.0, 1.0, 1.0], [0.2, 0.0, 0.8], [3.0, 0.5, 0.0]]
    callback = RotateWeights(schedule)
    history = model.fit(
        x, y, batch_size=32, epochs=3, verbose=0, callbacks=[callback]
    )
    assert TraceCountingModel.traces == 1
    # Every batch has the same size, so each epoch's mean total loss is the
    # weighted sum of the epoch-mean head losses: the variable is read live.
    for epoch, weights in enumerate(schedule):
        expected = sum(
            w * history.history[f"{h}_loss"][epoch]
            for h, w in zip(model.head_names, weights)
        )
        assert history.history["loss"][epoch] == pytest.approx(expected, rel=1e-4)


def test_labels_dict_is_accepted_and_must_cover_every_head(
        data, compiled_toy_model):
    x, y = data
    model = compiled_toy_model()
    per_head = {h: y for h in model.head_names}
    a = model.evaluate(x, y, return_dict=True, verbose=0)
    b = model.evaluate(x, per_head, return_dict=True, verbose=0)
    assert a["loss"] == pytest.approx(b["loss"])
    with pytest.raises(ValueError, match="joint"):
        model.evaluate(x, {"a": y, "v": y}, verbose=0)


def test_metrics_list_is_applied_to_every_head(data, compiled_toy_model):
    x, y = data
    model = compiled_toy_model(metrics=["accuracy"])
    result = model.evaluate(x, y, return_dict=True, verbose=0)
    logits = model.predict(x, verbose=0)
    for head in model.head_names:
        expected = float((logits[head].argmax(1) == y).mean())
        assert result[f"{head}_accuracy"] == pytest.approx(expected)


def test_predict_returns_every_head_by_name(data, toy_model, NUM_CLASSES):
    x, _ = data
    predictions = toy_model().predict(x, verbose=0)
    assert set(predictions) == {"a", "v", "joint"}
    assert predictions["joint"].shape == (len(x["a"]), NUM_CLASSES)


def _two_modality_graph():
    a = keras.Input((3,), name="a")
    v = keras.Input((2,), name="v")
    fa = keras.layers.Dense(4, name="fa")(a)
    fv = keras.layers.Dense(4, name="fv")(v)
    joint = keras.layers.Dense(2, name="fused")(
        keras.layers.Concatenate()([fa, fv])
    )
    return a, v, fa, fv, joint


def test_construction_errors_name_the_problem():
    a, v, fa, fv, joint = _two_modality_graph()
    ha = keras.layers.Dense(2, name="ha")(fa)
    with pytest.raises(ValueError, match="no joint output 'joint'"):
        kg.BlendedModel(inputs={"a": a, "v": v}, outputs={"a": ha, "fused": joint})
    with pytest.raises(ValueError, match=r"\['audio'\] match no modality"):
        kg.BlendedModel(
            inputs={"a": a, "v": v},
            outputs={"audio": ha, "fused": joint},
            joint_output="fused",
        )
    with pytest.raises(TypeError, match="dict"):
        kg.BlendedModel(inputs={"a": a, "v": v}, outputs=[ha, joint])
    with pytest.raises(ValueError, match="at least one uni-modal"):
        kg.BlendedModel(
            inputs={"a": a, "v": v}, outputs={"j": joint}, joint_output="j"
        )
    # Head `a` wired to modality v's features (and a head reading both).
    hv = keras.layers.Dense(2, name="hv")(fv)
    with pytest.raises(ValueError, match=r"output 'a' must read its own.*\['v'\]"):
        kg.BlendedModel(inputs={"a": a, "v": v},
                        outputs={"a": hv, "v": hv, "joint": joint})
    both = keras.layers.Dense(2)(keras.layers.Concatenate()([fa, fv]))
    with pytest.raises(ValueError, match=r"output 'v'.*\['a', 'v'\]"):
        kg.BlendedModel(inputs={"a": a, "v": v},
                        outputs={"a": ha, "v": both, "joint": joint})


def test_compile_and_weight_errors(toy_model, sparse_ce):
    model = toy_model()
    predictions = {head: np.zeros((2, 3)) for head in ("a", "v", "joint")}
    with pytest.raises(RuntimeError,
                       match="Compile the model before computing losses"):
        model.compute_head_losses(np.zeros(2), predictions)
    with pytest.raises(RuntimeError,
                       match="Compile the model before computing losses"):
        model.per_example_losses(np.zeros(2), predictions)
    with pytest.raises(ValueError, match="needs a `loss`"):
        model.compile("sgd")
    with pytest.raises(ValueError, match=r"missing \['joint'\]"):
        model.compile("sgd", sparse_ce(), loss_weights={"a": 1.0, "v": 1.0})
    with pytest.raises(ValueError, match="3 heads"):
        model.compile("sgd", sparse_ce(), loss_weights=[1.0])
    model.compile("sgd", sparse_ce(), loss_weights=[0.1, 0.2, 0.7])
    for bad in ([1.0, -1.0, 1.0], [1.0, np.nan, 1.0]):
        with pytest.raises(ValueError, match="finite and non-negative"):
            model.set_blend_weights(bad)
    assert model.blend_weights == pytest.approx({"a": 0.1, "v": 0.2, "joint": 0.7})


def test_hand_built_functional_model_is_wrapped():
    a, v, fa, fv, joint = _two_modality_graph()
    functional = keras.Model(
        {"a": a, "v": v},
        [
            keras.layers.Dense(2, name="a_logits")(fa),
            keras.layers.Dense(2, name="v_logits")(fv),
            joint,
        ],
    )
    model = kg.as_blended_model(
        functional,
        joint_output="fused",
        output_modalities={"a_logits": "a", "v_logits": "v"},
    )
    assert model.head_names == ("a", "v", "fused")
    per_head = head_graph.head_trainable_variables(model)
    names = {h: sorted(v.path.split("/")[0] for v in vs) for h, vs in per_head.items()}
    assert names["a"] == ["a_logits", "a_logits", "fa", "fa"]
    assert names["fused"] == ["fa", "fa", "fused", "fused", "fv", "fv"]
    assert head_graph.heads_are_disjoint(model, model.modalities)
    with pytest.raises(ValueError, match="unknown output"):
        kg.as_blended_model(functional, output_modalities={"nope": "a"})


def test_blend_weights_survive_keras_save_and_load(
        tmp_path, data, compiled_toy_model):
    x, y = data
    model = compiled_toy_model(metrics=["accuracy"], loss_weights=[0.2, 0.3, 0.5])
    model.fit(x, y, epochs=1, verbose=0)
    model.set_blend_weights([0.6, 0.1, 0.3])
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, kg.BlendedModel)
    assert loaded.blend_weights == pytest.approx(model.blend_weights)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0)["joint"], model.predict(x, verbose=0)["joint"]
    )
    # The reloaded model is compiled with the user's loss and keeps training
    # with the restored weights.
    history = loaded.fit(x, y, epochs=1, verbose=0)
    assert "joint_accuracy" in history.history
    assert loaded.blend_weights == pytest.approx({"a": 0.6, "v": 0.1, "joint": 0.3})


def test_blend_weights_survive_save_weights_and_checkpoint(
        tmp_path, compiled_toy_model):
    model = compiled_toy_model()
    model.set_blend_weights([0.7, 0.2, 0.1])
    model.save_weights(str(tmp_path / "m.weights.h5"))
    fresh = kg.BlendedModel.from_config(model.get_config())
    fresh.load_weights(str(tmp_path / "m.weights.h5"))
    assert fresh.blend_weights == pytest.approx(model.blend_weights)

    path = tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt"))
    other = kg.BlendedModel.from_config(model.get_config())
    tf.train.Checkpoint(model=other).read(path).assert_existing_objects_matched()
    assert other.blend_weights == pytest.approx(model.blend_weights)


def test_get_config_round_trips(toy_model):
    model = toy_model()
    config = model.get_config()
    clone = kg.BlendedModel.from_config(copy.deepcopy(config))
    assert clone.get_config() == config
    assert clone.joint_output == "joint" and clone.head_names == model.head_names
    # A joint head under another name keeps it.
    a, v, fa, fv, joint = _two_modality_graph()
    fused = kg.as_blended_model(
        keras.Model({"a": a, "v": v},
                    [keras.layers.Dense(2, name="a_logits")(fa),
                     keras.layers.Dense(2, name="v_logits")(fv), joint]),
        joint_output="fused",
        output_modalities={"a_logits": "a", "v_logits": "v"})
    clone = kg.BlendedModel.from_config(copy.deepcopy(fused.get_config()))
    assert clone.joint_output == "fused"
    assert clone.head_names == ("a", "v", "fused")


def test_train_step_runs_layers_in_training_mode(data, sparse_ce, NUM_CLASSES):
    # Batch normalization updates its moving statistics only in training.
    x, y = data
    batch_norm = keras.layers.BatchNormalization()
    encoders = {
        "a": keras.Sequential([keras.Input((x["a"].shape[1],)), batch_norm]),
        "v": keras.Sequential([keras.Input((x["v"].shape[1],)),
                               keras.layers.Dense(4)])}
    model = kg.late_fusion_model(encoders, num_classes=NUM_CLASSES)
    model.compile("sgd", sparse_ce())
    model.fit(x, y, epochs=1, batch_size=len(y), verbose=0)
    assert np.all(np.abs(batch_norm.moving_mean.numpy()) > 0)


def test_regularization_losses_are_added_unweighted(data, sparse_ce):
    x, y = data
    a = keras.Input((6,), name="a")
    v = keras.Input((4,), name="v")
    fa = keras.layers.Dense(4, kernel_regularizer=keras.regularizers.L2(0.1), name="fa")(a)
    fv = keras.layers.Dense(4, name="fv")(v)
    model = kg.BlendedModel(
        inputs={"a": a, "v": v},
        outputs={"a": keras.layers.Dense(3, name="ha")(fa),
                 "v": keras.layers.Dense(3, name="hv")(fv),
                 "joint": keras.layers.Dense(3, name="joint")(
                     keras.layers.Concatenate()([fa, fv]))})
    model.compile("sgd", sparse_ce(), loss_weights=[0.5, 0.25, 0.25])
    result = model.evaluate(x, y, batch_size=len(y), return_dict=True, verbose=0)
    penalty = 0.1 * float(np.sum(model.get_layer("fa").kernel.numpy() ** 2))
    weighted = 0.5 * result["a_loss"] + 0.25 * result["v_loss"] + 0.25 * result["joint_loss"]
    assert result["loss"] == pytest.approx(weighted + penalty, rel=1e-5)


def test_uncertainty_weighting_matches_kendall_by_hand(
        toy_data, toy_model, sparse_ce):
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


def test_head_losses_average_over_examples_with_a_partial_last_batch(
        toy_data, compiled_toy_model):
    x, y = toy_data(n=50)
    model = compiled_toy_model()
    logits = model.predict(x, verbose=0)
    result = model.evaluate(x, y, batch_size=16, return_dict=True, verbose=0)
    for head in model.head_names:
        per_example = keras.losses.sparse_categorical_crossentropy(
            y, logits[head], from_logits=True)
        assert result[f"{head}_loss"] == pytest.approx(
            float(np.mean(per_example)), rel=1e-5)
