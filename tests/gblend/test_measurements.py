"""The T' and V passes of an estimate: which rows they measure."""

import keras
import numpy as np
import tensorflow as tf

import keras_gblend as kg
from keras_gblend.gblend import blend_estimator, measurements
from keras_gblend.inputs import input_data


def test_subset_of_an_unbatched_dataset_batches_it_at_the_given_size(toy_data):
    x, y = toy_data(n=100, seed=0)
    unbatched = tf.data.Dataset.from_tensor_slices((x, y))
    subset = measurements.train_subset_dataset(unbatched, fraction=0.5,
                                             batch_size=10)
    sizes = [int(batch[1].shape[0]) for batch in subset]
    assert sizes == [10] * 5  # the first half: 5 batches of 10


def _split(toy_data, n=120, seed=0):
    x, y = toy_data(n=n, seed=seed)
    return kg.split_holdout((x, y), fraction=0.25, seed=0)


def test_train_subset_is_training_rows_disjoint_from_the_holdout(toy_data):
    x, y = toy_data(n=120)
    rows = np.arange(120, dtype="float32")
    x = {**x, "a": np.concatenate([x["a"][:, :5], rows[:, None]], axis=1)}
    train, holdout = kg.split_holdout((x, y), fraction=0.25, seed=0)
    subset = measurements.train_subset_dataset(train, fraction=0.5, seed=3)
    subset_rows = np.concatenate([b[0]["a"][:, -1] for b in subset])
    assert len(subset_rows) == round(0.5 * len(train[1]))
    assert set(subset_rows) <= set(train[0]["a"][:, -1])
    assert not set(subset_rows) & set(holdout[0]["a"][:, -1])


def test_estimate_measures_train_start_on_the_train_subset(
        toy_data, compiled_toy_model):
    # T' replaced by the holdout V would make ΔO vanish; the start values
    # must be the model's own losses on T' and on V.
    train, holdout = _split(toy_data)
    model = compiled_toy_model(keras.optimizers.SGD(0.1))
    estimate = kg.estimate_blend_weights(model, train, holdout, epochs=1,
                                         batch_size=16)
    # T' is 25 % of the training data drawn from the clones' subset: at a
    # default estimation fraction of 25 % or less, all of that subset.
    fraction = blend_estimator.DEFAULT_ESTIMATION_FRACTION
    assert fraction <= 0.25
    subset = input_data.dataset_factory(
        kg.estimation_subset(train, fraction, seed=0), 16)()
    for data, measured in ((subset, estimate.train_start),
                           (input_data.dataset_factory(holdout, 16)(),
                            estimate.holdout_start)):
        scores = model.evaluate(data, return_dict=True, verbose=0)
        expected = [scores[f"{h}_loss"] for h in model.head_names]
        np.testing.assert_allclose(measured, expected, rtol=1e-5)
    assert np.all(np.abs(estimate.train_start - estimate.holdout_start) > 1e-3)
