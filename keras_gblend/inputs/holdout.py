"""Stratified holdout split and holdout validation.

G-Blend measures generalization on a holdout `V` carved from the *training*
data (never the test set): 8% in the paper for Kinetics, 13% for
mini-AudioSet.
"""

from typing import Optional, Tuple

import numpy as np
import tensorflow as tf

from keras_gblend.inputs import input_checks, input_data


def stratified_holdout_mask(
    labels: np.ndarray, fraction: float, seed: int
) -> np.ndarray:
    """Boolean mask selecting `fraction` of each class (at least one row of
    every class that has two or more rows).

    Args:
        labels: sparse or one-hot labels.
        fraction: holdout fraction in (0, 1).
        seed: seed of the per-class shuffle.

    Returns:
        Boolean numpy array, True for holdout rows.
    """
    classes = input_data.class_ids(labels)
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(classes), dtype=bool)
    for value in np.unique(classes):
        rows = np.flatnonzero(classes == value)
        if len(rows) < 2:
            continue
        count = int(round(fraction * len(rows)))
        count = min(max(count, 1), len(rows) - 1)
        mask[rng.permutation(rows)[:count]] = True
    return mask


def validate_holdout(data) -> np.ndarray:
    """Checks that a holdout has labels, rows and two or more classes.

    Args:
        data: arrays tuple or `tf.data.Dataset`.

    Returns:
        The holdout's class ids.

    Raises:
        ValueError: naming the problem (also non-finite features, rows that
            differ between modalities, negative or non-integer labels).
    """
    try:
        input_checks.check_arrays(data, "The holdout")
    except TypeError as error:
        raise ValueError(f"Invalid holdout: {error}") from error
    try:
        labels = input_data.labels_of(data)
    except (TypeError, ValueError) as error:
        raise ValueError(f"Invalid holdout: {error}") from error
    if labels.size == 0:
        raise ValueError("The holdout is empty: it has no examples.")
    classes = np.unique(input_data.class_ids(labels))
    if len(classes) < 2:
        raise ValueError(
            f"The holdout has a single class ({classes.tolist()}); OGR needs "
            "a holdout with two or more classes. Use a larger fraction or a "
            "stratified split (`kg.split_holdout`)."
        )
    return classes


def split_holdout(
    data,
    fraction: float = 0.08,
    seed: int = 0,
    batch_size: Optional[int] = None,
) -> Tuple[object, object]:
    """Splits training data into `(train, holdout)`, stratified by label.

    Args:
        data: `(x, y)` / `(x, y, sample_weight)` arrays (`x` may be a dict),
            or a `tf.data.Dataset` of `(x, y)` elements. A dataset must
            iterate in the same order every time: shuffle *after* splitting.
        fraction: share of each class that goes to the holdout.
        seed: seed of the split.
        batch_size: for a dataset, the batch size of the returned datasets;
            defaults to the input's own batch size (unbatched input stays
            unbatched).

    Returns:
        `(train, holdout)` of the same kind as `data`: tuples of arrays, or
        datasets (the holdout one cached in memory after its first pass).

    Raises:
        ValueError: bad fraction, data without labels, or a holdout that
            would be empty or hold a single class.

    Example:

    ```python
    data = kg.datasets.load_uci_multifeature(views=["fac", "mor"])
    (x_train, y_train), holdout = kg.split_holdout(
        (data.x_train, data.y_train), fraction=0.1, seed=0)
    ```
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"`fraction` must be in (0, 1), got {fraction}.")
    if isinstance(data, tf.data.Dataset):
        return _split_dataset(data, fraction, seed, batch_size)
    x, y, sample_weight = input_data.split_arrays(data)
    if y is None:
        raise ValueError("Cannot split data without labels (`y` is None).")
    input_checks.check_arrays(data, "The data to split")
    mask = stratified_holdout_mask(np.asarray(y), fraction, seed)
    parts = []
    for rows in (np.flatnonzero(~mask), np.flatnonzero(mask)):
        part = (input_data.take_rows(x, rows), np.asarray(y)[rows])
        if sample_weight is not None:
            part += (np.asarray(sample_weight)[rows],)
        parts.append(part)
    validate_holdout(parts[1])
    return parts[0], parts[1]


def _split_dataset(dataset, fraction, seed, batch_size):
    batched = input_data.is_batched(dataset)
    if batched:
        batch_size = batch_size or input_data.batch_size_of(dataset)
        dataset = dataset.unbatch()
    labels = input_data.labels_of(dataset)
    if not np.array_equal(labels, input_data.labels_of(dataset)):
        raise ValueError(
            "The dataset yields its examples in a different order on each "
            "pass (shuffled before splitting?); split first, then shuffle "
            "the training part."
        )
    mask = stratified_holdout_mask(labels, fraction, seed)
    if not mask.any():
        raise ValueError(
            "The holdout is empty: no class has two or more examples."
        )
    in_holdout = tf.constant(mask)

    def select(keep_holdout):
        part = dataset.enumerate().filter(
            lambda index, element: tf.equal(
                in_holdout[index], keep_holdout
            )
        )
        part = part.map(lambda index, element: element)
        if batch_size:
            part = part.batch(batch_size)
        return part

    holdout = select(True).cache()
    validate_holdout(holdout)
    return select(False), holdout
