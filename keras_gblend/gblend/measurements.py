"""What an estimate measures: each head's loss (or error) on every example
of the train subset `T'` and the holdout `V`, in one prediction pass."""

from typing import Optional

import numpy as np
import tensorflow as tf

from keras_gblend.inputs import input_data

# Measurement passes predict on batches this many times the training batch
# (prediction keeps no activations for a backward pass).
MEASUREMENT_BATCHES = 4


def per_example_values(
    model, dataset, heads, metric, targets=None
) -> np.ndarray:
    """Each head's loss (or error, `metric="accuracy"`) on every example of
    a batched `dataset`, in its order: one `predict` pass for all heads.

    The mean over examples is what `evaluate` reports as `<head>_loss`
    (sample weights included, regularization excluded).

    Args:
        model: a compiled `BlendedModel`.
        dataset: a batched dataset in a fixed order.
        heads: heads to report.
        metric: `"loss"` or `"accuracy"`.
        targets: `input_data.targets_of(dataset)` if already known (saves a
            pass over the dataset).

    Returns:
        float64 array `(len(heads), examples)`.

    Raises:
        FloatingPointError: a non-finite value, naming the heads.
    """
    predictions = model.predict(dataset, verbose=0)
    y, sample_weight = targets or input_data.targets_of(dataset)
    if metric == "loss":
        per_head = model.per_example_losses(y, predictions, sample_weight)
    else:
        per_head = model.per_example_errors(y, predictions, sample_weight)
    values = np.stack([per_head[head] for head in heads]).astype(np.float64)
    bad = [h for h, row in zip(heads, values) if not np.all(np.isfinite(row))]
    if bad:
        raise FloatingPointError(
            f"Non-finite {metric} for head(s) {bad} while estimating blend "
            "weights. The model and its weights are unchanged."
        )
    return values


def train_subset_dataset(
    train,
    train_subset=None,
    fraction: float = 0.25,
    batch_size: Optional[int] = None,
    seed: Optional[int] = 0,
) -> tf.data.Dataset:
    """The fixed train subset `T'` on which overfitting is measured.

    Args:
        train: training data: `(x, y)` arrays or a batched dataset.
        train_subset: an explicit `T'` (same forms); returned batched.
        fraction: otherwise, the share of `train` to take: random rows of
            arrays, or the first batches of a dataset (cached, so `T'` is
            the same set every time it is read).
        batch_size: batch size for arrays (default 32).
        seed: row sampling seed for arrays.

    Returns:
        A batched `tf.data.Dataset`.
    """
    if train_subset is not None:
        return input_data.fixed_order(train_subset, batch_size)
    if not 0.0 < fraction <= 1.0:
        raise ValueError(
            f"`train_subset_fraction` must be in (0, 1], got {fraction}."
        )
    if isinstance(train, tf.data.Dataset):
        batches = input_data.dataset_factory(train, batch_size)()
        count = int(batches.cardinality())
        if count < 0:
            raise ValueError(
                "The training dataset has unknown length; pass "
                "`train_subset=` (the train subset T') explicitly."
            )
        # Cached, so that T' is the same set at both checkpoints.
        return batches.take(max(1, int(round(fraction * count)))).cache()
    parts = input_data.split_arrays(train)
    size = input_data.num_examples(parts[0])
    rows = np.sort(
        np.random.default_rng(0 if seed is None else seed).permutation(size)[
            : max(1, int(round(fraction * size)))
        ]
    )
    # Labels (a dict per head too) and sample weights come along: T' is
    # measured as V is.
    subset = tuple(input_data.take_rows(part, rows)
                   for part in parts if part is not None)
    return input_data.dataset_factory(subset, batch_size)()


def measurement_passes(train_subset, holdout, batch_size):
    """`([(dataset, targets)], examples in T')`: what to predict on for
    `T'` then `V`, in batches of `batch_size`, in one pass over both when
    their elements match, else one each."""
    def rebatched(dataset):
        dataset = dataset.unbatch().batch(batch_size)
        targets = input_data.targets_of(dataset)
        size = len(_first_labels(targets))
        return dataset.apply(tf.data.experimental.assert_cardinality(
            input_data.num_batches(size, batch_size))), targets

    (train_subset, train_targets), (holdout, holdout_targets) = (
        rebatched(d) for d in (train_subset, holdout))
    size = len(_first_labels(train_targets))
    if train_subset.element_spec != holdout.element_spec:
        return [(train_subset, train_targets), (holdout, holdout_targets)], size
    merged = train_subset.concatenate(holdout).apply(
        tf.data.experimental.assert_cardinality(
            int(train_subset.cardinality()) + int(holdout.cardinality())))
    y = tf.nest.map_structure(lambda a, b: np.concatenate([a, b]),
                              train_targets[0], holdout_targets[0])
    sample_weight = None if train_targets[1] is None else np.concatenate(
        [train_targets[1], holdout_targets[1]])
    return [(merged, (y, sample_weight))], size


def _first_labels(targets):
    """The labels of the first head in `(y, sample_weight)`."""
    return tf.nest.flatten(targets[0])[0]


