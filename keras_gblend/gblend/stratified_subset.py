"""The fixed, stratified share of the training data G-Blend estimates on.

Supplementary A of the G-Blend paper: weights estimated on 25-75 % of the
training data match the full-data estimate, so the estimation clones may
train on a subset and cost a fraction of an epoch each.

Selection rule, the same for arrays and datasets: walk the examples in
order; class `c`'s `k`-th example is kept when `floor((k + 1) * f + u_c)`
exceeds `floor(k * f + u_c)`, with a seeded phase `u_c` in `[0, 1)`. Each
class keeps `floor(n_c * f + u_c)` of its `n_c` examples (within one of
`f * n_c`), spread evenly over the class. Arrays are walked in a seeded
random order, so their subset is a stratified random sample; a dataset is
walked in the order of one pass (one pass over it is needed, and the kept
examples are cached in memory).
"""

from typing import Optional

import numpy as np
import tensorflow as tf

from keras_gblend.inputs import input_data


def check_fraction(fraction, name: str = "estimation_fraction") -> float:
    """`fraction` as a float in (0, 1], or `ValueError` naming `name`."""
    try:
        number = float(fraction)
    except (TypeError, ValueError):
        raise ValueError(
            f"`{name}` must be a number in (0, 1], got {fraction!r}."
        ) from None
    if isinstance(fraction, bool) or not 0.0 < number <= 1.0:
        raise ValueError(f"`{name}` must be in (0, 1], got {fraction!r}.")
    return number


def _phases(num_classes: int, seed: Optional[int]) -> np.ndarray:
    return np.random.default_rng(0 if seed is None else seed).random(
        num_classes
    )


def _class_of(label) -> tf.Tensor:
    """The class index of one example's label (sparse or one-hot)."""
    label = tf.nest.flatten(label)[0]
    if label.shape.rank and label.shape[-1] not in (None, 1):
        return tf.argmax(label, axis=-1, output_type=tf.int64)
    return tf.cast(tf.reshape(label, []), tf.int64)


def kept_mask(classes, fraction: float, phases) -> np.ndarray:
    """The selection rule on class indices in walk order (numpy).

    Args:
        classes: int class index of each example, in walk order.
        fraction: share to keep, in (0, 1].
        phases: `u_c` per class.

    Returns:
        Boolean mask over `classes`.
    """
    classes = np.asarray(classes, np.int64)
    phases = np.asarray(phases, np.float64)
    rank = np.zeros(len(classes), np.float64)  # k: earlier examples of c
    for value in np.unique(classes):
        rows = np.flatnonzero(classes == value)
        rank[rows] = np.arange(len(rows))
    u = phases[classes]
    return np.floor((rank + 1.0) * fraction + u) > np.floor(
        rank * fraction + u
    )


def _kept_flags(classes: tf.data.Dataset, fraction: float, phases):
    """`kept_mask` in one streaming pass: `(keep, element)` for each
    `(class, element)` of `classes`."""
    phases = tf.constant(phases, tf.float64)
    fraction = tf.constant(fraction, tf.float64)

    def step(counts, class_and_element):
        class_id, element = class_and_element
        k = tf.cast(counts[class_id], tf.float64)
        u = phases[class_id]
        keep = tf.floor((k + 1.0) * fraction + u) > tf.floor(k * fraction + u)
        counts = tf.tensor_scatter_nd_add(counts, [[class_id]], [1])
        return counts, (keep, element)

    return classes.scan(tf.zeros([len(phases)], tf.int64), step)


def stratified_rows(labels, fraction: float, seed: Optional[int] = 0):
    """Sorted row indices of the estimation subset of labelled arrays.

    Args:
        labels: sparse (`(n,)`, `(n, 1)`) or one-hot labels.
        fraction: share of every class to keep, in (0, 1].
        seed: seed of the walk order and of the phases.

    Returns:
        int64 numpy array of row indices.
    """
    fraction = check_fraction(fraction)
    classes = input_data.class_ids(np.asarray(labels)).astype(np.int64)
    if fraction == 1.0 or classes.size == 0:
        return np.arange(len(classes), dtype=np.int64)
    order = np.random.default_rng(0 if seed is None else seed).permutation(
        len(classes)
    )
    keep = kept_mask(
        classes[order], fraction, _phases(int(classes.max()) + 1, seed)
    )
    return np.sort(order[keep]).astype(np.int64)


def estimation_subset(
    data,
    fraction: float,
    seed: Optional[int] = 0,
    num_classes: Optional[int] = None,
):
    """The estimation subset of training data, in the same form.

    Args:
        data: `(x, y)` / `(x, y, sample_weight)` arrays, or a dataset of
            `(x, y[, sample_weight])` elements, batched or not.
        fraction: share of every class to keep, in (0, 1]; 1 returns `data`.
        seed: seed of the selection.
        num_classes: classes, for a dataset (arrays read it from their
            labels); default 2 when unknown.

    Returns:
        Arrays: the tuple restricted to the kept rows. A dataset: an
        unbatched dataset of the kept examples, cached in memory after its
        first pass (so the subset stays the same set however often it is
        read, even if `data` reshuffles).

    Raises:
        ValueError: a bad `fraction` (naming `estimation_fraction`), or a
            subset with no example.

    Example:

    ```python
    subset = kg.estimation_subset((x, y), fraction=0.25, seed=0)
    ```
    """
    fraction = check_fraction(fraction)
    if isinstance(data, tf.data.Dataset):
        return _dataset_subset(data, fraction, seed, num_classes)
    x, y, sample_weight = input_data.split_arrays(data)
    if fraction == 1.0:
        return data
    rows = stratified_rows(y, fraction, seed)
    if rows.size == 0:
        raise ValueError(
            f"`estimation_fraction` {fraction:g} of {len(y)} training rows "
            "keeps no row; raise it."
        )
    return tuple(
        input_data.take_rows(part, rows)
        for part in (x, y, sample_weight) if part is not None
    )


def _dataset_subset(dataset, fraction, seed, num_classes):
    if fraction == 1.0:
        return dataset
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) < 2:
        raise ValueError(
            "The training dataset yields no labels: its elements must be "
            f"(x, y) or (x, y, sample_weight); element_spec={spec}."
        )
    if input_data.is_batched(dataset):
        dataset = dataset.unbatch()
    classes = dataset.map(lambda *element: (_class_of(element[1]), element))
    flags = _kept_flags(classes, fraction, _phases(num_classes or 2, seed))
    return flags.filter(lambda keep, element: keep).map(
        lambda keep, element: element
    ).cache()


def subset_size(subset) -> int:
    """Examples in an `estimation_subset` (a dataset is read once, which
    fills its cache)."""
    if isinstance(subset, tf.data.Dataset):
        return int(subset.reduce(np.int64(0), lambda count, _: count + 1))
    return input_data.num_examples(input_data.split_arrays(subset)[0])

