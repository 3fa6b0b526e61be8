"""Which trainable variables each head of a functional model depends on.

Read from the functional graph: the sub-model from the model's inputs to one
output holds exactly the layers (and so the variables) that output needs.
"""

from typing import Dict, List, Optional, Sequence

import keras


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
        history = getattr(stack.pop(), "_keras_history", None)
        if history is None:
            continue
        operation = history.operation
        node = operation._inbound_nodes[history.node_index]
        key = (id(operation), history.node_index)
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
