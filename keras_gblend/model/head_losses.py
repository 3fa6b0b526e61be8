"""Each head's loss: resolved from `compile`'s arguments, computed per
batch and per example, and checked against the head and the labels.

One `y` serves every head (a `{head: labels}` dict works too). Each head
gets its own loss and metric objects. A cross-entropy that reads
probabilities (`from_logits=False`, the default of
`compile(loss="sparse_categorical_crossentropy")`) on a head that outputs
logits trains silently to near chance, and one-hot labels under a sparse
loss (or class ids under a categorical one) fail deep inside the train
step: `BlendedModel` checks both before any training.
"""

import copy
from typing import Any, Dict, List, Mapping, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_gblend.inputs import input_data
from keras_gblend.model import keras_compat

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
    layer = keras_compat.producing_layer(tensor)
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


@keras.saving.register_keras_serializable(package="keras_gblend")
class _ReducedFunctionLoss(keras.losses.Loss):
    """Turns a per-sample loss function into a reduced `keras.losses.Loss`
    that saves and loads with its function (so estimation clones and
    `.keras` files of a model compiled with `loss="..."` rebuild it)."""

    def __init__(self, fn, name=None, **kwargs):
        super().__init__(name=name or getattr(fn, "__name__", "loss"),
                         **kwargs)
        self.fn = fn

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred)

    def get_config(self):
        config = super().get_config()
        config["fn"] = keras.saving.serialize_keras_object(self.fn)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["fn"] = keras.saving.deserialize_keras_object(config["fn"])
        return cls(**config)


def losses_per_head(loss, head_names: Sequence[str]
                    ) -> Dict[str, keras.losses.Loss]:
    """`{head: loss object}` from `compile`'s `loss`: one loss for every
    head, a dict over the heads or a list in their order. Each head gets
    its own object (a loss may carry state); a function is wrapped so that
    it saves and loads."""
    if isinstance(loss, Mapping):
        missing = [h for h in head_names if h not in loss]
        unknown = sorted(set(loss) - set(head_names))
        if missing or unknown:
            raise ValueError(
                f"`loss` dict must name every head {list(head_names)};"
                f" missing {missing}, unknown {unknown}.")
        per_head = {h: loss[h] for h in head_names}
    elif isinstance(loss, (list, tuple)):
        if len(loss) != len(head_names):
            raise ValueError(
                f"`loss` list has {len(loss)} entries but the model has "
                f"{len(head_names)} heads {list(head_names)}.")
        per_head = dict(zip(head_names, loss))
    else:
        per_head = {h: loss for h in head_names}
    resolved = {}
    for head, head_loss in per_head.items():
        if isinstance(head_loss, keras.losses.Loss):
            head_loss = head_loss.__class__.from_config(head_loss.get_config())
        else:
            head_loss = keras.losses.get(head_loss)
            if not isinstance(head_loss, keras.losses.Loss):
                head_loss = _ReducedFunctionLoss(head_loss)
        resolved[head] = head_loss
    return resolved


def metrics_per_head(metrics, head_names: Sequence[str]):
    """`compile`'s metrics for a multi-output model: a list applies to every
    head, each head getting its own metric objects; a dict is Keras's."""
    if metrics is None or isinstance(metrics, Mapping):
        return metrics
    if not isinstance(metrics, (list, tuple)):
        metrics = [metrics]
    return {h: [_fresh_metric(m) for m in metrics] for h in head_names}


def _fresh_metric(metric):
    """A metric with no shared state: strings and functions as they are,
    `keras.metrics.Metric` objects re-created from their config."""
    if isinstance(metric, keras.metrics.Metric):
        return metric.__class__.from_config(metric.get_config())
    return metric


def labels_per_head(y, head_names: Sequence[str]) -> Dict[str, Any]:
    """`{head: labels}` from one label tensor for every head or a dict
    covering every head."""
    if y is None:
        raise ValueError(
            "BlendedModel needs labels: pass `y` (or `(x, y)` batches).")
    if isinstance(y, Mapping):
        missing = [h for h in head_names if h not in y]
        if missing:
            raise ValueError(
                f"Labels dict has no entry for head(s) {missing}; it has "
                f"{list(y)}. Pass one label tensor for all heads or a "
                "dict covering every head.")
        return {h: y[h] for h in head_names}
    return {h: y for h in head_names}


def _weight_of(sample_weight, head):
    return (sample_weight.get(head) if isinstance(sample_weight, Mapping)
            else sample_weight)


def batch_losses(losses: Mapping[str, keras.losses.Loss], labels, y_pred,
                 sample_weight=None) -> List:
    """Each head's loss on a batch as Keras computes it (float32 scalars in
    `losses`' order; under a tf.distribute strategy each carries Keras's
    `1 / num_replicas` factor, see `unscale_loss_for_replicas`)."""
    return [ops.cast(loss(labels[head], y_pred[head],
                          _weight_of(sample_weight, head)), "float32")
            for head, loss in losses.items()]


def per_example_losses(losses: Mapping[str, keras.losses.Loss], labels,
                       y_pred, sample_weight=None) -> Dict[str, np.ndarray]:
    """Each head's loss on every example, unreduced: their means are what
    `evaluate` reports as `<head>_loss` (same loss objects, sample weights
    as Keras's `"sum_over_batch_size"` reduction weighs them)."""
    values = {}
    for head, loss in losses.items():
        loss = copy.copy(loss)
        loss.reduction = None
        per_example = ops.cast(
            loss(labels[head], y_pred[head], _weight_of(sample_weight, head)),
            "float32")
        rank = len(per_example.shape)
        if rank > 1:  # e.g. per-timestep losses: mean per example
            per_example = ops.mean(per_example, axis=tuple(range(1, rank)))
        values[head] = ops.convert_to_numpy(per_example)
    return values


def per_example_errors(head_names: Sequence[str], labels, y_pred,
                       sample_weight=None, multi_label: bool = False
                       ) -> Dict[str, np.ndarray]:
    """Each head's error `1 - accuracy` on every example (argmax against the
    class id of sparse or one-hot labels; multi-label: the share of the
    example's labels predicted wrong at logit 0). With sample weights each
    error is scaled by `w * n / sum(w)`, so that the mean is the weighted
    error, as Keras's weighted accuracy reports it."""
    values = {}
    for head in head_names:
        if multi_label:
            predicted = np.asarray(y_pred[head]) > 0
            truth = np.asarray(labels[head]) > 0.5
            errors = (predicted != truth).mean(axis=-1).astype(np.float32)
        else:
            predicted = np.asarray(y_pred[head]).argmax(axis=-1)
            truth = input_data.class_ids(np.asarray(labels[head]))
            errors = (predicted.reshape(len(truth)) != truth).astype(
                np.float32)
        weight = _weight_of(sample_weight, head)
        if weight is not None:
            weight = np.asarray(weight, np.float32).reshape(len(errors))
            errors = errors * weight * len(weight) / weight.sum()
        values[head] = errors
    return values


def unscale_loss_for_replicas(value):
    """Undoes Keras's `1 / num_replicas` loss scaling under a tf.distribute
    strategy: Keras `Loss` objects divide by the number of replicas so that
    summed gradients give the global-batch mean; a value that is *logged*
    must be multiplied back."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if replicas > 1:
        value = value * ops.cast(replicas, value.dtype)
    return value
