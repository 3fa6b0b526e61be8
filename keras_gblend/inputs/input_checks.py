"""Checks of user data before any training: clear errors instead of deep
TensorFlow ones or silently wrong results.

A single NaN feature turns a kernel row into NaN and its modality's head to
chance; a label of 12 with 10 classes fails deep inside a train step; two
modalities with different numbers of rows fail on an index. Each check
here names the modality, the value and the count.
"""

from typing import Any, Optional

import numpy as np
import tensorflow as tf

from keras_gblend.inputs import input_data


def check_integer(name: str, value, low: int,
                  optional: bool = False) -> Optional[int]:
    """`int(value)`, or `None` for an `optional` `None`; raises
    `ValueError` naming `name` unless `value` is an integer >= `low`
    (booleans refused)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or int(value) != value or value < low:
        raise ValueError(f"`{name}` must be an integer >= {low}, got {value!r}.")
    return int(value)


def check_range(name: str, value, low, high, low_open: bool = False,
                high_open: bool = False) -> None:
    """Raises `ValueError` naming `name` unless `value` is a finite number
    in the interval from `low` to `high` (each end closed unless open)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a number, got {value!r}.") from None
    above = number > low if low_open else number >= low
    below = number < high if high_open else number <= high
    if not (above and below and np.isfinite(number)):
        interval = (
            ("(" if low_open else "[") + f"{low:g}, {high:g}"
            + (")" if high_open else "]")
        )
        raise ValueError(f"`{name}` must be in {interval}, got {value!r}.")


def check_num_classes(num_classes, multi_label: bool = False) -> int:
    """`int(num_classes)`; raises `ValueError` naming `num_classes` unless
    it is an integer >= 2 (>= 1 for independent multi-label outputs: one
    softmax class is always right, loss 0)."""
    low = 1 if multi_label else 2
    if isinstance(num_classes, bool) or not isinstance(
            num_classes, (int, np.integer)) or num_classes < low:
        why = ("" if multi_label else
               " (a softmax over one class always predicts it: loss 0, "
               "nothing to learn)")
        raise ValueError(
            f"`num_classes` must be an integer >= {low}{why}, got "
            f"{num_classes!r}.")
    return int(num_classes)


def _named_arrays(x):
    """`[(name, array)]` of `x`: a dict by modality, else positional."""
    if isinstance(x, dict):
        return list(x.items())
    flat = tf.nest.flatten(x)
    if len(flat) == 1:
        return [("input", flat[0])]
    return [(f"input {i}", a) for i, a in enumerate(flat)]


def check_finite(x, what: str) -> None:
    """Raises `ValueError` if a floating-point input holds NaN or inf.

    Args:
        x: an array or a dict `{modality: array}`.
        what: what the data is, for the message (e.g. "the holdout").
    """
    for name, array in _named_arrays(x):
        array = np.asarray(array)
        if not np.issubdtype(array.dtype, np.floating):
            continue
        bad = ~np.isfinite(array)
        if bad.any():
            rows = np.flatnonzero(bad.reshape(len(array), -1).any(axis=1))
            first = array.reshape(len(array), -1)[rows[0]]
            value = first[~np.isfinite(first)][0]
            raise ValueError(
                f"{what}: modality {name!r} has {int(bad.sum())} non-finite "
                f"value(s) in {len(rows)} row(s) (first: row {rows[0]}, "
                f"{value}). Remove or impute them before training."
            )


def check_rows(x, y, what: str) -> None:
    """Raises `ValueError` if the modalities and the labels differ in their
    number of rows, naming each count."""
    counts = {name: len(array) for name, array in _named_arrays(x)}
    if y is not None:
        labels = y if not isinstance(y, dict) else next(iter(y.values()))
        counts["labels"] = len(labels)
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{name} {count}" for name, count in counts.items())
        raise ValueError(
            f"{what}: the modalities and labels have different numbers of "
            f"rows ({listed}); every modality needs one row per example."
        )


def check_labels(y, what: str, num_classes: Optional[int] = None) -> None:
    """Raises `ValueError` for class ids that are not integers in
    `[0, num_classes)` (or negative, when `num_classes` is unknown), naming
    the bad values and their counts. One-hot labels must have
    `num_classes` columns."""
    labels = np.asarray(y if not isinstance(y, dict) else next(iter(y.values())))
    if labels.ndim == 2 and labels.shape[1] > 1:  # one-hot
        if not (np.all(np.isfinite(labels)) and labels.min() >= 0
                and labels.max() <= 1):
            raise ValueError(
                f"{what}: labels of shape {labels.shape} are neither class "
                "ids nor one-hot (values such as "
                f"{labels[(labels < 0) | (labels > 1)][:3].tolist()}); are "
                "these features?")
        if num_classes is not None and labels.shape[1] != num_classes:
            raise ValueError(
                f"{what}: one-hot labels have {labels.shape[1]} columns but "
                f"the model has {num_classes} classes."
            )
        return
    ids = labels.reshape(len(labels))
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        if not np.all(np.isfinite(ids)) or np.any(ids != np.round(ids)):
            raise ValueError(
                f"{what}: labels must be integer class ids; got values such "
                f"as {ids[~np.isfinite(ids) | (ids != np.round(ids))][:3].tolist()}."
            )
    upper = np.inf if num_classes is None else num_classes
    bad = (ids < 0) | (ids >= upper)
    if bad.any():
        values, counts = np.unique(ids[bad], return_counts=True)
        listed = ", ".join(
            f"{v:g} (x{c})" for v, c in zip(values.tolist(), counts.tolist())
        )
        allowed = (
            "non-negative" if num_classes is None
            else f"in [0, {num_classes})"
        )
        raise ValueError(
            f"{what}: {int(bad.sum())} label(s) are not {allowed}: {listed}."
        )


