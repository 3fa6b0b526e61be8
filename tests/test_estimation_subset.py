"""Estimation on a subset of the training data (`estimation_fraction`) and
clones kept between estimates (`keep_clones`)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_gblend as kg
from keras_gblend.gblend import clones, measurements, stratified_subset
from keras_gblend.experiment import config as experiment_config
from keras_gblend.model.blended_model import BlendedModel
from conftest import compiled_toy_model, toy_data

FRACTION = 0.3


def _data_with_row_ids(n=160, seed=0):
    """Toy data whose modality `a` ends with a column holding the row id,
    and a holdout of the last quarter."""
    x, y = toy_data(n=n, seed=seed)
    x = {**x, "a": np.concatenate(
        [x["a"][:, :5], np.arange(n, dtype="float32")[:, None]], axis=1)}
    return kg.split_holdout((x, y), fraction=0.25, seed=0)


@pytest.fixture
def rows_clones_train_on(monkeypatch):
    """Row ids of every batch an estimation clone trains on, per clone fit
    (clones of an eagerly run model run their train step eagerly)."""
    fits = []
    real_train_step = BlendedModel.train_step
    real_fit = BlendedModel.fit

    def train_step(self, data):
        if self.blend_scope == "all" and fits:  # a clone
            fits[-1].append(np.asarray(data[0]["a"][:, -1]).astype(int))
        return real_train_step(self, data)

    def fit(self, *args, **kwargs):
        if self.blend_scope == "all":
            fits.append([])
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(BlendedModel, "train_step", train_step)
    monkeypatch.setattr(BlendedModel, "fit", fit)
    return fits


def _eager_model():
    return compiled_toy_model(keras.optimizers.SGD(0.05), run_eagerly=True)


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


def test_clones_train_only_on_the_subset_the_same_at_every_estimate_and_resume(
        rows_clones_train_on):
    train, holdout = _data_with_row_ids()
    expected = set(train[0]["a"][
        stratified_subset.stratified_rows(train[1], FRACTION, seed=3), -1
    ].astype(int))
    train_rows = set(train[0]["a"][:, -1].astype(int))
    model = _eager_model()

    def fit(epochs, initial_epoch):
        callback = kg.GBlendCallback(
            holdout, first_super_epoch=1, super_epoch=1, estimation_epochs=2,
            estimation_fraction=FRACTION, seed=3, noise_z=None, verbose=0)
        model.fit(*train, batch_size=16, epochs=epochs,
                  initial_epoch=initial_epoch, verbose=0,
                  callbacks=[callback])

    fit(epochs=2, initial_epoch=0)  # estimates at epochs 0 and 1
    fit(epochs=3, initial_epoch=2)  # resumed: a new callback, epoch 2
    assert len(rows_clones_train_on) == 6  # 3 estimates x 2 clones
    for batches in rows_clones_train_on:
        seen = np.concatenate(batches)
        # Two epochs over exactly the subset: every row twice, no other.
        assert sorted(seen) == sorted(list(expected) * 2)
    assert len(expected) < 0.4 * len(train_rows) and expected <= train_rows


def test_train_subset_is_drawn_from_the_rows_the_clones_train_on():
    # T' is 25 % of T (train_subset_fraction), taken from the clones'
    # subset: all of it when the subset is smaller.
    train, holdout = _data_with_row_ids()
    model = compiled_toy_model()
    for fraction, share_of_subset in ((0.2, 1.0), (0.8, 0.25 / 0.8)):
        estimator = kg.BlendEstimator(model, train, holdout,
                                      estimation_fraction=fraction, seed=3)
        measured = np.concatenate(
            [x["a"][:, -1] for x, _ in estimator._train_subset]).astype(int)
        clone_rows = estimator.subset[0]["a"][:, -1].astype(int)
        assert set(measured) <= set(clone_rows)
        assert len(set(measured)) == len(measured) == round(
            share_of_subset * len(clone_rows))


def test_tf_data_training_data_estimates_on_a_cached_subset(
        rows_clones_train_on):
    train, holdout = _data_with_row_ids()
    dataset = tf.data.Dataset.from_tensor_slices(train).shuffle(
        200, seed=1, reshuffle_each_iteration=True).batch(16)
    model = _eager_model()
    callback = kg.GBlendCallback(
        holdout, first_super_epoch=1, super_epoch=1, estimation_epochs=1,
        estimation_fraction=0.5, noise_z=None, verbose=0)
    history = model.fit(dataset, epochs=2, verbose=0, callbacks=[callback])
    assert history.history["gblend/estimation_epoch"] == [0, 1]
    seen = [sorted(np.concatenate(b)) for b in rows_clones_train_on]
    assert len(seen) == 4 and all(s == seen[0] for s in seen)
    # The clones train in the dataset's own batch size.
    assert {len(b) for b in rows_clones_train_on[0][:-1]} == {16}
    labels = dict(zip(train[0]["a"][:, -1].astype(int), train[1]))
    counts = np.bincount([labels[row] for row in seen[0]])
    np.testing.assert_allclose(counts, 0.5 * np.bincount(train[1]), atol=1)


def test_kept_clones_estimate_exactly_as_fresh_clones():
    # Reloading a kept clone (weights, optimizer state, schedule position)
    # must measure what a newly built clone measures, estimate after
    # estimate.
    train, holdout = _data_with_row_ids()
    runs = {}
    for keep in (True, False):
        schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 5, 0.7)
        model = compiled_toy_model(
            keras.optimizers.SGD(schedule, momentum=0.9))
        callback = kg.GBlendCallback(
            holdout, first_super_epoch=1, super_epoch=1, estimation_epochs=2,
            estimation_fraction=0.5, keep_clones=keep, noise_z=None,
            verbose=0)
        runs[keep] = model.fit(*train, batch_size=16, epochs=3, verbose=0,
                               callbacks=[callback]).history
    for key in runs[True]:
        if key.startswith(("gblend/delta", "blend_weight/")):
            np.testing.assert_allclose(runs[True][key], runs[False][key],
                                       rtol=1e-5, atol=1e-6, err_msg=key)
    assert len(set(runs[True]["gblend/delta_g/a"])) == 3  # 3 estimates


def test_estimate_reports_where_its_time_went():
    train, holdout = _data_with_row_ids()
    estimate = kg.estimate_blend_weights(
        compiled_toy_model(), train, holdout, epochs=1,
        estimation_fraction=0.5)
    assert set(estimate.seconds) == {"subset", "clones", "training",
                                     "measuring", "bootstrap"}
    assert estimate.seconds["training"] > 0


@pytest.mark.parametrize("bad", [0, 0.0, -0.2, 1.5, float("nan"), "half",
                                 None, True])
def test_bad_fractions_are_refused_naming_the_argument(bad):
    train, holdout = _data_with_row_ids(n=80)
    with pytest.raises(ValueError, match="estimation_fraction"):
        kg.GBlendCallback(holdout, estimation_fraction=bad)
    with pytest.raises(ValueError, match="estimation_fraction"):
        kg.estimate_blend_weights(compiled_toy_model(), train, holdout,
                                  estimation_fraction=bad)
    if isinstance(bad, (int, float)) and not isinstance(bad, bool):
        with pytest.raises(ValueError, match="estimation_fraction"):
            experiment_config.ExperimentConfig(estimation_fraction=bad).validate()


def test_a_fraction_that_keeps_no_row_is_refused():
    x, y = toy_data(n=40)
    with pytest.raises(ValueError, match="estimation_fraction"):
        kg.estimation_subset((x, y), 0.001, seed=0)
    model = compiled_toy_model()
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    with pytest.raises(ValueError, match="estimation_fraction"):
        kg.BlendEstimator(model, dataset, kg.split_holdout((x, y))[1],
                          estimation_fraction=0.001)


def test_sample_weights_travel_with_their_rows():
    x, y = toy_data(n=60)
    weights = np.arange(60, dtype="float32")
    sx, sy, sw = kg.estimation_subset((x, y, weights), 0.5, seed=1)
    rows = stratified_subset.stratified_rows(y, 0.5, seed=1)
    np.testing.assert_array_equal(sw, rows)
    np.testing.assert_array_equal(sy, y[rows])
    np.testing.assert_array_equal(sx["a"], x["a"][rows])


def test_a_fit_builds_and_compiles_one_clone(monkeypatch):
    from keras_gblend.gblend import clones, measurements

    compiled = []
    real = clones.compile_clone
    monkeypatch.setattr(estimation, "_compile_clone",
                        lambda model, clone, group: compiled.append(group)
                        or real(model, clone, group))
    train, holdout = _data_with_row_ids()
    # Kept: one clone for both groups and all estimates; else one per group
    # per estimate.
    for keep, expected in ((True, [("a", "v")]),
                           (False, [("a", "v"), ("joint",)] * 3)):
        compiled.clear()
        callback = kg.GBlendCallback(
            holdout, first_super_epoch=1, super_epoch=1, estimation_epochs=1,
            keep_clones=keep, noise_z=None, verbose=0)
        compiled_toy_model().fit(*train, epochs=3, verbose=0,
                                 callbacks=[callback])
        assert len(callback.timings) == 3  # three estimates
        assert compiled == expected


def test_subset_of_an_unbatched_dataset_batches_it_at_the_given_size():
    x, y = toy_data(n=100, seed=0)
    unbatched = tf.data.Dataset.from_tensor_slices((x, y))
    subset = measurements.train_subset_dataset(unbatched, fraction=0.5,
                                             batch_size=10)
    sizes = [int(batch[1].shape[0]) for batch in subset]
    assert sizes == [10] * 5  # the first half: 5 batches of 10
