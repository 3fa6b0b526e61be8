"""`late_fusion_model`: per-modality encoders, uni-modal heads, a joint head."""

from typing import Mapping, Optional, Sequence, Tuple

import keras

from keras_gblend.blended_model import BlendedModel

FUSIONS = ("concat", "sum")


def _input_shape(name: str, encoder, input_shapes) -> Tuple:
    if input_shapes and name in input_shapes:
        return tuple(input_shapes[name])
    inputs = getattr(encoder, "inputs", None)
    if inputs:
        if len(inputs) != 1:
            raise ValueError(
                f"Encoder {name!r} has {len(inputs)} inputs; a modality "
                "encoder takes one."
            )
        return tuple(inputs[0].shape[1:])
    raise ValueError(
        f"Cannot infer the input shape of encoder {name!r}: pass "
        f"`input_shapes={{{name!r}: shape}}` or a functional/Sequential "
        "encoder built with an Input."
    )


def late_fusion_model(
    encoders: Mapping[str, keras.layers.Layer],
    num_classes: int,
    fusion: str = "concat",
    fusion_hidden_units: Sequence[int] = (),
    input_shapes: Optional[Mapping[str, Sequence[Optional[int]]]] = None,
    joint_output: str = "joint",
    name: str = "late_fusion",
) -> BlendedModel:
    """Builds a late-fusion classifier with one head per modality.

    Each modality `m` gets an input named `m`, its encoder, and a linear
    uni-modal head (output `m`). The joint head (output `joint_output`) sees
    every encoder's features:

    - `"concat"`: concatenated features, optional hidden `Dense`+ReLU layers
      (`fusion_hidden_units`, e.g. `(n, n)` for the G-Blend paper's head),
      then a linear classifier;
    - `"sum"`: one linear classifier per modality, logits summed.

    Every head outputs logits: use `from_logits=True` losses.

    Args:
        encoders: `{modality: layer or model}` mapping one input to a
            feature vector `(batch, features)`.
        num_classes: number of classes.
        fusion: `"concat"` or `"sum"`.
        fusion_hidden_units: hidden layer widths of the concat fusion head.
        input_shapes: `{modality: shape}` (without batch) for encoders that
            are not built models.
        joint_output: name of the joint output.
        name: model name.

    Returns:
        An uncompiled `BlendedModel`.

    Example:

    ```python
    model = kg.late_fusion_model(
        encoders={"audio": audio_encoder, "video": video_encoder},
        num_classes=10, fusion="concat")
    ```
    """
    if fusion not in FUSIONS:
        raise ValueError(f"`fusion` must be one of {FUSIONS}, got {fusion!r}.")
    if not encoders:
        raise ValueError("`encoders` is empty: give one encoder per modality.")
    if joint_output in encoders:
        raise ValueError(
            f"`joint_output` {joint_output!r} is also a modality name."
        )
    if fusion == "sum" and fusion_hidden_units:
        raise ValueError(
            "`fusion_hidden_units` applies to concat fusion only; sum fusion "
            "is one linear classifier per modality."
        )
    inputs, features, outputs = {}, {}, {}
    for modality, encoder in encoders.items():
        inputs[modality] = keras.Input(
            _input_shape(modality, encoder, input_shapes), name=modality
        )
        feature = encoder(inputs[modality])
        if len(feature.shape) != 2:
            raise ValueError(
                f"Encoder {modality!r} outputs shape {feature.shape}; it must "
                "output (batch, features). Pool or flatten inside it."
            )
        features[modality] = feature
        outputs[modality] = keras.layers.Dense(
            num_classes, name=f"{modality}_head"
        )(feature)
    if fusion == "concat":
        fused = keras.layers.Concatenate(name="fusion_concat")(
            list(features.values())
        )
        for index, units in enumerate(fusion_hidden_units):
            fused = keras.layers.Dense(
                units, activation="relu", name=f"fusion_dense_{index}"
            )(fused)
        joint = keras.layers.Dense(num_classes, name=joint_output)(fused)
    else:
        joint = keras.layers.Add(name=joint_output)(
            [
                keras.layers.Dense(num_classes, name=f"{m}_fusion_logits")(f)
                for m, f in features.items()
            ]
        )
    outputs[joint_output] = joint
    return BlendedModel(
        inputs=inputs, outputs=outputs, joint_output=joint_output, name=name
    )