def check_arrays(data: Any, what: str, num_classes: Optional[int] = None) -> None:
    """All three checks on `(x, y)` / `(x, y, sample_weight)` arrays; a
    `tf.data.Dataset` is left to the checks of training itself."""
    if isinstance(data, tf.data.Dataset):
        return
    x, y, sample_weight = input_data.split_arrays(data)
    check_rows(x, y, what)
    check_finite(x, what)
    try:
        if y is not None:
            check_labels(y, what, num_classes)
        if sample_weight is not None:
            check_sample_weight(sample_weight, what)
    except ValueError as error:
        if isinstance(data, list) and len(data) == 3:
            raise ValueError(
                f"{error} (A list [a, b, c] is read as (x, y, "
                "sample_weight); for two modalities give (x, y) with x a "
                "dict {modality: array} or a list [x_a, x_b].)") from None
        raise


def check_sample_weight(sample_weight, what: str) -> None:
    """Raises `ValueError` unless `sample_weight` is one finite, non-negative
    weight per row (`(n,)` or `(n, 1)`)."""
    weights = np.asarray(sample_weight)
    if weights.ndim > 2 or (weights.ndim == 2 and weights.shape[1] != 1) or (
            not np.issubdtype(weights.dtype, np.number)):
        raise ValueError(
            f"{what}: sample weights must be one number per row, got shape "
            f"{weights.shape}.")
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError(
            f"{what}: sample weights must be finite and >= 0.")


def check_inputs(data: Any, model_inputs: dict, what: str,
                 allow_unbatched: bool = True) -> None:
    """Raises `ValueError` when `data`'s inputs do not fit the model's:
    a modality missing, an input with the wrong feature shape (naming the
    modality, both shapes and `what`), or, unless `allow_unbatched`, a
    dataset whose elements are single examples.

    Args:
        data: arrays tuple or `tf.data.Dataset`.
        model_inputs: `{modality: KerasTensor}` (`model.input`).
        what: what the data is ("The holdout").
        allow_unbatched: whether an unbatched dataset is fine (the library
            batches it); `fit` needs batches.
    """
    if isinstance(data, tf.data.Dataset):
        spec = data.element_spec
        x = spec[0] if isinstance(spec, tuple) else spec
        shapes = {name: tuple(s.shape) for name, s in _named_specs(x)}
    else:
        x = input_data.split_arrays(data)[0]
        shapes = {name: (None,) + np.shape(a)[1:] for name, a in _named_arrays(x)}
    if len(model_inputs) > 1 and not isinstance(x, (dict, list, tuple)):
        raise ValueError(
            f"{what}: x is one array but the model takes {len(model_inputs)} "
            f"inputs {list(model_inputs)}; give x as a dict "
            "{modality: array} (or a list in that order).")
    if isinstance(x, dict):
        missing = [m for m in model_inputs if m not in x]
        if missing:
            raise ValueError(
                f"{what} has no input for modality(ies) {missing}; it has "
                f"{list(x)}.")
        pairs = [(m, shapes[m], model_inputs[m]) for m in model_inputs]
    else:
        pairs = [(m, shape, tensor) for (m, tensor), shape in
                 zip(model_inputs.items(), shapes.values())]
    for modality, shape, tensor in pairs:
        expected = tuple(tensor.shape)
        if len(shape) == len(expected) - 1 and isinstance(
                data, tf.data.Dataset):
            if allow_unbatched and _fits(shape, expected[1:]):
                continue
            raise ValueError(
                f"{what} is not batched: its elements have shape {shape} "
                f"for modality {modality!r}, whose input takes batches "
                f"{expected}; call .batch(batch_size) on the dataset.")
        if len(shape) != len(expected) or not _fits(shape[1:], expected[1:]):
            raise ValueError(
                f"{what}: modality {modality!r} has rows of shape "
                f"{shape[1:]} but the model's input {modality!r} takes "
                f"{expected[1:]}.")


def _fits(shape, expected) -> bool:
    return len(shape) == len(expected) and all(
        s is None or e is None or s == e for s, e in zip(shape, expected))


def _named_specs(x):
    if isinstance(x, dict):
        return list(x.items())
    flat = tf.nest.flatten(x)
    if len(flat) == 1:
        return [("input", flat[0])]
    return [(f"input {i}", s) for i, s in enumerate(flat)]
