"""`late_fusion_model`: per-modality encoders, uni-modal heads, a joint head."""

from typing import Mapping, Optional, Sequence, Tuple

import keras

from keras_gblend import fusion_layers
from keras_gblend.blended_model import BlendedModel
from keras_gblend.ogm import OGMGE

FUSIONS = ("concat", "sum", "film", "gated")
MODALITY_LOGITS = "modality_logits"


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
    modulation: Optional[OGMGE] = None,
    blend_scope: str = "shared",
    fusion_units: int = 128,
    name: str = "late_fusion",
) -> BlendedModel:
    """Builds a late-fusion classifier with one head per modality.

    Each modality `m` gets an input named `m`, its encoder, and a linear
    uni-modal head (output `m`). The joint head (output `joint_output`) sees
    every encoder's features:

    - `"concat"`: a linear classifier on the concatenated features
      (`fusion_layers.ConcatFusion`), or, with `fusion_hidden_units` (e.g.
      `(n, n)` for the G-Blend paper's head), hidden `Dense`+ReLU layers
      before it;
    - `"sum"`: one linear classifier per modality, logits summed;
    - `"film"`: the first modality FiLM-conditions the others;
    - `"gated"`: the first modality gates the others' projections.

    Every head outputs logits: use `from_logits=True` losses. Linear
    concat and sum fusion also output `"modality_logits"` `(batch, k,
    classes)`: each modality's share of the joint logits, which OGM-GE
    scores (no loss is applied to it).

    Args:
        encoders: `{modality: layer or model}` mapping one input to a
            feature vector `(batch, features)`.
        num_classes: number of classes.
        fusion: `"concat"`, `"sum"`, `"film"` or `"gated"`.
        fusion_hidden_units: hidden layer widths of the concat fusion head.
        fusion_units: projection width of gated fusion.
        input_shapes: `{modality: shape}` (without batch) for encoders that
            are not built models.
        joint_output: name of the joint output.
        modulation: optional `kg.OGMGE` applied in `train_step`.
        blend_scope: `"all"` or `"shared"` (see `kg.BlendedModel`).
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
    if joint_output in encoders or MODALITY_LOGITS in encoders:
        raise ValueError(
            f"Modality names must differ from {joint_output!r} and "
            f"{MODALITY_LOGITS!r}."
        )
    if fusion != "concat" and fusion_hidden_units:
        raise ValueError(
            "`fusion_hidden_units` applies to concat fusion only."
        )
    if fusion in ("film", "gated") and len(encoders) < 2:
        raise ValueError(f"{fusion!r} fusion needs two or more modalities.")
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
    feature_list = list(features.values())
    modality_logits = None
    if fusion == "concat" and fusion_hidden_units:
        fused = keras.layers.Concatenate(name="fusion_concat")(feature_list)
        for index, units in enumerate(fusion_hidden_units):
            fused = keras.layers.Dense(
                units, activation="relu", name=f"fusion_dense_{index}"
            )(fused)
        joint = keras.layers.Dense(num_classes, name=joint_output)(fused)
    elif fusion in ("concat", "sum"):
        layer_class = (
            fusion_layers.ConcatFusion
            if fusion == "concat"
            else fusion_layers.SumFusion
        )
        joint, modality_logits = layer_class(num_classes, name=joint_output)(
            feature_list
        )
    elif fusion == "film":
        joint = fusion_layers.FiLMFusion(num_classes, name=joint_output)(
            feature_list
        )
    else:
        joint = fusion_layers.GatedFusion(
            num_classes, units=fusion_units, name=joint_output
        )(feature_list)
    outputs[joint_output] = joint
    if modality_logits is not None:
        outputs[MODALITY_LOGITS] = modality_logits
    return BlendedModel(
        inputs=inputs,
        outputs=outputs,
        joint_output=joint_output,
        modality_logits_output=(
            MODALITY_LOGITS if modality_logits is not None else None
        ),
        modulation=modulation,
        blend_scope=blend_scope,
        name=name,
    )
