import keras
import numpy as np
import pytest

import keras_gblend as kg
from keras_gblend import ogm


def _twin_models(toy_model, sparse_ce, modulation, seed=0, fusion="concat"):
    """Same initial weights; one plain, one with OGM-GE; one SGD step each."""
    plain = toy_model(seed=seed, fusion=fusion)
    modulated = kg.BlendedModel.from_config(
        {**plain.get_config(), "modulation": keras.saving.serialize_keras_object(modulation)}
    )
    modulated.set_weights(plain.get_weights())
    for model in (plain, modulated):
        model.compile(keras.optimizers.SGD(0.5), sparse_ce())
    return plain, modulated


def _one_step(model, x, y, names=None):
    """Update of every trainable variable after one full-batch step, keyed
    by `names` (default: the variables' own paths)."""
    variables = model.trainable_variables
    names = names or [v.path for v in variables]
    before = [v.numpy().copy() for v in variables]
    model.fit(x, y, batch_size=len(y), epochs=1, shuffle=False, verbose=0)
    return {n: v.numpy() - b for n, v, b in zip(names, variables, before)}


def _paths(model):
    return [v.path for v in model.trainable_variables]


@pytest.mark.parametrize("fusion", ["concat", "sum"])
def test_ogm_scales_only_the_dominant_encoder_kernels(
        fusion, toy_data, toy_model, sparse_ce):
    x, y = toy_data(n=64)
    plain, modulated = _twin_models(
        toy_model, sparse_ce, kg.OGMGE(alpha=0.5, noise=False), fusion=fusion
    )
    parts = plain(x)["modality_logits"]
    scores = ogm.modality_scores(parts, y).numpy()
    coefficients = ogm.modulation_coefficients(scores, 0.5).numpy()
    dominant = "a" if scores[0] > scores[1] else "v"
    assert dominant == "a"  # modality a carries the class in toy data
    coefficient = coefficients[0]
    assert 0 < coefficient < 1 and coefficients[1] == 1.0

    plain_step = _one_step(plain, x, y)
    ogm_step = _one_step(modulated, x, y, _paths(plain))
    assert plain_step.keys() == ogm_step.keys()
    for path, update in plain_step.items():
        if path.startswith("enc_a/") and path.endswith("kernel"):
            np.testing.assert_allclose(ogm_step[path], coefficient * update, rtol=1e-4, atol=1e-7)
            assert np.abs(update).sum() > 0
        else:  # v's encoder, a's encoder bias, every head and the fusion
            np.testing.assert_allclose(ogm_step[path], update, rtol=1e-4, atol=1e-7)


def test_params_all_scales_biases_too(toy_data, toy_model, sparse_ce):
    x, y = toy_data(n=64)
    plain, modulated = _twin_models(
        toy_model, sparse_ce, kg.OGMGE(alpha=0.5, noise=False, params="all"))
    scores = ogm.modality_scores(plain(x)["modality_logits"], y)
    coefficient = ogm.modulation_coefficients(scores, 0.5).numpy()[0]
    plain_step, ogm_step = _one_step(plain, x, y), _one_step(modulated, x, y, _paths(plain))
    bias = [p for p in plain_step if p.startswith("enc_a/") and p.endswith("bias")][0]
    np.testing.assert_allclose(ogm_step[bias], coefficient * plain_step[bias], rtol=1e-4, atol=1e-7)


def test_the_excess_form_scales_by_the_excess_over_balance(
        toy_data, toy_model, sparse_ce):
    x, y = toy_data(n=64)
    plain, modulated = _twin_models(
        toy_model, sparse_ce,
        kg.OGMGE(alpha=0.5, noise=False, coefficient="excess"))
    scores = ogm.modality_scores(plain(x)["modality_logits"], y).numpy()
    ratio = scores[0] / scores[1]
    coefficient = 1 - np.tanh(0.5 * (ratio - 1))
    # Weaker than the reference's 1 - tanh(0.5 * ratio) at the same ratio.
    assert 1 - np.tanh(0.5 * ratio) < coefficient < 1
    plain_step, ogm_step = _one_step(plain, x, y), _one_step(modulated, x, y, _paths(plain))
    kernel = [p for p in plain_step if p.startswith("enc_a/") and p.endswith("kernel")][0]
    np.testing.assert_allclose(ogm_step[kernel], coefficient * plain_step[kernel], rtol=1e-4, atol=1e-7)


