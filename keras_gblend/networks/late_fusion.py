"""`late_fusion_model`: per-modality encoders, uni-modal heads, a joint head."""

from typing import Mapping, Optional, Sequence, Tuple

import keras

from keras_gblend.networks import fusion_layers
from keras_gblend.inputs import input_checks
from keras_gblend.model.blended_model import BlendedModel
from keras_gblend.model.gradient_transform import GradientTransform

FUSIONS = ("concat", "sum", "film", "gated", "lmf", "se_gate")
# The G-Blend paper's late-concat heads (supplementary 6.1): 0, 1, 2 or 4
# FC+ReLU layers (kn -> n, then n -> n), then the linear classifier.
CONCAT_PRESETS = {"concat_fc0": 0, "concat_fc1": 1, "concat_fc2": 2,
                  "concat_fc4": 4}
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
    modulation: Optional[GradientTransform] = None,
    blend_scope: str = "shared",
    fusion_units: int = 128,
    fusion_dropout: float = 0.0,
    fusion_rank: int = 4,
    se_source: int = 0,
    loss_weighting: str = "blend",
    multi_label: bool = False,
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
    - `"gated"`: the first modality gates the others' projections;
    - `"lmf"`: low-rank multimodal fusion (`fusion_layers.LowRankFusion`);
    - `"se_gate"`: one modality's features gate the other's channels, then
      a linear classifier on both (`fusion_layers.SEGateFusion`);
    - `"concat_fc0"`, `"concat_fc1"`, `"concat_fc2"`, `"concat_fc4"`: the
      G-Blend paper's late-concat heads (supplementary 6.1): 0/1/2/4
      FC+ReLU layers `kn -> n`, `n -> n`, ... (`n`: an encoder's feature
      width, which must be the same for every modality), then the linear
      classifier.

    To fuse feature maps after an intermediate block instead (the paper's
    mid concat, SE and NL gates), see `kg.mid_fusion_model`.

    Every head outputs logits: use `from_logits=True` losses. Linear
    concat and sum fusion also output `"modality_logits"` `(batch, k,
    classes)`: each modality's share of the joint logits, which OGM-GE
    scores (no loss is applied to it).

    Args:
        encoders: `{modality: layer or model}` mapping one input to a
            feature vector `(batch, features)`.
        num_classes: number of classes.
        fusion: one of `FUSIONS` or `CONCAT_PRESETS` (above).
        fusion_hidden_units: hidden layer widths of the concat fusion head.
        fusion_units: projection width of gated fusion; fused width of LMF.
        fusion_dropout: dropout rate on the features right after they are
            brought together (before the fusion head), a baseline of the
            G-Blend paper; the uni-modal heads see no dropout.
        fusion_rank: rank of LMF.
        se_source: which modality (0 or 1) gates the other in `"se_gate"`.
        loss_weighting: `"blend"` or `"uncertainty"` (see `BlendedModel`).
        multi_label: independent sigmoid labels (see `BlendedModel`); the
            heads still output logits.
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
    num_classes = input_checks.check_num_classes(num_classes, multi_label)
    preset, fusion = _checked_fusion(fusion, fusion_hidden_units,
                                     fusion_dropout, encoders, joint_output)
    inputs, features, outputs = _uni_modal_heads(encoders, num_classes,
                                                 input_shapes)
    if preset is not None:
        fusion_hidden_units = _preset_units(CONCAT_PRESETS[preset], features)
    feature_list = list(features.values())
    if fusion_dropout:
        # Elementwise, so dropping each modality's features is dropping the
        # concatenation's; the concat classifier still splits per modality.
        feature_list = [
            keras.layers.Dropout(fusion_dropout, name=f"fusion_dropout_{m}")(f)
            for m, f in features.items()
        ]
    joint, modality_logits = _joint_head(
        fusion, feature_list, num_classes, joint_output, fusion_hidden_units,
        fusion_units, fusion_rank, se_source)
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
        loss_weighting=loss_weighting,
        multi_label=multi_label,
        name=name,
    )


