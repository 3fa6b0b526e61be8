"""Fusion classifiers for late-fusion models.

Each layer maps a list of per-modality feature tensors `(batch, d_m)` to
joint logits. `ConcatFusion` and `SumFusion` are linear in each modality, so
the joint logits split exactly into per-modality contributions; they return
those too, as a `(batch, k, classes)` tensor that OGM-GE scores (the
decomposition of the OGM-GE reference code):

- concat: `out_m = f_m · W[rows of m] + b / k` (sum over m = joint logits);
- sum: `out_m = f_m · W_m + b_m` (each modality's own classifier).

`FiLMFusion`, `GatedFusion`, `LowRankFusion` (LMF) and `SEGateFusion` do
not decompose; OGM-GE then scores the uni-modal heads instead.
"""

from typing import Any, Dict, List

import keras
from keras import ops

from keras_gblend.networks.mid_fusion_layers import ChannelGate


class _FusionBase(keras.layers.Layer):
    """Common config: number of classes."""

    def __init__(self, num_classes: int, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config["num_classes"] = self.num_classes
        return config


@keras.saving.register_keras_serializable(package="keras_gblend")
class ConcatFusion(_FusionBase):
    """Linear classifier on concatenated features (one kernel, one bias).

    Returns `(joint_logits, per_modality_logits)`; see the module docstring.

    Args:
        num_classes: number of classes.

    Example:

    ```python
    joint, parts = kg.fusion_layers.ConcatFusion(10)([f_audio, f_video])
    ```
    """

    def build(self, input_shape):
        self.widths = [int(shape[-1]) for shape in input_shape]
        self.kernel = self.add_weight(
            shape=(sum(self.widths), self.num_classes),
            initializer="glorot_uniform",
            name="kernel",
        )
        self.bias = self.add_weight(
            shape=(self.num_classes,), initializer="zeros", name="bias"
        )

    def call(self, features: List):
        share = ops.cast(1.0 / len(features), self.bias.dtype)
        parts, start = [], 0
        for feature, width in zip(features, self.widths):
            block = self.kernel[start:start + width]
            parts.append(ops.matmul(feature, block) + self.bias * share)
            start += width
        per_modality = ops.stack(parts, axis=1)
        return ops.sum(per_modality, axis=1), per_modality



@keras.saving.register_keras_serializable(package="keras_gblend")
class SumFusion(_FusionBase):
    """One linear classifier per modality; the joint logits are their sum.

    Returns `(joint_logits, per_modality_logits)`.

    Args:
        num_classes: number of classes.
    """

    def build(self, input_shape):
        self.kernels, self.biases = [], []
        for index, shape in enumerate(input_shape):
            self.kernels.append(
                self.add_weight(
                    shape=(int(shape[-1]), self.num_classes),
                    initializer="glorot_uniform",
                    name=f"kernel_{index}",
                )
            )
            self.biases.append(
                self.add_weight(
                    shape=(self.num_classes,),
                    initializer="zeros",
                    name=f"bias_{index}",
                )
            )

    def call(self, features: List):
        parts = [
            ops.matmul(f, w) + b
            for f, w, b in zip(features, self.kernels, self.biases)
        ]
        per_modality = ops.stack(parts, axis=1)
        return ops.sum(per_modality, axis=1), per_modality



@keras.saving.register_keras_serializable(package="keras_gblend")
class FiLMFusion(_FusionBase):
    """FiLM (Perez et al., 2018): one modality conditions the others.

    `gamma, beta = split(Dense(2d)(f_c))`, `joint = Dense(C)(gamma * h +
    beta)` where `f_c` is the conditioning modality's features and `h` the
    concatenation of the others' (width `d`). With two modalities and
    `conditioning_index=0` this is the OGM-GE reference's `FiLM(x_film=True)`.

    Args:
        num_classes: number of classes.
        conditioning_index: which modality produces `gamma` and `beta`.
    """

    def __init__(self, num_classes: int, conditioning_index: int = 0, **kwargs):
        super().__init__(num_classes, **kwargs)
        self.conditioning_index = int(conditioning_index)

    def build(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError("FiLMFusion needs two or more modalities.")
        widths = [int(s[-1]) for s in input_shape]
        self.film_width = sum(widths) - widths[self.conditioning_index]
        self.film = keras.layers.Dense(2 * self.film_width, name="film")
        self.film.build(tuple(input_shape[self.conditioning_index]))
        self.out = keras.layers.Dense(self.num_classes, name="out")
        self.out.build((None, self.film_width))

    def call(self, features: List):
        conditioning = features[self.conditioning_index]
        others = [
            f for i, f in enumerate(features) if i != self.conditioning_index
        ]
        modulated = others[0] if len(others) == 1 else ops.concatenate(
            others, axis=-1
        )
        gamma, beta = ops.split(self.film(conditioning), 2, axis=-1)
        return self.out(gamma * modulated + beta)


    def get_config(self):
        config = super().get_config()
        config["conditioning_index"] = self.conditioning_index
        return config


@keras.saving.register_keras_serializable(package="keras_gblend")
class GatedFusion(_FusionBase):
    """Gated fusion (Kiela et al., 2018): one modality gates the others.

    `p_m = Dense(d)(f_m)`, `joint = Dense(C)(sigmoid(p_g) * sum_{m != g}
    p_m)`. With two modalities and `gate_index=0` this is the OGM-GE
    reference's `GatedFusion(x_gate=True)`.

    Args:
        num_classes: number of classes.
        units: projection width `d`.
        gate_index: which modality produces the gate.
    """

    def __init__(
        self, num_classes: int, units: int = 128, gate_index: int = 0, **kwargs
    ):
        super().__init__(num_classes, **kwargs)
        self.units = int(units)
        self.gate_index = int(gate_index)

    def build(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError("GatedFusion needs two or more modalities.")
        self.projections = []
        for index, shape in enumerate(input_shape):
            projection = keras.layers.Dense(self.units, name=f"proj_{index}")
            projection.build(tuple(shape))
            self.projections.append(projection)
        self.out = keras.layers.Dense(self.num_classes, name="out")
        self.out.build((None, self.units))

    def call(self, features: List):
        projected = [p(f) for p, f in zip(self.projections, features)]
        gate = ops.sigmoid(projected[self.gate_index])
        gated = ops.sum(
            ops.stack(
                [p for i, p in enumerate(projected) if i != self.gate_index],
                axis=0,
            ),
            axis=0,
        )
        return self.out(gate * gated)


    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, gate_index=self.gate_index)
        return config


@keras.saving.register_keras_serializable(package="keras_gblend")
class LowRankFusion(_FusionBase):
    """Low-rank multimodal fusion, LMF (Liu et al., ACL 2018).

    The tensor fusion `(z_1 ⊗ ... ⊗ z_k) · W` of the features with a 1
    appended, `z_m = [f_m, 1]`, with `W` of rank `r` factored per modality:
    `h = sum_r lambda_r * prod_m (z_m · A_m^(r)) + b`, `h` of width `units`;
    then ReLU and a linear classifier. Used by the G-Blend paper's
    "Different Architectures" comparison.

    Args:
        num_classes: number of classes.
        units: width of the fused representation `h`.
        rank: rank `r` of the factorisation.

    Example:

    ```python
    joint = kg.fusion_layers.LowRankFusion(10, units=64, rank=4)([fa, fv])
    ```
    """

    def __init__(self, num_classes: int, units: int = 128, rank: int = 4,
                 **kwargs):
        super().__init__(num_classes, **kwargs)
        self.units = int(units)
        self.rank = int(rank)

    def build(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError("LowRankFusion needs two or more modalities.")
        self.factors = [
            self.add_weight(
                shape=(self.rank, int(shape[-1]) + 1, self.units),
                initializer="glorot_uniform", name=f"factor_{index}",
            )
            for index, shape in enumerate(input_shape)
        ]
        self.rank_weights = self.add_weight(
            shape=(self.rank,), initializer="glorot_uniform",
            name="rank_weights",
        )
        self.fusion_bias = self.add_weight(
            shape=(self.units,), initializer="zeros", name="fusion_bias"
        )
        self.out = keras.layers.Dense(self.num_classes, name="out")
        self.out.build((None, self.units))

    def call(self, features: List):
        product = None
        for feature, factor in zip(features, self.factors):
            ones = ops.ones_like(feature[:, :1])
            z = ops.concatenate([feature, ones], axis=-1)  # (batch, d + 1)
            projected = ops.einsum("bd,rdu->bru", z, factor)
            product = projected if product is None else product * projected
        fused = ops.einsum("bru,r->bu", product, self.rank_weights)
        return self.out(ops.relu(fused + self.fusion_bias))

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, rank=self.rank)
        return config


@keras.saving.register_keras_serializable(package="keras_gblend")
class SEGateFusion(_FusionBase):
    """Squeeze-and-excitation gate between two streams, then concat.

    One stream's features give channel weights for the other's:
    `g = sigmoid(W_2 relu(W_1 f_source))`, `f_target' = g * f_target`;
    the joint logits are a linear classifier on `[f_source, f_target']`
    (the G-Blend paper's SE gate, supplementary 6.3, applied here to the
    encoders' pooled output features).

    Args:
        num_classes: number of classes.
        source_index: the stream that produces the gate (0 or 1).
        reduction: bottleneck ratio of `W_1`.

    Example:

    ```python
    joint = kg.fusion_layers.SEGateFusion(10, source_index=1)([fa, fv])
    ```
    """

    def __init__(self, num_classes: int, source_index: int = 0,
                 reduction: int = 4, **kwargs):
        super().__init__(num_classes, **kwargs)
        self.source_index = int(source_index)
        self.reduction = int(reduction)

    def build(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError("SEGateFusion gates one stream by the other: "
                             "it needs exactly two modalities.")
        if self.source_index not in (0, 1):
            raise ValueError(f"`source_index` must be 0 or 1, got "
                             f"{self.source_index}.")
        source = int(input_shape[self.source_index][-1])
        target = int(input_shape[1 - self.source_index][-1])
        self.channel_gate = ChannelGate(self.reduction, name="channel_gate")
        self.channel_gate.build([(None, target), (None, source)])
        self.out = keras.layers.Dense(self.num_classes, name="out")
        self.out.build((None, source + target))

    def gate(self, features: List):
        """The channel weights `g` of the target stream."""
        return self.channel_gate.gate(features[self.source_index])

    def call(self, features: List):
        source = features[self.source_index]
        target = self.channel_gate([features[1 - self.source_index], source])
        return self.out(ops.concatenate([source, target], axis=-1))

    def get_config(self):
        config = super().get_config()
        config.update(source_index=self.source_index, reduction=self.reduction)
        return config
