"""`as_blended_model`: a functional model with named outputs as a
`BlendedModel`."""

from typing import Mapping, Optional

import keras

from keras_gblend.model.blended_model import BlendedModel
from keras_gblend.model.gradient_transform import GradientTransform


def as_blended_model(
    model: keras.Model,
    joint_output: str = "joint",
    output_modalities: Optional[Mapping[str, str]] = None,
    modality_logits_output: Optional[str] = None,
    modulation: Optional[GradientTransform] = None,
    blend_scope: str = "shared",
) -> BlendedModel:
    """Wraps a functional model with named outputs into a `BlendedModel`.

    The new model shares the original's layers and variables.

    Args:
        model: functional model whose outputs are named per modality (a dict
            of outputs, or output layers named after the modalities) plus a
            joint output.
        joint_output: name of the joint output.
        output_modalities: optional `{output_name: modality}` renaming, for
            models whose output layers cannot share their modality input's
            name (Keras needs unique layer names).
        modality_logits_output: see `BlendedModel`.
        modulation: optional gradient transform (`kg.OGMGE`).
        blend_scope: `"all"` or `"shared"` (see `BlendedModel`).

    Returns:
        A `BlendedModel` over the same graph.

    Example:

    ```python
    blended = kg.as_blended_model(
        my_functional_model, joint_output="fused",
        output_modalities={"audio_logits": "audio", "video_logits": "video"})
    ```
    """
    if isinstance(model, BlendedModel):
        return model
    outputs = model.output
    if not isinstance(outputs, dict):
        outputs = dict(zip(model.output_names, model.outputs))
    if output_modalities:
        unknown = sorted(set(output_modalities) - set(outputs))
        if unknown:
            raise ValueError(
                f"`output_modalities` names unknown output(s) {unknown}; the "
                f"model's outputs are {list(outputs)}.")
        outputs = {output_modalities.get(k, k): v for k, v in outputs.items()}
    return BlendedModel(
        inputs=model.input,
        outputs=outputs,
        joint_output=joint_output,
        modality_logits_output=modality_logits_output,
        modulation=modulation,
        blend_scope=blend_scope,
        name=model.name,
    )
