"""`mid_fusion_model`: audio and visual streams fused after an intermediate
block (the G-Blend paper's supplementary 6.2-6.4), with a uni-modal head on
each stream's pre-fusion features."""

from typing import Mapping, Optional, Sequence

import keras

from keras_gblend.inputs import input_checks
from keras_gblend.model.blended_model import BlendedModel
from keras_gblend.networks.late_fusion import _input_shape
from keras_gblend.networks.mid_fusion_layers import (
    ChannelGate,
    MidConcat,
    NonLocalGate,
    check_streams,
)
from keras_gblend.model.gradient_transform import GradientTransform

MID_FUSIONS = ("mid_concat_1d", "mid_concat_2d", "mid_concat_3d", "nl_gate",
               "mid_se_gate")
SE_DIRECTIONS = ("audio_to_visual", "visual_to_audio", "both")
# The uni-modal heads: each modality's own copy of the post-fusion blocks on
# its stream before a linear classifier (the same depth as the joint head
# after the fusion point), or a linear classifier on the pooled pre-fusion
# map (the earlier design).
UNIMODAL_HEADS = ("matched", "linear")


# Convolution of a post-fusion block by the map it works on: layer class
# and kernel ("frames": a 2-D convolution on each frame of a visual map).
_CONVOLUTIONS = {
    "1d": (keras.layers.Conv1D, 3),
    "2d": (keras.layers.Conv2D, 3),
    "3d": (keras.layers.Conv3D, 3),
    "frames": (keras.layers.Conv3D, (1, 3, 3)),
}


