"""Turning the data users hand us into `tf.data` pipelines.

Accepted forms, everywhere in the library:

- a tuple `(x, y)` or `(x, y, sample_weight)` of numpy arrays, where `x` may
  be a dict `{modality: array}`;
- a `tf.data.Dataset` yielding `(x, y)` (or `(x, y, sample_weight)`)
  elements, batched or not.
"""

from typing import Any, Callable, Optional, Tuple

import numpy as np
import tensorflow as tf

DEFAULT_BATCH_SIZE = 32


def is_batched(dataset: tf.data.Dataset) -> bool:
    """Whether `dataset` yields batches: its elements' leading dimension is
    unknown (`None`), as after `.batch()` without `drop_remainder`."""
    flat = tf.nest.flatten(dataset.element_spec)
    return bool(flat) and flat[0].shape.rank not in (None, 0) and (
        flat[0].shape[0] is None
    )


def batch_size_of(dataset: tf.data.Dataset) -> int:
    """The size of the first batch of a batched dataset."""
    for element in dataset.take(1):
        return int(tf.shape(tf.nest.flatten(element)[0])[0])
    raise ValueError("The dataset is empty.")


def split_arrays(data) -> Tuple[Any, Any, Any]:
    """Unpacks `(x, y)` or `(x, y, sample_weight)`."""
    if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
        raise TypeError(
            "Expected an `(x, y)` or `(x, y, sample_weight)` tuple of arrays "
            f"or a tf.data.Dataset; got {type(data).__name__}."
        )
    x, y = data[0], data[1]
    sample_weight = data[2] if len(data) == 3 else None
    return x, y, sample_weight


def num_examples(x) -> int:
    """Number of rows of an array or of a dict/list of arrays (all equal)."""
    sizes = {len(a) for a in tf.nest.flatten(x)}
    if len(sizes) != 1:
        raise ValueError(
            f"Inputs have different numbers of rows: {sorted(sizes)}."
        )
    return sizes.pop()


def num_batches(size: int, batch_size: int) -> int:
    """Batches of at most `batch_size` that `size` rows make."""
    return -(-size // batch_size)


def take_rows(tree, indices):
    """Selects `indices` from every array in a nested structure."""
    return tf.nest.map_structure(lambda a: np.asarray(a)[indices], tree)


def dataset_factory(
    data, batch_size: Optional[int] = None, shuffle_seed: Optional[int] = None
) -> Callable[[], tf.data.Dataset]:
    """A function returning a fresh batched dataset over `data` each call.

    Fresh datasets built from arrays with the same seed iterate in the same
    order, which is what makes fused and separate estimations comparable.

    Args:
        data: arrays tuple or `tf.data.Dataset` (see module docstring).
        batch_size: batch size for arrays and unbatched datasets (default
            32). Ignored for batched datasets.
        shuffle_seed: shuffle arrays each epoch with this seed; `None` keeps
            their order. Datasets are never reshuffled here.

    Returns:
        A zero-argument callable returning a `tf.data.Dataset`.
    """
    batch_size = batch_size or DEFAULT_BATCH_SIZE
    if isinstance(data, tf.data.Dataset):
        if is_batched(data):
            return lambda: data
        return lambda: data.batch(batch_size)
    x, y, sample_weight = split_arrays(data)
    if y is None:
        raise ValueError("The data has no labels (`y` is None).")
    elements = (x, y) if sample_weight is None else (x, y, sample_weight)
    size = num_examples(x)

    def make():
        dataset = tf.data.Dataset.from_tensor_slices(elements)
        if shuffle_seed is not None:
            dataset = dataset.shuffle(
                size, seed=shuffle_seed, reshuffle_each_iteration=True
            )
        return dataset.batch(batch_size)

    return make


def fixed_order(data, batch_size: Optional[int] = None) -> tf.data.Dataset:
    """A batched dataset over `data` that yields the same elements, in the
    same order, on every pass: arrays in their row order; a dataset cached
    in memory by its first pass (a `shuffle` reshuffles on every pass by
    default, which would pair one pass's predictions with another pass's
    labels).

    Args:
        data: arrays tuple or `tf.data.Dataset` (see module docstring).
        batch_size: as for `dataset_factory`.

    Returns:
        A batched `tf.data.Dataset`.
    """
    dataset = dataset_factory(data, batch_size)()
    if isinstance(data, tf.data.Dataset):
        dataset = dataset.cache()
    return dataset


def labels_of(data) -> np.ndarray:
    """All labels of `data` as a numpy array (iterates a dataset once)."""
    if isinstance(data, tf.data.Dataset):
        spec = data.element_spec
        if not isinstance(spec, tuple) or len(spec) < 2:
            raise ValueError(
                "The dataset yields no labels: its elements must be (x, y) "
                f"or (x, y, sample_weight); element_spec={spec}."
            )
        batches = [
            np.asarray(y) for y in data.map(lambda *element: element[1])
        ]
        if not batches:
            return np.zeros((0,))
        if is_batched(data):
            return np.concatenate(batches)
        return np.stack(batches)
    _, y, _ = split_arrays(data)
    if y is None:
        raise ValueError("The data has no labels (`y` is None).")
    return np.asarray(y)


def targets_of(dataset: tf.data.Dataset) -> Tuple[Any, Any]:
    """`(y, sample_weight)` of every element of a batched dataset, each
    concatenated in the dataset's order (`sample_weight` is None when the
    elements are `(x, y)`); `y` may be a dict `{head: labels}`."""
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) < 2:
        raise ValueError(
            "The dataset yields no labels: its elements must be (x, y) or "
            f"(x, y, sample_weight); element_spec={spec}."
        )
    batches = list(dataset.map(lambda *element: element[1:]).as_numpy_iterator())
    if not batches:
        raise ValueError("The dataset is empty.")
    joined = tf.nest.map_structure(
        lambda *parts: np.concatenate(parts), *batches
    )
    return joined[0], (joined[1] if len(joined) > 1 else None)


