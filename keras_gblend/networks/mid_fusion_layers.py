"""Layers that bring an audio and a visual stream together mid-network.

The G-Blend paper's supplementary 6.2-6.4. The streams are feature maps:
audio `(batch, time, frequency, channels)` (2-D per step), visual
`(batch, time, height, width, channels)` (3-D per step). Their time axes
(axis 1) must be static.

- `MidConcat(dims)`: the three ways of matching dimensions before a
  concatenation along channels (1-D, 2-D, 3-D concat);
- `NonLocalGate`: Query-Key-Value attention (Wang et al.'s non-local block,
  embedded Gaussian) from one stream to another;
- `ChannelGate`: squeeze-and-excitation from one stream's pooled features
  to the other's channels (SE gate).
"""

from typing import Any, Dict

import keras
import numpy as np
from keras import ops


def match_time(x, length: int):
    """`x` resampled to `length` steps on axis 1 by nearest neighbour:
    steps are replicated when `length` is longer (the paper's "upsample
    visual stream by replicating features on the temporal dimension") and
    picked evenly when it is shorter.

    Example:

    >>> match_time(np.arange(3.0)[None, :, None], 5)[0, :, 0].tolist()
    [0.0, 0.0, 1.0, 1.0, 2.0]
    """
    steps = int(x.shape[1])
    if steps == length:
        return x
    indices = (np.arange(length) * steps) // length
    return ops.take(x, indices.astype("int32"), axis=1)


def check_streams(audio_shape, visual_shape, who: str) -> None:
    """Raises `ValueError`, naming `who`, unless the shapes are an audio
    map and a visual map with static time axes."""
    if len(audio_shape) != 4 or len(visual_shape) != 5:
        raise ValueError(
            f"{who} takes [audio (batch, time, frequency, channels), visual "
            f"(batch, time, height, width, channels)], got shapes "
            f"{tuple(audio_shape)} and {tuple(visual_shape)}."
        )
    if audio_shape[1] is None or visual_shape[1] is None:
        raise ValueError(
            f"{who} needs static time axes to match them, got audio "
            f"{tuple(audio_shape)} and visual {tuple(visual_shape)}."
        )


@keras.saving.register_keras_serializable(package="keras_gblend")
class MidConcat(keras.layers.Layer):
    """Concatenates an audio and a visual feature map along channels after
    matching their dimensions (supplementary 6.2). Inputs `[audio,
    visual]`; the output has the audio stream's time length:

    - `dims=1`: audio averaged over frequency, visual over space:
      `(batch, time, Ca + Cv)`;
    - `dims=2`: visual averaged over space and tiled over frequency:
      `(batch, time, frequency, Ca + Cv)`;
    - `dims=3`: audio averaged over frequency and tiled over space:
      `(batch, time, height, width, Ca + Cv)`.

    The visual stream is resampled to the audio's time length
    (`match_time`); for the paper's 2-D concat, first shorten the audio
    stream with stride-2 convolutions (`mid_fusion_model` does).

    Args:
        dims: 1, 2 or 3.

    Example:

    ```python
    fused = kg.mid_fusion_layers.MidConcat(2)([audio_map, visual_map])
    ```
    """

    def __init__(self, dims: int, **kwargs):
        super().__init__(**kwargs)
        if dims not in (1, 2, 3):
            raise ValueError(f"`dims` must be 1, 2 or 3, got {dims!r}.")
        self.dims = int(dims)

    def build(self, input_shape):
        check_streams(*input_shape, who="MidConcat")
        self.built = True

    def call(self, streams):
        audio, visual = streams
        visual = match_time(visual, int(audio.shape[1]))
        if self.dims == 1:
            parts = [ops.mean(audio, axis=2), ops.mean(visual, axis=(2, 3))]
        elif self.dims == 2:
            pooled = ops.mean(visual, axis=(2, 3))[:, :, None, :]
            parts = [audio, ops.repeat(pooled, audio.shape[2], axis=2)]
        else:
            pooled = ops.mean(audio, axis=2)[:, :, None, None, :]
            tiled = ops.repeat(
                ops.repeat(pooled, visual.shape[2], axis=2),
                visual.shape[3], axis=3)
            parts = [tiled, visual]
        return ops.concatenate(parts, axis=-1)

    def compute_output_shape(self, input_shape):
        audio, visual = input_shape
        channels = audio[-1] + visual[-1]
        if self.dims == 1:
            return (audio[0], audio[1], channels)
        if self.dims == 2:
            return (audio[0], audio[1], audio[2], channels)
        return (audio[0], audio[1], visual[2], visual[3], channels)

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "dims": self.dims}


def _positions(x):
    """`(batch, ..., channels)` -> `(batch, positions, channels)`."""
    return ops.reshape(x, (ops.shape(x)[0], -1, x.shape[-1]))


