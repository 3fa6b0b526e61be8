"""`OGMGE`: the configuration of OGM-GE, the gradient transform a
`BlendedModel` takes as `modulation=`."""

import math
from typing import Any, Dict, Optional, Sequence

import keras
from keras import ops

from keras_gblend.inputs.input_checks import check_integer
from keras_gblend.model.gradient_transform import GradientTransform
from keras_gblend.ogm.gradient_modulator import GradientModulator
from keras_gblend.ogm.transforms import COEFFICIENT_FORMS

PARAMS = ("kernels", "conv", "all")
SCORE_SOURCES = ("auto", "fusion", "heads")
# Where the coefficient acts: on the gradient (the paper and its reference
# code, for SGD), or on the encoder's learning rate (survives adaptive
# optimizers, which divide by the gradient's running scale).
APPLY_TO = ("gradient", "learning_rate")


@keras.saving.register_keras_serializable(package="keras_gblend")
class OGMGE(GradientTransform):
    """Configuration of OGM-GE for a `BlendedModel`.

    Args:
        alpha: modulation strength (the reference uses 0.1-0.8).
        start_epoch: first epoch (0-based, inclusive) of the window.
        end_epoch: last epoch (inclusive); `None`: no end. Reference: 50.
        modulation: apply the OGM coefficient (False: GE noise only).
        noise: add GE noise (False: OGM only).
        params: which encoder variables are modulated: `"kernels"`: every
            kernel (rank >= 2: convolution and Dense kernels); `"conv"`:
            exactly the reference's set, 4-D variables only (Conv2D
            kernels; an MLP encoder has none); `"all"`: every variable.
        score_source: `"fusion"`: split the joint logits (concat/sum fusion);
            `"heads"`: the uni-modal heads' logits; `"auto"`: fusion when the
            model exposes its per-modality logits, else heads.
        encoder_layers: optional `{modality: [layer names]}` naming each
            modality's encoder. Default: read from the graph, as the
            variables shared by modality m's head and the joint head.
        seed: seed of the GE noise.
        apply_to: where the coefficient `k` acts. `"gradient"` (the paper,
            its reference code): the encoder's gradient is scaled by `k`;
            with SGD the step shrinks by `k`, but an adaptive optimizer
            (Adam, AdamW, RMSprop) divides by the gradient's running scale
            and undoes it. `"learning_rate"`: the optimizer's learning rate
            for that encoder's variables is scaled by `k` on that step, so
            its step shrinks by `k` under any optimizer whose step is linear
            in the learning rate (SGD, with or without momentum, Adam,
            AdamW's gradient step; AdamW's decoupled weight decay is not
            scaled). GE noise is drawn as in gradient mode (its std from
            the unscaled gradient) and added before the optimizer, so
            under SGD the scaled step shrinks it by `k` as well.
        coefficient: the coefficient's form. `"reference"` (the paper, its
            reference code): `k = 1 - tanh(alpha * rho)` for the dominant
            modality, so one barely ahead (`rho` just above 1) is already
            slowed to `1 - tanh(alpha)`, whichever modality that is on the
            batch. `"excess"`: `k = 1 - tanh(alpha * (rho - 1))`, which
            slows by the excess over balance only and is 1 at balance.

    Example:

    ```python
    model = kg.late_fusion_model(
        encoders, num_classes=6, fusion="concat",
        modulation=kg.OGMGE(alpha=0.8, start_epoch=0, end_epoch=50))
    ```
    """

    def __init__(
        self,
        alpha: float = 0.1,
        start_epoch: int = 0,
        end_epoch: Optional[int] = 50,
        modulation: bool = True,
        noise: bool = True,
        params: str = "kernels",
        score_source: str = "auto",
        encoder_layers: Optional[Dict[str, Sequence[str]]] = None,
        seed: Optional[int] = None,
        apply_to: str = "gradient",
        coefficient: str = "reference",
    ):
        if coefficient not in COEFFICIENT_FORMS:
            raise ValueError(
                f"`coefficient` must be one of {COEFFICIENT_FORMS}, got "
                f"{coefficient!r}.")
        if apply_to not in APPLY_TO:
            raise ValueError(
                f"`apply_to` must be one of {APPLY_TO}, got {apply_to!r}.")
        if params not in PARAMS:
            raise ValueError(f"`params` must be one of {PARAMS}, got {params!r}.")
        if score_source not in SCORE_SOURCES:
            raise ValueError(
                f"`score_source` must be one of {SCORE_SOURCES}, got "
                f"{score_source!r}."
            )
        if not 0 <= alpha < math.inf:
            raise ValueError(f"`alpha` must be finite and >= 0, got {alpha}.")
        for name, value in (("start_epoch", start_epoch),
                            ("end_epoch", end_epoch)):
            check_integer(name, value, 0, optional=True)
        if end_epoch is not None and end_epoch < start_epoch:
            raise ValueError(
                f"`end_epoch` ({end_epoch}) is before `start_epoch` "
                f"({start_epoch})."
            )
        if not (modulation or noise):
            raise ValueError(
                "OGMGE with modulation=False and noise=False does nothing; "
                "pass `modulation=None` to the model instead."
            )
        self.alpha = float(alpha)
        self.start_epoch = int(start_epoch)
        self.end_epoch = None if end_epoch is None else int(end_epoch)
        self.modulation = bool(modulation)
        self.noise = bool(noise)
        self.params = params
        self.score_source = score_source
        self.encoder_layers = (
            None
            if encoder_layers is None
            else {m: list(names) for m, names in encoder_layers.items()}
        )
        self.seed = seed
        self.apply_to = apply_to
        self.coefficient = coefficient

    def get_config(self) -> Dict[str, Any]:
        return {
            "alpha": self.alpha,
            "start_epoch": self.start_epoch,
            "end_epoch": self.end_epoch,
            "modulation": self.modulation,
            "noise": self.noise,
            "params": self.params,
            "score_source": self.score_source,
            "encoder_layers": self.encoder_layers,
            "seed": self.seed,
            "apply_to": self.apply_to,
            "coefficient": self.coefficient,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def in_window(self, epoch):
        """Boolean tensor: is `epoch` inside the modulation window?"""
        inside = epoch >= self.start_epoch
        if self.end_epoch is not None:
            inside = ops.logical_and(inside, epoch <= self.end_epoch)
        return inside

    def bind(self, model) -> GradientModulator:
        """The `GradientModulator` that applies this configuration to
        `model`'s gradients."""
        return GradientModulator(model)