def _checked_fusion(fusion, fusion_hidden_units, fusion_dropout, encoders,
                    joint_output):
    """`(concat preset or None, fusion)`; raises `ValueError` naming the
    argument that does not fit."""
    preset = None
    if fusion in CONCAT_PRESETS:
        if fusion_hidden_units:
            raise ValueError(
                f"{fusion!r} sets the fusion head's layers itself; drop "
                "`fusion_hidden_units` or use fusion='concat'.")
        preset, fusion = fusion, "concat"
    if fusion not in FUSIONS:
        raise ValueError(
            f"`fusion` must be one of {FUSIONS + tuple(CONCAT_PRESETS)}, got "
            f"{fusion!r}.")
    if not 0 <= fusion_dropout < 1:
        raise ValueError(
            f"`fusion_dropout` must be in [0, 1), got {fusion_dropout}.")
    if not encoders:
        raise ValueError("`encoders` is empty: give one encoder per modality.")
    if joint_output in encoders or MODALITY_LOGITS in encoders:
        raise ValueError(
            f"Modality names must differ from {joint_output!r} and "
            f"{MODALITY_LOGITS!r}.")
    if fusion != "concat" and fusion_hidden_units:
        raise ValueError(
            "`fusion_hidden_units` applies to concat fusion only.")
    if fusion in ("film", "gated", "lmf") and len(encoders) < 2:
        raise ValueError(f"{fusion!r} fusion needs two or more modalities.")
    if fusion == "se_gate" and len(encoders) != 2:
        raise ValueError("'se_gate' fusion gates one modality by the other: "
                         "it needs exactly two modalities.")
    return preset, fusion


def _uni_modal_heads(encoders, num_classes, input_shapes):
    """`(inputs, features, outputs)`: per modality an input named after
    it, its encoder's features and a linear head (output `m`)."""
    inputs, features, outputs = {}, {}, {}
    for modality, encoder in encoders.items():
        inputs[modality] = keras.Input(
            _input_shape(modality, encoder, input_shapes), name=modality)
        feature = encoder(inputs[modality])
        if len(feature.shape) != 2:
            raise ValueError(
                f"Encoder {modality!r} outputs shape {feature.shape}; it must "
                "output (batch, features). Pool or flatten inside it.")
        features[modality] = feature
        outputs[modality] = keras.layers.Dense(
            num_classes, name=f"{modality}_head")(feature)
    return inputs, features, outputs


def _joint_head(fusion, feature_list, num_classes, joint_output,
                fusion_hidden_units, fusion_units, fusion_rank, se_source):
    """`(joint logits, per-modality logits or None)` of the fusion head."""
    if fusion == "concat" and fusion_hidden_units:
        fused = keras.layers.Concatenate(name="fusion_concat")(feature_list)
        for index, units in enumerate(fusion_hidden_units):
            fused = keras.layers.Dense(
                units, activation="relu", name=f"fusion_dense_{index}")(fused)
        return keras.layers.Dense(num_classes, name=joint_output)(fused), None
    if fusion in ("concat", "sum"):
        layer_class = (fusion_layers.ConcatFusion if fusion == "concat"
                       else fusion_layers.SumFusion)
        return layer_class(num_classes, name=joint_output)(feature_list)
    if fusion == "film":
        layer = fusion_layers.FiLMFusion(num_classes, name=joint_output)
    elif fusion == "lmf":
        layer = fusion_layers.LowRankFusion(
            num_classes, units=fusion_units, rank=fusion_rank,
            name=joint_output)
    elif fusion == "se_gate":
        layer = fusion_layers.SEGateFusion(
            num_classes, source_index=se_source, name=joint_output)
    else:
        layer = fusion_layers.GatedFusion(num_classes, units=fusion_units,
                                          name=joint_output)
    return layer(feature_list), None


def _preset_units(layers: int, features) -> Tuple[int, ...]:
    """`(n,) * layers` for a concat preset, `n` the encoders' common
    feature width."""
    widths = {m: int(f.shape[-1]) for m, f in features.items()}
    if len(set(widths.values())) != 1:
        raise ValueError(
            "The paper's concat presets use one width n for every encoder "
            f"(kn -> n); the encoders output {widths}. Use fusion='concat' "
            "with `fusion_hidden_units`."
        )
    return (next(iter(widths.values())),) * layers