def test_outside_the_window_nothing_is_modulated(
        toy_data, toy_model, sparse_ce):
    x, y = toy_data(n=64)
    plain, modulated = _twin_models(
        toy_model, sparse_ce, kg.OGMGE(alpha=0.9, start_epoch=3, end_epoch=5))
    plain_step, ogm_step = _one_step(plain, x, y), _one_step(modulated, x, y, _paths(plain))
    for path, update in plain_step.items():
        np.testing.assert_allclose(ogm_step[path], update, rtol=1e-5, atol=1e-8)


def test_generalization_noise_has_the_gradient_std(
        toy_data, toy_model, sparse_ce):
    x, y = toy_data(n=64)
    plain = toy_model(seed=1, hidden=256)
    modulated = kg.BlendedModel.from_config(
        {**plain.get_config(),
         "modulation": keras.saving.serialize_keras_object(
             kg.OGMGE(modulation=False, noise=True, seed=7))}
    )
    modulated.set_weights(plain.get_weights())
    for model in (plain, modulated):
        model.compile(keras.optimizers.SGD(1.0), sparse_ce())
    kernel = "enc_a/dense"
    plain_step, ge_step = _one_step(plain, x, y), _one_step(modulated, x, y, _paths(plain))
    path = [p for p in plain_step if p.startswith(kernel) and p.endswith("kernel")][0]
    gradient = -plain_step[path]  # SGD, lr 1: update = -g
    noise = -(ge_step[path] - plain_step[path])
    expected = np.std(gradient, ddof=1) + 1e-8
    assert noise.size == 6 * 256
    assert np.std(noise) == pytest.approx(expected, rel=0.08)
    assert abs(noise.mean()) < 4 * expected / np.sqrt(noise.size)
    # Biases (params="kernels") and the other heads get no noise.
    bias = path.replace("kernel", "bias")
    np.testing.assert_allclose(ge_step[bias], plain_step[bias], rtol=1e-5, atol=1e-8)
    # Fresh noise every step.
    second = _one_step(modulated, x, y, _paths(plain))[path]
    assert not np.allclose(second, ge_step[path])


# Both draw the noise by Box-Muller, XLA outside the compiled step.
@pytest.mark.parametrize("jit_compile", [False, True])
def test_noise_std_is_that_of_the_unmodulated_gradient(
        jit_compile, toy_data, toy_model, sparse_ce):
    # A step whose coefficient is far from 1: the GE noise must have the std
    # of the gradient before scaling (the reference's order), not after.
    x, y = toy_data(n=64)
    plain = toy_model(seed=1, hidden=256)

    def twin(config):
        model = kg.BlendedModel.from_config({
            **plain.get_config(),
            "modulation": keras.saving.serialize_keras_object(config)})
        model.set_weights(plain.get_weights())
        return model

    ogm_only = twin(kg.OGMGE(alpha=1.5, noise=False))
    ogm_ge = twin(kg.OGMGE(alpha=1.5, noise=True, seed=7))
    for model in (plain, ogm_only, ogm_ge):
        model.compile(keras.optimizers.SGD(1.0), sparse_ce(),
                      jit_compile=jit_compile)
    scores = ogm.modality_scores(plain(x)["modality_logits"], y)
    coefficients = ogm.modulation_coefficients(scores, 1.5).numpy()
    dominant = int(np.argmin(coefficients))
    coefficient = float(coefficients[dominant])
    assert coefficient < 0.35  # the dominant modality is strongly slowed
    names = _paths(plain)
    plain_step = _one_step(plain, x, y)
    ogm_step = _one_step(ogm_only, x, y, names)
    ge_step = _one_step(ogm_ge, x, y, names)
    encoder = ("enc_a/", "enc_v/")[dominant]
    path = [p for p in names if p.startswith(encoder) and p.endswith("kernel")][0]
    gradient = -plain_step[path]
    np.testing.assert_allclose(-ogm_step[path], coefficient * gradient,
                               rtol=1e-4, atol=1e-7)
    noise = ogm_step[path] - ge_step[path]
    unmodulated, modulated = np.std(gradient, ddof=1), np.std(coefficient * gradient, ddof=1)
    assert np.std(noise) == pytest.approx(unmodulated, rel=0.08)
    assert abs(np.std(noise) - modulated) > 0.5 * unmodulated


