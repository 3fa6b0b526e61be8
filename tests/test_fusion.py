import keras
import numpy as np
import pytest

import keras_gblend as kg
from conftest import toy_data, toy_model


def test_concat_fusion_structure_and_hidden_layers():
    encoders = {
        "a": keras.Sequential([keras.Input((6,)), keras.layers.Dense(5)]),
        "v": keras.Sequential([keras.Input((4,)), keras.layers.Dense(7)]),
    }
    model = kg.late_fusion_model(encoders, 3, fusion_hidden_units=(12, 12))
    assert model.head_names == ("a", "v", "joint")
    assert model.get_layer("fusion_dense_0").kernel.shape == (12, 12)
    assert model.get_layer("joint").kernel.shape == (12, 3)


def test_sum_fusion_joint_is_sum_of_modality_classifiers():
    x, _ = toy_data(n=8)
    model = toy_model(fusion="sum")
    joint = model.predict(x, verbose=0)["joint"]
    features = {
        m: model.get_layer(f"enc_{m}")(x[m]).numpy() for m in ("a", "v")
    }
    expected = sum(
        model.get_layer(f"{m}_fusion_logits")(features[m]).numpy() for m in features
    )
    np.testing.assert_allclose(joint, expected, rtol=1e-5, atol=1e-6)


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
    with pytest.raises(ValueError, match="also a modality"):
        kg.late_fusion_model({"joint": dense["a"]}, 3)
