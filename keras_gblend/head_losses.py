"""What each head's loss reads, checked against the head and the labels.

A cross-entropy that reads probabilities (`from_logits=False`, the default
of `compile(loss="sparse_categorical_crossentropy")`) on a head that
outputs logits trains silently to near chance, and one-hot labels under a
sparse loss (or class ids under a categorical one) fail deep inside the
train step. `BlendedModel` checks both before any training.
"""

from typing import Mapping, Optional

import keras
import numpy as np
import tensorflow as tf

_CROSS_ENTROPIES = ("sparse_categorical_crossentropy",
                    "categorical_crossentropy", "binary_crossentropy")


def loss_name(loss) -> str:
    """The snake-case name of a loss object or function
    (`SparseCategoricalCrossentropy` -> `sparse_categorical_crossentropy`)."""
    fn = getattr(loss, "fn", None)  # Keras's wrappers and ours keep it
    name = getattr(fn, "__name__", None) or getattr(loss, "__name__", None)
    if name is None:
        name = "".join("_" + c.lower() if c.isupper() else c
                       for c in type(loss).__name__).lstrip("_")
    return name


def reads_logits(loss) -> Optional[bool]:
    """Whether a cross-entropy loss reads logits (`from_logits`); None for
    other losses."""
    if loss_name(loss) not in _CROSS_ENTROPIES:
        return None
    config = getattr(loss, "get_config", dict)()
    return bool(config.get("from_logits", False))


def output_activation(tensor) -> Optional[str]:
    """`"linear"`, `"softmax"`, `"sigmoid"`, ... for a head whose last layer
    states its activation (a Dense, an Activation or a Softmax layer); None
    when it cannot be told."""
    history = getattr(tensor, "_keras_history", None)
    layer = history[0] if history else None
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    activation = getattr(layer, "activation", None)
    if activation is None:
        return None
    return getattr(activation, "__name__", None)


def check_losses_read_heads(losses: Mapping[str, object],
                            outputs: Mapping[str, object]) -> None:
    """Raises `ValueError` for a head whose cross-entropy reads probabilities
    while the head outputs logits, or the reverse, naming the head, its
    activation and the loss to use."""
    for head, loss in losses.items():
        logits = reads_logits(loss)
        activation = output_activation(outputs[head])
        if logits is None or activation is None:
            continue
        name = loss_name(loss)
        if not logits and activation == "linear":
            raise ValueError(
                f"Head {head!r} outputs logits (its last layer has no "
                f"softmax) but its loss {name} reads probabilities "
                "(from_logits=False), which trains to near chance. Pass "
                f"keras.losses.{_class_name(name)}(from_logits=True).")
        if logits and activation in ("softmax", "sigmoid"):
            raise ValueError(
                f"Head {head!r} outputs probabilities (its last layer "
                f"applies {activation}) but its loss {name} reads logits "
                f"(from_logits=True). Pass keras.losses.{_class_name(name)}"
                "() or drop the activation.")


def _class_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def label_shape(y) -> Optional[tuple]:
    """The shape of one head's labels: of an array, a `tf.TensorSpec`, or
    the first entry of a `{head: labels}` dict."""
    if isinstance(y, Mapping):
        y = next(iter(y.values()), None)
    if y is None:
        return None
    if isinstance(y, tf.TensorSpec):
        return tuple(y.shape)
    return np.shape(y)


def check_label_form(y, losses: Mapping[str, object],
                     num_classes: Optional[int], what: str,
                     batched: bool = True) -> None:
    """Raises `ValueError` for one-hot labels under a sparse loss, or class
    ids under a categorical one, naming `what`, the shape and the fix.

    Args:
        y: labels (an array, a dict per head) or a dataset's label spec.
        losses: `{head: loss}`.
        num_classes: the joint head's classes (None: unknown).
        what: what the data is, for the message.
        batched: whether `y`'s first axis is the batch (a dataset's spec
            may be of single examples).
    """
    shape = label_shape(y)
    if shape is None:
        return
    example = shape[1:] if batched else shape
    names = {loss_name(loss) for loss in losses.values()}
    one_hot = len(example) == 1 and example[0] not in (None, 1) and (
        num_classes is None or example[0] == num_classes)
    if one_hot and "sparse_categorical_crossentropy" in names:
        raise ValueError(
            f"{what}: the labels are one-hot (shape {tuple(shape)}) but the "
            "loss is sparse_categorical_crossentropy, which reads class ids: "
            "pass y.argmax(axis=-1), or use CategoricalCrossentropy.")
    if not one_hot and len(example) <= 1 and (
            "categorical_crossentropy" in names):
        raise ValueError(
            f"{what}: the labels are class ids (shape {tuple(shape)}) but the "
            "loss is categorical_crossentropy, which reads one-hot labels: "
            "pass keras.utils.to_categorical(y), or use "
            "SparseCategoricalCrossentropy.")