def test_xla_step_draws_the_graph_mode_noise_outside_xla(
        toy_data, toy_model, sparse_ce):
    # Under jit_compile the noise is drawn in graph mode and handed to the
    # compiled step: the same numbers as a graph-mode step, so the updates
    # agree (a stateless_normal draw inside XLA would differ entirely).
    x, y = toy_data(n=64)
    plain = toy_model(seed=1, hidden=64)
    steps = {}
    for jit_compile in (False, True):
        model = kg.BlendedModel.from_config({
            **plain.get_config(),
            "modulation": keras.saving.serialize_keras_object(
                kg.OGMGE(alpha=0.5, seed=3))})
        model.set_weights(plain.get_weights())
        model.compile(keras.optimizers.SGD(1.0), sparse_ce(),
                      jit_compile=jit_compile)
        steps[jit_compile] = [_one_step(model, x, y, _paths(plain))
                              for _ in range(2)]
        assert (model._xla_step is not None) == jit_compile
    path = [p for p in steps[False][0] if p.startswith("enc_a/")
            and p.endswith("kernel")][0]
    for graph_step, xla_step in zip(steps[False], steps[True]):
        for name in graph_step:
            np.testing.assert_allclose(xla_step[name], graph_step[name],
                                       rtol=1e-4, atol=1e-6)
    # The XLA step does add noise: without it the update differs.
    quiet = kg.BlendedModel.from_config({
        **plain.get_config(),
        "modulation": keras.saving.serialize_keras_object(
            kg.OGMGE(alpha=0.5, noise=False))})
    quiet.set_weights(plain.get_weights())
    quiet.compile(keras.optimizers.SGD(1.0), sparse_ce(), jit_compile=True)
    noise = steps[True][0][path] - _one_step(quiet, x, y, _paths(plain))[path]
    assert np.std(noise) > 1e-4


def test_logs_carry_coefficients_and_ratios_and_jit_does_not_retrace(
        toy_data, toy_model, sparse_ce):
    x, y = toy_data(n=96)
    model = toy_model(seed=0)
    modulated = kg.BlendedModel.from_config(
        {**model.get_config(),
         "modulation": keras.saving.serialize_keras_object(
             kg.OGMGE(alpha=0.5, start_epoch=1, end_epoch=1))}
    )
    traces = []
    original = modulated.modulate_gradients

    def counting(*args):
        traces.append(1)
        return original(*args)

    modulated.modulate_gradients = counting
    modulated.compile(keras.optimizers.SGD(0.1), sparse_ce(), jit_compile=True)
    history = modulated.fit(x, y, batch_size=32, epochs=3, verbose=0)
    assert len(traces) == 1
    coefficient_a = history.history["ogm/coefficient/a"]
    assert coefficient_a[0] == 1.0 and coefficient_a[2] == 1.0  # outside window
    assert coefficient_a[1] < 1.0
    assert history.history["ogm/coefficient/v"] == [1.0, 1.0, 1.0]
    ratio_a, ratio_v = history.history["ogm/ratio/a"], history.history["ogm/ratio/v"]
    assert ratio_a[-1] > 1 > ratio_v[-1]  # a, the informative one, dominates
    # The share of steps each modality is slowed: none outside the window;
    # inside it, with two modalities, exactly one on every step.
    slowed_a, slowed_v = (history.history["ogm/slowed/a"],
                          history.history["ogm/slowed/v"])
    assert slowed_a[0] == slowed_a[2] == slowed_v[0] == slowed_v[2] == 0.0
    assert slowed_a[1] == 1.0 and slowed_v[1] == 0.0


