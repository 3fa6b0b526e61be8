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

from keras_gblend import input_data


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
    x, y, _ = input_data.split_arrays(data)
    check_rows(x, y, what)
    check_finite(x, what)
    if y is not None:
        check_labels(y, what, num_classes)
