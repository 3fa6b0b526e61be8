"""The stratified subset of the training data that G-Blend estimates on
(`estimation_fraction`)."""

import numpy as np
import pytest
import tensorflow as tf

import keras_gblend as kg
from keras_gblend.gblend import stratified_subset

FRACTION = 0.3


def test_subset_is_stratified_and_the_same_for_the_same_seed():
    y = np.random.default_rng(0).integers(0, 5, 403)
    rows = stratified_subset.stratified_rows(y, 0.2, seed=4)
    for c in range(5):
        kept, total = np.sum(y[rows] == c), np.sum(y == c)
        assert abs(kept - 0.2 * total) < 1  # within one of f * n_c
    np.testing.assert_array_equal(
        rows, stratified_subset.stratified_rows(y, 0.2, seed=4))
    assert not np.array_equal(
        rows, stratified_subset.stratified_rows(y, 0.2, seed=5))
    # One-hot labels select the same rows.
    np.testing.assert_array_equal(
        rows, stratified_subset.stratified_rows(np.eye(5)[y], 0.2, seed=4))


def test_dataset_subset_applies_the_same_rule_as_arrays_in_one_pass():
    y = np.random.default_rng(1).integers(0, 4, 150).astype("int32")
    ids = np.arange(150, dtype="float32")[:, None]
    dataset = tf.data.Dataset.from_tensor_slices((ids, y)).batch(16)
    subset = kg.estimation_subset(dataset, FRACTION, seed=2, num_classes=4)
    got = np.array([int(x[0]) for x, _ in subset.as_numpy_iterator()])
    expected = stratified_subset.kept_mask(
        y, FRACTION, stratified_subset._phases(4, 2))
    np.testing.assert_array_equal(got, np.flatnonzero(expected))


def _kept_ids(labels, fraction=FRACTION, **kwargs):
    ids = np.arange(len(labels), dtype="float32")[:, None]
    subset = kg.estimation_subset(
        tf.data.Dataset.from_tensor_slices((ids, labels)).batch(16), fraction,
        seed=2, **kwargs)
    return np.array([int(x[0]) for x, _ in subset.as_numpy_iterator()])


def test_dataset_labels_sparse_column_or_one_hot_select_the_same_rows():
    y = np.random.default_rng(4).integers(0, 3, 120).astype("int32")
    sparse = _kept_ids(y, num_classes=3)
    np.testing.assert_array_equal(_kept_ids(y[:, None], num_classes=3), sparse)
    np.testing.assert_array_equal(
        _kept_ids(np.eye(3, dtype="float32")[y], num_classes=3), sparse)
    # Two classes one-hot: the last axis has 2 entries, still one-hot.
    y2 = y % 2
    np.testing.assert_array_equal(
        _kept_ids(np.eye(2, dtype="float32")[y2]), _kept_ids(y2))
    assert 0 < len(sparse) < 120


def test_fraction_one_is_the_data_itself_and_empty_labels_keep_nothing():
    dataset = tf.data.Dataset.from_tensor_slices((np.zeros((4, 1)), [0, 1, 0, 1]))
    assert kg.estimation_subset(dataset, 1.0) is dataset
    arrays = ({"a": np.zeros((4, 1))}, np.array([0, 1, 0, 1]))
    assert kg.estimation_subset(arrays, 1.0) is arrays
    for fraction in (0.5, 1.0):
        rows = stratified_subset.stratified_rows(np.zeros(0, int), fraction)
        assert rows.shape == (0,) and rows.dtype == np.int64
    np.testing.assert_array_equal(
        stratified_subset.stratified_rows(np.array([2, 0, 1]), 1.0), [0, 1, 2])
    # The default seed is 0.
    y = np.arange(60) % 3
    np.testing.assert_array_equal(
        stratified_subset.stratified_rows(y, 0.5),
        stratified_subset.stratified_rows(y, 0.5, seed=0))


def test_a_dataset_without_labels_is_refused():
    features_only = tf.data.Dataset.from_tensor_slices(np.zeros((8, 2)))
    with pytest.raises(ValueError, match="yields no labels"):
        kg.estimation_subset(features_only, 0.5)
    one_part = tf.data.Dataset.from_tensor_slices((np.zeros((8, 2)),))
    with pytest.raises(ValueError, match="yields no labels"):
        kg.estimation_subset(one_part, 0.5)


def test_subset_size_counts_the_kept_examples_of_arrays_and_datasets():
    y = np.random.default_rng(3).integers(0, 4, 150).astype("int32")
    x = {"a": np.arange(150, dtype="float32")[:, None]}
    arrays = kg.estimation_subset((x, y), FRACTION, seed=2, num_classes=4)
    assert stratified_subset.subset_size(arrays) == len(arrays[1])
    assert len(arrays[1]) == len(arrays[0]["a"]) < 150
    dataset = kg.estimation_subset(
        tf.data.Dataset.from_tensor_slices((x, y)).batch(16), FRACTION,
        seed=2, num_classes=4)
    assert stratified_subset.subset_size(dataset) == sum(1 for _ in dataset)


def test_dataset_subset_is_fixed_even_if_the_dataset_reshuffles():
    y = (np.arange(120) % 3).astype("int32")
    ids = np.arange(120, dtype="float32")
    dataset = tf.data.Dataset.from_tensor_slices((ids, y)).shuffle(
        120, reshuffle_each_iteration=True).batch(10)
    subset = kg.estimation_subset(dataset, 0.25, seed=0, num_classes=3)
    first = sorted(x for x, _ in subset.as_numpy_iterator())
    second = sorted(x for x, _ in subset.as_numpy_iterator())
    assert first == second and len(first) == 30
    labels = np.array([label for _, label in subset.as_numpy_iterator()])
    assert np.bincount(labels).tolist() == [10, 10, 10]


def test_a_fraction_that_keeps_no_row_is_refused(toy_data, compiled_toy_model):
    x, y = toy_data(n=40)
    with pytest.raises(ValueError, match="estimation_fraction"):
        kg.estimation_subset((x, y), 0.001, seed=0)
    model = compiled_toy_model()
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    with pytest.raises(ValueError, match="estimation_fraction"):
        kg.BlendEstimator(model, dataset, kg.split_holdout((x, y))[1],
                          estimation_fraction=0.001)


def test_sample_weights_travel_with_their_rows(toy_data):
    x, y = toy_data(n=60)
    weights = np.arange(60, dtype="float32")
    sx, sy, sw = kg.estimation_subset((x, y, weights), 0.5, seed=1)
    rows = stratified_subset.stratified_rows(y, 0.5, seed=1)
    np.testing.assert_array_equal(sw, rows)
    np.testing.assert_array_equal(sy, y[rows])
    np.testing.assert_array_equal(sx["a"], x["a"][rows])