def test_validation_and_evaluate_report_no_modulation_trackers(
        toy_data, toy_model, sparse_ce):
    # The coefficients measure training steps: validation has none (Keras
    # would otherwise log `val_ogm/...` as zeros).
    x, y = toy_data(n=96)
    model = toy_model(modulation=kg.OGMGE(alpha=0.5, seed=1))
    model.compile(keras.optimizers.SGD(0.1), sparse_ce(), metrics=["accuracy"])
    train_x = {k: v[:64] for k, v in x.items()}
    validation_x = {k: v[64:] for k, v in x.items()}
    history = model.fit(train_x, y[:64], batch_size=32, epochs=2, verbose=0,
                        validation_data=(validation_x, y[64:]))
    assert history.history["ogm/coefficient/a"][0] < 1.0
    assert "val_joint_accuracy" in history.history
    assert not [key for key in history.history if key.startswith("val_ogm")]
    evaluated = model.evaluate(x, y, verbose=0, return_dict=True)
    assert "joint_accuracy" in evaluated
    assert not [key for key in evaluated if key.startswith("ogm/")]


def test_gblend_and_ogm_ge_combine(tmp_path, toy_data, toy_model, sparse_ce):
    x, y = toy_data(n=96)
    train, holdout = kg.split_holdout((x, y), fraction=0.25, seed=0)
    model = toy_model(modulation=kg.OGMGE(alpha=0.5, seed=1))
    model.compile(keras.optimizers.SGD(0.1), sparse_ce(), metrics=["accuracy"])
    callback = kg.GBlendCallback(holdout, mode="offline", estimation_epochs=1,
                                 noise_z=None, verbose=0)
    history = model.fit(*train, epochs=2, batch_size=24, verbose=0,
                        callbacks=[callback])
    assert history.history["gblend/estimation_epoch"] == [0, 0]
    assert model.blend_weights == pytest.approx(
        callback.last_estimate.weights_dict(), rel=1e-6)
    assert history.history["ogm/coefficient/a"][0] < 1.0
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.modulation.get_config() == model.modulation.get_config()
    assert loaded.blend_weights == pytest.approx(model.blend_weights)
    resumed = loaded.fit(*train, epochs=1, batch_size=24, verbose=0)
    # The reloaded model keeps modulating (the dominant encoder is slowed).
    assert resumed.history["ogm/coefficient/a"][0] < 1.0


