import keras
import numpy as np
import pytest

import keras_gblend as kg


def test_concat_fusion_structure_and_hidden_layers():
    encoders = {
        "a": keras.Sequential([keras.Input((6,)), keras.layers.Dense(5)]),
        "v": keras.Sequential([keras.Input((4,)), keras.layers.Dense(7)]),
    }
    model = kg.late_fusion_model(encoders, 3, fusion_hidden_units=(12, 12))
    assert model.head_names == ("a", "v", "joint")
    assert model.get_layer("fusion_dense_0").kernel.shape == (12, 12)
    assert model.get_layer("joint").kernel.shape == (12, 3)


def _features(model, x):
    return {m: model.get_layer(f"enc_{m}")(x[m]).numpy() for m in ("a", "v")}


def test_concat_fusion_splits_kernel_rows_and_bias_over_modalities(
        toy_data, toy_model):
    x, _ = toy_data(n=8)
    model = toy_model(fusion="concat")
    outputs = model(x)
    features = _features(model, x)
    layer = model.get_layer("joint")
    kernel, bias = layer.kernel.numpy(), layer.bias.numpy()
    width_a = features["a"].shape[1]
    expected_a = features["a"] @ kernel[:width_a] + bias / 2
    expected_v = features["v"] @ kernel[width_a:] + bias / 2
    parts = outputs["modality_logits"].numpy()
    np.testing.assert_allclose(parts[:, 0], expected_a, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(parts[:, 1], expected_v, rtol=1e-5, atol=1e-6)
    concat = np.concatenate([features["a"], features["v"]], axis=1)
    np.testing.assert_allclose(
        outputs["joint"].numpy(), concat @ kernel + bias, rtol=1e-5, atol=1e-6
    )


def test_sum_fusion_joint_is_sum_of_modality_classifiers(toy_data, toy_model):
    x, _ = toy_data(n=8)
    model = toy_model(fusion="sum")
    outputs = model(x)
    features = _features(model, x)
    layer = model.get_layer("joint")
    expected = [
        features[m] @ w.numpy() + b.numpy()
        for m, w, b in zip(("a", "v"), layer.kernels, layer.biases)
    ]
    np.testing.assert_allclose(
        outputs["modality_logits"].numpy(), np.stack(expected, 1), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        outputs["joint"].numpy(), sum(expected), rtol=1e-5, atol=1e-6
    )
    assert set(model.predict(x, verbose=0)) == {"a", "v", "joint"}


@pytest.mark.parametrize("fusion", ["film", "gated"])
def test_film_and_gated_fusion_train_and_save(
        fusion, tmp_path, toy_data, toy_model, assert_saves_and_loads):
    x, y = toy_data(n=48)
    model = toy_model(fusion=fusion)
    assert model.modality_logits_output is None
    model.compile(
        keras.optimizers.Adam(0.01),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    before = model.evaluate(x, y, verbose=0, return_dict=True)["joint_loss"]
    model.fit(x, y, epochs=20, verbose=0)
    after = model.evaluate(x, y, verbose=0, return_dict=True)["joint_loss"]
    assert after < before
    assert_saves_and_loads(model, x, str(tmp_path / "m.keras"), atol=1e-6)


def test_film_matches_reference_formula(toy_data, toy_model):
    x, _ = toy_data(n=4)
    model = toy_model(fusion="film")
    features = _features(model, x)
    layer = model.get_layer("joint")
    film = features["a"] @ layer.film.kernel.numpy() + layer.film.bias.numpy()
    gamma, beta = np.split(film, 2, axis=1)
    expected = (gamma * features["v"] + beta) @ layer.out.kernel.numpy() + layer.out.bias.numpy()
    np.testing.assert_allclose(
        model(x)["joint"].numpy(), expected, rtol=1e-5, atol=1e-5
    )


def test_gated_matches_reference_formula(toy_data, toy_model):
    x, _ = toy_data(n=4)
    model = toy_model(fusion="gated")
    features = _features(model, x)
    layer = model.get_layer("joint")

    def dense(d, f):
        return f @ d.kernel.numpy() + d.bias.numpy()

    gate = 1 / (1 + np.exp(-dense(layer.projections[0], features["a"])))
    gated = gate * dense(layer.projections[1], features["v"])
    np.testing.assert_allclose(model(x)["joint"].numpy(),
                               dense(layer.out, gated), rtol=1e-5, atol=1e-5)


def test_fusion_errors():
    dense = {"a": keras.Sequential([keras.Input((6,)), keras.layers.Dense(5)])}
    with pytest.raises(ValueError, match="fusion"):
        kg.late_fusion_model(dense, 3, fusion="bilinear")
    with pytest.raises(ValueError, match="input shape"):
        kg.late_fusion_model({"a": keras.layers.Dense(4)}, 3)
    with pytest.raises(ValueError, match=r"\(batch, features\)"):
        kg.late_fusion_model(
            {"a": keras.layers.Reshape((2, 2))}, 3, input_shapes={"a": (4,)}
        )
    with pytest.raises(ValueError, match="concat fusion only"):
        kg.late_fusion_model(dense, 3, fusion="sum", fusion_hidden_units=(4,))
    with pytest.raises(ValueError, match="must differ"):
        kg.late_fusion_model({"joint": dense["a"]}, 3)
    with pytest.raises(ValueError, match="two or more"):
        kg.late_fusion_model(dense, 3, fusion="film")


def test_fusion_dropout_drops_only_at_the_fusion(
        toy_data, toy_model, NUM_CLASSES):
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


def test_concat_presets_are_the_papers_heads(NUM_CLASSES):
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