def class_ids(labels: np.ndarray) -> np.ndarray:
    """Class indices from sparse (`(n,)` / `(n, 1)`) or one-hot labels."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] > 1:
        return labels.argmax(axis=1)
    return labels.reshape(len(labels))


def epoch_keyed_dataset(
    data, batch_size: int, seed: int, epochs: int, initial_epoch: int = 0
) -> Tuple[tf.data.Dataset, int]:
    """Arrays to batches whose order depends only on `(seed, epoch)`.

    Epoch `e` visits the rows in the order of a stateless random
    permutation seeded by `(seed, e)`, so a run resumed at `initial_epoch`
    sees exactly the batches an uninterrupted run sees from that epoch on
    (a `shuffle(reshuffle_each_iteration=True)` dataset restarts its
    sequence instead).

    Args:
        data: `(x, y)` or `(x, y, sample_weight)` arrays.
        batch_size: batch size.
        seed: shuffle seed.
        epochs: last epoch (exclusive), as in `fit`.
        initial_epoch: first epoch.

    Returns:
        `(dataset, steps_per_epoch)`: pass both to `fit` with the same
        `epochs` and `initial_epoch`.
    """
    elements = tuple(part for part in split_arrays(data) if part is not None)
    size = num_examples(elements[0])
    steps = num_batches(size, batch_size)
    tensors = tf.nest.map_structure(tf.convert_to_tensor, elements)

    def epoch_order(epoch):
        keys = tf.random.stateless_uniform(
            [size], seed=tf.stack([tf.cast(seed, tf.int64), epoch])
        )
        return tf.data.Dataset.from_tensor_slices(tf.argsort(keys)).batch(
            batch_size
        )

    dataset = tf.data.Dataset.range(initial_epoch, epochs).flat_map(
        epoch_order
    )
    dataset = dataset.map(
        lambda rows: tf.nest.map_structure(
            lambda t: tf.gather(t, rows), tensors
        )
    )
    return dataset.prefetch(tf.data.AUTOTUNE), steps