def test_hand_built_model_with_named_encoder_layers(toy_data, sparse_ce):
    a = keras.Input((6,), name="a")
    v = keras.Input((4,), name="v")
    fa = keras.layers.Dense(8, activation="relu", name="audio_net")(a)
    fv = keras.layers.Dense(8, activation="relu", name="video_net")(v)
    outputs = {
        "a": keras.layers.Dense(3, name="a_logits")(fa),
        "v": keras.layers.Dense(3, name="v_logits")(fv),
        "joint": keras.layers.Dense(3, name="joint")(keras.layers.Concatenate()([fa, fv])),
    }
    config = kg.OGMGE(encoder_layers={"a": ["audio_net"], "v": ["video_net"]})
    model = kg.BlendedModel(inputs={"a": a, "v": v}, outputs=outputs, modulation=config)
    derived = kg.BlendedModel(
        inputs={"a": a, "v": v}, outputs=outputs, modulation=kg.OGMGE()
    )
    for m in (model, derived):
        groups = ogm.modulated_variable_groups(m, m.modulation)
        names = [[v.path for v in group] for group in groups]
        assert names == [["audio_net/kernel"], ["video_net/kernel"]]
    with pytest.raises(ValueError, match="modality\\(ies\\) \\['v'\\]"):
        kg.BlendedModel(
            inputs={"a": a, "v": v}, outputs=outputs,
            modulation=kg.OGMGE(encoder_layers={"a": ["audio_net"]}),
        )
    with pytest.raises(ValueError, match="per-modality logits"):
        kg.BlendedModel(
            inputs={"a": a, "v": v}, outputs=outputs,
            modulation=kg.OGMGE(score_source="fusion"),
        )
    x, y = toy_data(n=32)
    model.compile("sgd", sparse_ce())
    predictions = model(x)
    scores = ogm.modality_scores(
        keras.ops.stack([predictions["a"], predictions["v"]], axis=1), y)
    history = model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    # One step, scored from the uni-modal heads (no per-modality logits).
    assert history.history["ogm/ratio/a"][0] == pytest.approx(
        float(scores[0] / scores[1]), rel=1e-5)


def test_film_fusion_scores_heads_that_are_trained_at_weight_zero(
        toy_data, toy_model, sparse_ce):
    # FiLM cannot be split into per-modality logits: OGM-GE scores the
    # uni-modal heads. Under blend_scope="shared" they learn as probes even
    # with blend weight 0; under "all" they would keep their initial
    # weights, so fit refuses to score them.
    x, y = toy_data(n=96)
    for scope, learns in (("shared", True), ("all", False)):
        model = toy_model(fusion="film", blend_scope=scope,
                          modulation=kg.OGMGE(alpha=0.5, noise=False))
        model.compile(keras.optimizers.SGD(0.1), sparse_ce(),
                      loss_weights=[0.0, 0.0, 1.0], metrics=["accuracy"])
        kernel = model.get_layer("a_head").kernel
        start = kernel.numpy().copy()
        if not learns:
            with pytest.raises(ValueError, match="never train"):
                model.fit(x, y, batch_size=16, epochs=5, verbose=0)
            np.testing.assert_array_equal(start, kernel.numpy())
            continue
        model.fit(x, y, batch_size=16, epochs=5, verbose=0)
        assert not np.array_equal(start, kernel.numpy())
        scores = model.evaluate(x, y, return_dict=True, verbose=0)
        assert scores["a_accuracy"] > 0.8  # a carries the class


def test_params_option_selects_exactly_its_variables(toy_model):
    # A conv encoder ending in Dense: "conv" is the reference's set (4-D
    # kernels only), "kernels" adds the Dense kernel, "all" the biases too.
    def encoder(m):
        return keras.Sequential([
            keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, name=f"{m}_conv"),
            keras.layers.Flatten(), keras.layers.Dense(5, name=f"{m}_dense")],
            name=f"enc_{m}")

    model = kg.late_fusion_model({m: encoder(m) for m in ("a", "v")}, 3)
    expected = {
        "conv": ["conv/kernel"],
        "kernels": ["conv/kernel", "dense/kernel"],
        "all": ["conv/bias", "conv/kernel", "dense/bias", "dense/kernel"],
    }
    for params, names in expected.items():
        groups = ogm.modulated_variable_groups(model, kg.OGMGE(params=params))
        for modality, group in zip(("a", "v"), groups):
            paths = sorted("/".join(v.path.split("/")[-2:]) for v in group)
            assert paths == [f"{modality}_{name}" for name in names]
    mlp = toy_model()  # Dense encoders: no 4-D variable
    with pytest.raises(ValueError, match="params='conv'"):
        ogm.modulated_variable_groups(mlp, kg.OGMGE(params="conv"))
