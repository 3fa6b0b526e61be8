import numpy as np
import pytest
import tensorflow as tf

import keras_gblend as kg
from keras_gblend.inputs import holdout as holdout_lib


def _data(n_per_class=(50, 30, 20), seed=0):
    y = np.concatenate([np.full(n, c) for c, n in enumerate(n_per_class)])
    rng = np.random.default_rng(seed)
    y = y[rng.permutation(len(y))].astype("int32")
    x = {"a": np.arange(len(y), dtype="float32")[:, None], "v": np.zeros((len(y), 2))}
    return x, y


def test_arrays_split_is_stratified_disjoint_complete_and_seeded():
    x, y = _data()
    (x_tr, y_tr), (x_ho, y_ho) = kg.split_holdout((x, y), fraction=0.2, seed=3)
    assert np.bincount(y_ho).tolist() == [10, 6, 4]
    ids_tr, ids_ho = x_tr["a"][:, 0], x_ho["a"][:, 0]
    assert not set(ids_tr) & set(ids_ho)
    assert sorted(np.concatenate([ids_tr, ids_ho])) == list(range(len(y)))
    assert np.array_equal(y_ho, y[ids_ho.astype(int)])  # labels stay aligned
    again = kg.split_holdout((x, y), fraction=0.2, seed=3)[1]
    other = kg.split_holdout((x, y), fraction=0.2, seed=4)[1]
    assert np.array_equal(again[0]["a"], x_ho["a"])
    assert not np.array_equal(other[0]["a"], x_ho["a"])


@pytest.mark.parametrize("batched", [False, True])
def test_dataset_split_matches_array_split(batched):
    x, y = _data()
    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    if batched:
        dataset = dataset.batch(16)
    train, holdout = kg.split_holdout(dataset, fraction=0.2, seed=3)
    (_, _), (x_ho, _) = kg.split_holdout((x, y), fraction=0.2, seed=3)
    ids = np.concatenate([np.asarray(e[0]["a"]).reshape(-1) for e in holdout])
    assert np.array_equal(ids, np.sort(x_ho["a"][:, 0]))
    n_train = sum(int(np.asarray(e[1]).size) for e in train)
    assert n_train + len(ids) == len(y)
    if batched:
        assert max(int(e[1].shape[0]) for e in train) == 16


def test_dataset_shuffled_before_split_is_rejected():
    x, y = _data()
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(100)
    with pytest.raises(ValueError, match="different order"):
        kg.split_holdout(dataset, fraction=0.2)


def test_split_errors():
    x, y = _data()
    for fraction in (1.5, 1.0, 0.0):  # nothing left to train on, or to hold out
        with pytest.raises(ValueError, match="fraction"):
            kg.split_holdout((x, y), fraction=fraction)
    with pytest.raises(ValueError, match="single class"):
        kg.split_holdout((x, np.zeros_like(y)), fraction=0.2)
    with pytest.raises(ValueError,
                       match=r"^Cannot split data without labels \(`y` is None\)"):
        kg.split_holdout((x, None))
    with pytest.raises(ValueError, match="^The data to split"):
        kg.split_holdout(({**x, "a": np.full_like(x["a"], np.nan)}, y))
    with pytest.raises(ValueError, match="yields no labels"):
        holdout_lib.validate_holdout(tf.data.Dataset.from_tensor_slices(x))


def test_a_large_fraction_still_leaves_each_class_a_training_row():
    x, y = _data(n_per_class=(3, 3, 40))
    (_, y_tr), (_, y_ho) = kg.split_holdout((x, y), fraction=0.9, seed=0)
    # round(0.9 * 3) = 3 rows of a 3-row class, capped at all but one.
    assert [int(np.sum(y_ho == c)) for c in range(3)] == [2, 2, 36]
    assert [int(np.sum(y_tr == c)) for c in range(3)] == [1, 1, 4]


def test_one_hot_labels_are_stratified():
    x, y = _data()
    one_hot = np.eye(3)[y]
    _, (_, y_ho) = kg.split_holdout((x, one_hot), fraction=0.2, seed=0)
    assert y_ho.argmax(1).tolist().count(2) == 4