def _conv_block(x, width: int, kind: str, name: str, strides=1):
    """Convolution (`_CONVOLUTIONS[kind]`), batch norm, ReLU."""
    layer_class, kernel = _CONVOLUTIONS[kind]
    x = layer_class(width, kernel, strides=strides, padding="same",
                    use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _conv_blocks(x, widths, kind: str, prefix: str):
    """`_conv_block`s of `widths` in turn, named `<prefix>0`, `<prefix>1`..."""
    for index, width in enumerate(widths):
        x = _conv_block(x, width, kind, f"{prefix}{index}")
    return x


def _global_pool(x, name: str):
    """Mean over every axis but batch and channels."""
    rank = len(x.shape)
    pool = {3: keras.layers.GlobalAveragePooling1D,
            4: keras.layers.GlobalAveragePooling2D,
            5: keras.layers.GlobalAveragePooling3D}[rank]
    return pool(name=name)(x)


def _shorten_audio(audio, visual_steps: int, name: str):
    """Stride-2 convolutions on the audio's time axis (the paper's 2-D
    concat) while it stays at least as long as the visual stream."""
    index = 0
    while audio.shape[1] // 2 >= visual_steps:
        audio = _conv_block(audio, int(audio.shape[-1]), "2d",
                            f"{name}_down{index}", strides=(2, 1))
        index += 1
    return audio


def _stream_roles(maps):
    """`(audio modality, visual modality)` from the ranks of their maps."""
    ranks = {m: len(t.shape) for m, t in maps.items()}
    audio = [m for m, r in ranks.items() if r == 4]
    visual = [m for m, r in ranks.items() if r == 5]
    if len(maps) != 2 or len(audio) != 1 or len(visual) != 1:
        raise ValueError(
            "Mid fusion takes two streams: one trunk giving an audio map "
            "(batch, time, frequency, channels) and one giving a visual map "
            "(batch, time, height, width, channels); got output shapes "
            f"{ {m: tuple(t.shape) for m, t in maps.items()} }."
        )
    return audio[0], visual[0]


def mid_fusion_model(
    trunks: Mapping[str, keras.layers.Layer],
    num_classes: int,
    fusion: str = "mid_concat_2d",
    post_fusion_widths: Sequence[int] = (64,),
    se_direction: str = "both",
    se_residual: bool = False,
    nl_units: Optional[int] = None,
    fusion_dropout: float = 0.0,
    input_shapes: Optional[Mapping[str, Sequence[Optional[int]]]] = None,
    joint_output: str = "joint",
    modulation: Optional[GradientTransform] = None,
    blend_scope: str = "shared",
    multi_label: bool = False,
    name: str = "mid_fusion",
    unimodal_heads: str = "matched",
) -> BlendedModel:
    """Builds an audio-visual classifier fused after an intermediate block.

    `trunks` are the pre-fusion parts of the two encoders: one maps its
    input to an audio map `(time, frequency, channels)`, the other to a
    visual map `(time, height, width, channels)` (roles read from the
    ranks; e.g. `kg.encoders.spectrogram_trunk`, `kg.encoders.frames_trunk`).
    Each modality's uni-modal head (`unimodal_heads="matched"`, default) is
    that modality's own copy of the post-fusion blocks on its stream
    (Conv2D on audio, per-frame Conv2D on visual, `post_fusion_widths`),
    pooled and classified: a uni-modal path as deep after the fusion point
    as the joint head's, so that G-Blend's ΔG and ΔO compare like with like
    (with `"linear"`, a linear classifier on the pooled pre-fusion map, two
    conv blocks against the joint head's three, G-Blend handed most of the
    weight to the weak heads and hurt: docs/architectures.md). The joint
    head:

    - `"mid_concat_1d"`, `"mid_concat_2d"`, `"mid_concat_3d"` (6.2):
      `MidConcat` (for 2-D, after stride-2 convolutions that shorten the
      audio towards the visual's time length), then a shared post-fusion
      trunk of Conv1D/2D/3D-BN-ReLU blocks (`post_fusion_widths`), global
      average pooling and a linear classifier;
    - `"nl_gate"` (6.4): the visual map is gated by a `NonLocalGate` whose
      Key/Value is the 2-D mid-concat of both streams; `"mid_se_gate"`
      (6.3): `ChannelGate` from one stream to the other
      (`se_direction`); then each stream's own post-fusion blocks
      (per-frame 2-D convolutions for visual), pooled, concatenated and
      classified.

    The uni-modal heads share no variable, so G-Blend estimates them in
    one clone; the fusions do not split into per-modality logits, so
    OGM-GE scores the uni-modal heads.

    Args:
        trunks: `{modality: layer or model}` giving the pre-fusion maps.
        num_classes: number of classes.
        fusion: one of `MID_FUSIONS`.
        post_fusion_widths: conv widths after the fusion point.
        se_direction: `"audio_to_visual"`, `"visual_to_audio"` or `"both"`.
        se_residual: SE gate adds the scaled features instead of replacing.
        nl_units: width of the non-local projections (default: half the
            visual channels).
        fusion_dropout: dropout before the joint classifier.
        input_shapes, joint_output, modulation, blend_scope, multi_label,
            name: as `kg.late_fusion_model`.
        unimodal_heads: `"matched"` or `"linear"` (see above).

    Returns:
        An uncompiled `BlendedModel`.

    Example:

    ```python
    model = kg.mid_fusion_model(
        {"audio": kg.encoders.spectrogram_trunk((101, 64, 1)),
         "visual": kg.encoders.frames_trunk((3, 32, 32, 3))},
        num_classes=10, fusion="mid_concat_2d")
    ```
    """
    num_classes = input_checks.check_num_classes(num_classes, multi_label)
    _check_arguments(trunks, fusion, se_direction, fusion_dropout,
                     joint_output)
    if unimodal_heads not in UNIMODAL_HEADS:
        raise ValueError(f"`unimodal_heads` must be one of {UNIMODAL_HEADS}, "
                         f"got {unimodal_heads!r}.")
    inputs, maps, outputs = {}, {}, {}
    for modality, trunk in trunks.items():
        inputs[modality] = keras.Input(
            _input_shape(modality, trunk, input_shapes), name=modality)
        maps[modality] = trunk(inputs[modality])
    audio_name, visual_name = _stream_roles(maps)
    check_streams(maps[audio_name].shape, maps[visual_name].shape,
                  "mid_fusion_model")
    for modality, feature_map in maps.items():
        kind = "2d" if modality == audio_name else "frames"
        outputs[modality] = _unimodal_head(
            feature_map, kind, num_classes, post_fusion_widths,
            unimodal_heads == "matched", modality)
    features = _joint_features(
        fusion, maps[audio_name], maps[visual_name], post_fusion_widths,
        se_direction, se_residual, nl_units)
    if fusion_dropout:
        features = keras.layers.Dropout(fusion_dropout,
                                        name="fusion_dropout")(features)
    outputs[joint_output] = keras.layers.Dense(
        num_classes, name=joint_output)(features)
    return BlendedModel(
        inputs=inputs, outputs=outputs, joint_output=joint_output,
        modulation=modulation, blend_scope=blend_scope,
        multi_label=multi_label, name=name)


def _check_arguments(trunks, fusion, se_direction, fusion_dropout,
                     joint_output) -> None:
    """Raises `ValueError` naming the argument of `mid_fusion_model` that
    is not allowed."""
    if fusion not in MID_FUSIONS:
        raise ValueError(
            f"`fusion` must be one of {MID_FUSIONS}, got {fusion!r}.")
    if se_direction not in SE_DIRECTIONS:
        raise ValueError(
            f"`se_direction` must be one of {SE_DIRECTIONS}, got "
            f"{se_direction!r}.")
    if not 0 <= fusion_dropout < 1:
        raise ValueError(
            f"`fusion_dropout` must be in [0, 1), got {fusion_dropout}.")
    if joint_output in trunks:
        raise ValueError(f"Modality names must differ from {joint_output!r}.")


def _unimodal_head(feature_map, kind, num_classes, widths, matched, modality):
    """A modality's head: (with `matched`) its own post-fusion blocks on
    its stream, then global pooling and a linear classifier."""
    if matched:
        feature_map = _conv_blocks(feature_map, widths, kind,
                                   f"{modality}_head_block")
    return keras.layers.Dense(num_classes, name=f"{modality}_head")(
        _global_pool(feature_map, f"{modality}_pool"))


def _joint_features(fusion, audio, visual, widths, se_direction, se_residual,
                    nl_units):
    """The joint head's pooled features: the fusion, then the post-fusion
    blocks (shared for mid-concat, per stream for the gates)."""
    if fusion.startswith("mid_concat"):
        dims = int(fusion[-2])
        if dims == 2:
            audio = _shorten_audio(audio, int(visual.shape[1]), "fusion_audio")
        fused = MidConcat(dims, name="mid_concat")([audio, visual])
        fused = _conv_blocks(fused, widths, f"{dims}d", "fusion_block")
        return _global_pool(fused, "fusion_pool")
    if fusion == "nl_gate":
        key_value = MidConcat(2, name="mid_concat")([
            _shorten_audio(audio, int(visual.shape[1]), "fusion_audio"),
            visual])
        visual = NonLocalGate(nl_units, name="nl_gate")([visual, key_value])
    else:
        gated_audio = audio
        if se_direction in ("visual_to_audio", "both"):
            gated_audio = ChannelGate(
                residual=se_residual, name="se_gate_to_audio")([audio, visual])
        if se_direction in ("audio_to_visual", "both"):
            visual = ChannelGate(
                residual=se_residual, name="se_gate_to_visual")([visual, audio])
        audio = gated_audio
    # Interleaved: the layers are created (and seeded) in this order.
    for index, width in enumerate(widths):
        audio = _conv_block(audio, width, "2d", f"fusion_audio_block{index}")
        visual = _conv_block(visual, width, "frames",
                             f"fusion_visual_block{index}")
    return keras.layers.Concatenate(name="fusion_concat")(
        [_global_pool(audio, "fusion_audio_pool"),
         _global_pool(visual, "fusion_visual_pool")])
