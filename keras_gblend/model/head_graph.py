"""Which trainable variables each head of a functional model depends on.

Read from the functional graph: the sub-model from the model's inputs to one
output holds exactly the layers (and so the variables) that output needs.
"""

from typing import Dict, List, Optional, Sequence, Tuple

import keras

from keras_gblend.model import keras_compat


def head_trainable_variables(model: keras.Model) -> Dict[str, List]:
    """Maps each named output to the trainable variables it depends on.

    Args:
        model: a functional model with dict outputs (e.g. `BlendedModel`).

    Returns:
        `{output_name: [variables]}`.
    """
    outputs = model.output
    if not isinstance(outputs, dict):
        raise TypeError("The model's outputs must be a dict of named tensors.")
    return {
        name: keras.Model(inputs=model.input, outputs=tensor).trainable_variables
        for name, tensor in outputs.items()
    }


def input_names(tensor) -> List[str]:
    """Names of the functional inputs a symbolic tensor depends on, read by
    walking the graph back from it (sorted)."""
    names, seen, stack = set(), set(), [tensor]
    while stack:
        made = keras_compat.producing_node(stack.pop())
        if made is None:
            continue
        operation, node = made
        key = (id(operation), id(node))
        if key in seen:
            continue
        seen.add(key)
        if isinstance(operation, keras.layers.InputLayer):
            names.add(operation.name)
        stack.extend(node.input_tensors)
    return sorted(names)


def exclusive_trainable_variables(
    model: keras.Model, heads: Optional[Sequence[str]] = None
) -> Dict[str, List]:
    """Variables each output depends on and no other output does.

    Args:
        model: a functional model with dict outputs.
        heads: the outputs to compare (default: all of them); outputs not
            listed are ignored.
    """
    per_head = head_trainable_variables(model)
    if heads is not None:
        per_head = {name: per_head[name] for name in heads}
    exclusive = {}
    for name, variables in per_head.items():
        others = {
            id(v)
            for other, other_vars in per_head.items()
            if other != name
            for v in other_vars
        }
        exclusive[name] = [v for v in variables if id(v) not in others]
    return exclusive


def heads_are_disjoint(model: keras.Model, heads) -> bool:
    """True when no trainable variable is shared by two of `heads`.

    Then training the sum of their losses trains each head exactly as if it
    were trained alone (with any per-parameter optimizer), which lets G-Blend
    estimate all uni-modal heads in one run.
    """
    per_head = head_trainable_variables(model)
    seen = set()
    for head in heads:
        ids = {id(v) for v in per_head[head]}
        if ids & seen:
            return False
        seen |= ids
    return True


def check_heads(model: keras.Model, joint_output: str,
                modality_logits_output: Optional[str]) -> Tuple[str, ...]:
    """Checks a functional model's outputs as heads of a `BlendedModel` and
    returns its modalities (the uni-modal heads, in output order).

    Raises:
        TypeError: outputs that are not a dict.
        ValueError: no joint output, no uni-modal output, a uni-modal
            output named after no input or reading another modality's
            input, or a per-modality logits output of the wrong shape.
    """
    outputs = model.output
    if not isinstance(outputs, dict):
        raise TypeError(
            "BlendedModel needs `outputs` to be a dict {head_name: tensor}; "
            f"got {type(outputs).__name__}. Use `kg.as_blended_model` to "
            "convert a functional model with named outputs.")
    if joint_output not in outputs:
        raise ValueError(
            f"The model has no joint output {joint_output!r}; its outputs "
            f"are {list(outputs)}. Pass `joint_output=` with the name of "
            "the head that sees every modality.")
    if modality_logits_output is not None and (
            modality_logits_output not in outputs):
        raise ValueError(
            f"`modality_logits_output` {modality_logits_output!r} is not "
            f"an output; outputs are {list(outputs)}.")
    modalities = tuple(name for name in outputs
                       if name not in (joint_output, modality_logits_output))
    if not modalities:
        raise ValueError(
            "BlendedModel needs at least one uni-modal output besides the "
            f"joint output {joint_output!r}.")
    if isinstance(model.input, dict):
        _check_own_inputs(model, outputs, modalities)
    if modality_logits_output is not None:
        shape = tuple(outputs[modality_logits_output].shape)
        if len(shape) != 3 or shape[1] != len(modalities):
            raise ValueError(
                f"Output {modality_logits_output!r} has shape {shape}; "
                f"expected (batch, {len(modalities)}, classes), one row per "
                f"modality {list(modalities)}.")
    return modalities


def _check_own_inputs(model, outputs, modalities) -> None:
    """Each uni-modal output is named after an input and reads that input
    alone."""
    unmatched = [m for m in modalities if m not in model.input]
    if unmatched:
        raise ValueError(
            f"Output(s) {unmatched} match no modality: the model's "
            f"modalities (its input names) are {list(model.input)}. Key each "
            "uni-modal output by its modality's input name (the output "
            "layer itself needs a name of its own).")
    input_layer_names = {
        name: keras_compat.producing_layer(tensor).name
        for name, tensor in model.input.items()}
    for modality in modalities:
        reads = input_names(outputs[modality])
        if reads != [input_layer_names[modality]]:
            raise ValueError(
                f"Uni-modal output {modality!r} must read its own modality's "
                f"input {modality!r} and no other, but it is computed from "
                f"input(s) {reads}. Wire each uni-modal head to its own "
                "modality's encoder.")