@keras.saving.register_keras_serializable(package="keras_gblend")
class NonLocalGate(keras.layers.Layer):
    """Non-local gate (supplementary 6.4, Fig. 2; Wang et al. 2018's
    embedded-Gaussian non-local block): every position of the Query stream
    attends to every position of the Key/Value stream,

    `z = query + BN(W_z(softmax(θ(q) φ(kv)ᵀ / sqrt(units)) g(kv)))`,

    so the output has the Query's shape. `θ, φ, g, W_z` are 1x1
    projections (Dense on channels); the batch norm's scale starts at 0, so
    the gate starts as the identity (as the non-local paper). The
    `1/sqrt(units)` keeps the softmax out of saturation at initialisation
    (Transformer attention, of which the block is an instance).

    Inputs `[query, key_value]`, any ranks >= 3 (channels last).

    Args:
        units: width of `θ, φ, g` (default: half the Query's channels).

    Example:

    ```python
    gated = kg.mid_fusion_layers.NonLocalGate()([visual_map, mid_concat_2d])
    ```
    """

    def __init__(self, units=None, **kwargs):
        super().__init__(**kwargs)
        self.units = None if units is None else int(units)

    def build(self, input_shape):
        query_shape, _ = input_shape
        channels = int(query_shape[-1])
        units = self.units or max(1, channels // 2)
        self.theta = keras.layers.Dense(units, name="theta")
        self.phi = keras.layers.Dense(units, name="phi")
        self.g = keras.layers.Dense(units, name="g")
        self.out = keras.layers.Dense(channels, name="w_z")
        self.norm = keras.layers.BatchNormalization(
            gamma_initializer="zeros", name="w_z_bn")
        kv_shape = (None, None, int(input_shape[1][-1]))
        for layer in (self.phi, self.g):
            layer.build(kv_shape)
        self.theta.build((None, None, channels))
        self.out.build((None, None, units))
        self.norm.build((None, None, channels))
        self.scale = 1.0 / float(np.sqrt(units))
        self.built = True

    def attention(self, query, key_value):
        """The attention map `(batch, query positions, key positions)`."""
        theta = self.theta(_positions(query))
        phi = self.phi(_positions(key_value))
        return ops.softmax(
            ops.matmul(theta, ops.transpose(phi, (0, 2, 1))) * self.scale,
            axis=-1)

    def call(self, streams, training=None):
        query, key_value = streams
        attended = ops.matmul(self.attention(query, key_value),
                              self.g(_positions(key_value)))
        update = self.norm(self.out(attended), training=training)
        return query + ops.reshape(update, ops.shape(query))

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="keras_gblend")
class ChannelGate(keras.layers.Layer):
    """SE gate (supplementary 6.3; Hu et al.'s squeeze-and-excitation):
    the source stream, averaged over all its positions, gives channel
    weights `s = sigmoid(W_2 relu(W_1 pool(source)))` for the target, which
    is scaled by them, `target * s`, or with `residual=True` (ResNet-style
    skip, the paper's other option) `target + target * s`.

    Inputs `[target, source]`, channels last: feature maps, or already
    pooled feature vectors `(batch, channels)` (`fusion_layers.SEGateFusion`
    gates the encoders' outputs with it).

    Args:
        reduction: `W_1` maps to `target channels / reduction` units (the
            SE paper: 16; at least 1 unit).
        residual: add the scaled features to the target instead of
            replacing it.

    Example:

    ```python
    gated_visual = kg.mid_fusion_layers.ChannelGate()([visual, audio])
    ```
    """

    def __init__(self, reduction: int = 4, residual: bool = False, **kwargs):
        super().__init__(**kwargs)
        if int(reduction) < 1:
            raise ValueError(f"`reduction` must be >= 1, got {reduction}.")
        self.reduction = int(reduction)
        self.residual = bool(residual)

    def build(self, input_shape):
        target_shape, source_shape = input_shape
        channels = int(target_shape[-1])
        self.squeeze = keras.layers.Dense(
            max(1, channels // self.reduction), activation="relu",
            name="squeeze")
        self.excite = keras.layers.Dense(channels, activation="sigmoid",
                                         name="excite")
        self.squeeze.build((None, int(source_shape[-1])))
        self.excite.build((None, max(1, channels // self.reduction)))
        self.built = True

    def gate(self, source):
        """The channel weights `(batch, target channels)`, in (0, 1)."""
        if len(source.shape) > 2:
            source = ops.mean(source,
                              axis=tuple(range(1, len(source.shape) - 1)))
        return self.excite(self.squeeze(source))

    def call(self, streams):
        target, source = streams
        weights = self.gate(source)
        weights = ops.reshape(
            weights, (-1,) + (1,) * (len(target.shape) - 2) + (target.shape[-1],))
        scaled = target * weights
        return target + scaled if self.residual else scaled

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "reduction": self.reduction,
                "residual": self.residual}
