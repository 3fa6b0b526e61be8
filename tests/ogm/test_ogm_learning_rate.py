"""OGM-GE under adaptive optimizers: `apply_to="learning_rate"` scales the
modulated encoder's step by the coefficient k, which scaling the gradient
cannot do under Adam."""

import keras
import numpy as np
import pytest

import keras_gblend as kg


def _problem(n=64, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = {"a": (2 * rng.normal(size=(3, 6))[y]
               + 0.3 * rng.normal(size=(n, 6))).astype("float32"),
         "v": (0.2 * rng.normal(size=(3, 4))[y]
               + rng.normal(size=(n, 4))).astype("float32")}
    return x, y.astype("int32")


def _one_step(apply_to, optimizer):
    """The change of every trainable variable over one full-batch step, and
    the step's OGM coefficients."""
    keras.utils.set_random_seed(0)
    encoders = {m: keras.Sequential(
        [keras.Input((d,)), keras.layers.Dense(8, activation="relu")],
        name=f"enc_{m}") for m, d in (("a", 6), ("v", 4))}
    modulation = None if apply_to is None else kg.OGMGE(
        alpha=1.0, noise=False, apply_to=apply_to)
    model = kg.late_fusion_model(encoders, 3, modulation=modulation)
    model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(
        from_logits=True), loss_weights=[0.0, 0.0, 1.0])
    x, y = _problem()
    before = [v.numpy().copy() for v in model.trainable_variables]
    history = model.fit(x, y, batch_size=64, epochs=1, verbose=0).history
    changes = [v.numpy() - b for v, b in zip(model.trainable_variables,
                                               before)]
    names = [v.path for v in model.trainable_variables]
    return changes, names, history


def _step_ratios(mode, optimizer_class):
    plain, names, _ = _one_step(None, optimizer_class(0.01))
    modulated, _, history = _one_step(mode, optimizer_class(0.01))
    ratios = {}
    for name, a, b in zip(names, modulated, plain):
        ratios[name.split("/")[0]] = ratios.get(name.split("/")[0], []) + [
            np.abs(a).sum() / np.abs(b).sum()]
    k = {m: history[f"ogm/coefficient/{m}"][0] for m in ("a", "v")}
    return ratios, k


def test_under_adam_the_learning_rate_mode_shrinks_the_step_by_k():
    ratios, k = _step_ratios("learning_rate", keras.optimizers.Adam)
    slowed = min(k, key=k.get)
    assert k[slowed] < 0.5 and max(k.values()) == 1.0
    # OGMGE(params="kernels"): the encoder's kernel is modulated, its bias
    # is not.
    kernel, bias = ratios[f"enc_{slowed}"]
    np.testing.assert_allclose(kernel, k[slowed], rtol=1e-4)
    np.testing.assert_allclose(bias, 1.0, rtol=1e-5)
    kept = "a" if slowed == "v" else "v"
    np.testing.assert_allclose(ratios[f"enc_{kept}"], 1.0, rtol=1e-5)
    for head in ("a_head", "v_head", "joint"):
        np.testing.assert_allclose(ratios[head], 1.0, rtol=1e-5)


def test_under_adam_scaling_the_gradient_barely_changes_the_step():
    # The reason for the mode: Adam divides by the gradient's running
    # scale, so the paper's gradient scaling is undone.
    ratios, k = _step_ratios("gradient", keras.optimizers.Adam)
    slowed = min(k, key=k.get)
    assert k[slowed] < 0.5
    assert ratios[f"enc_{slowed}"][0] > 0.95  # its kernel


def test_under_sgd_both_modes_take_the_same_step():
    for optimizer in (lambda: keras.optimizers.SGD(0.05),
                      lambda: keras.optimizers.SGD(0.05, momentum=0.9)):
        by_gradient, _, _ = _one_step("gradient", optimizer())
        by_rate, _, _ = _one_step("learning_rate", optimizer())
        for a, b in zip(by_gradient, by_rate):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_apply_to_is_checked_and_kept_in_the_config():
    with pytest.raises(ValueError, match="apply_to"):
        kg.OGMGE(apply_to="update")
    config = kg.OGMGE(apply_to="learning_rate").get_config()
    assert kg.OGMGE.from_config(config).apply_to == "learning_rate"
    assert kg.OGMGE.from_config(
        {k: v for k, v in config.items() if k != "apply_to"}
    ).apply_to == "gradient"  # configs saved before the mode existed
