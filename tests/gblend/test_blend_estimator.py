import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_gblend as kg
from keras_gblend.experiment import config as experiment_config
from keras_gblend.gblend import (
    blend_estimator, clones, measurements, stratified_subset)
from keras_gblend.inputs import input_data
from keras_gblend.model.blended_model import BlendedModel


def _split(toy_data, seed=0):
    x, y = toy_data(n=120, seed=seed)
    return kg.split_holdout((x, y), fraction=0.25, seed=0)


def _state(model):
    weights = [w.copy() for w in model.get_weights()]
    optimizer = [np.array(v.numpy()) for v in model.optimizer.variables]
    return weights, optimizer


def test_estimation_leaves_model_and_optimizer_bit_identical(
        toy_data, compiled_toy_model):
    train, holdout = _split(toy_data)
    model = compiled_toy_model(keras.optimizers.SGD(0.05, momentum=0.9))
    model.fit(*train, epochs=1, verbose=0)  # optimizer state is non-trivial
    before = _state(model)
    estimate = kg.estimate_blend_weights(model, train, holdout, epochs=2)
    after = _state(model)
    for b, a in zip(before[0] + before[1], after[0] + after[1]):
        assert b.tobytes() == a.tobytes()
    assert estimate.fused


def test_fused_unimodal_estimation_equals_separate_estimation(
        toy_data, compiled_toy_model):
    train, holdout = _split(toy_data)
    model = compiled_toy_model(keras.optimizers.SGD(0.05))
    fused = kg.estimate_blend_weights(model, train, holdout, epochs=2, fused=True)
    separate = kg.estimate_blend_weights(
        model, train, holdout, epochs=2, fused=False
    )
    assert fused.fused and not separate.fused
    for field in ("train_end", "holdout_end", "delta_o", "delta_g", "weights"):
        np.testing.assert_allclose(
            getattr(fused, field), getattr(separate, field), rtol=1e-5, atol=1e-6
        )
    # The heads really trained: their holdout loss moved.
    assert np.all(np.abs(fused.delta_g) > 1e-3)


def test_informative_modality_gets_more_weight_than_noise(
        toy_data, compiled_toy_model):
    train, holdout = _split(toy_data)
    model = compiled_toy_model(keras.optimizers.SGD(0.05))
    estimate = kg.estimate_blend_weights(model, train, holdout, epochs=3)
    weights = estimate.weights_dict()
    delta_g = dict(zip(estimate.head_names, estimate.delta_g))
    assert delta_g["a"] > delta_g["v"]
    assert weights["a"] > weights["v"]
    logs = estimate.as_logs()
    assert logs["gblend/delta_g/a"] == pytest.approx(delta_g["a"])
    assert logs["gblend/delta_g_se/v"] == pytest.approx(estimate.delta_g_se[1])
    assert set(logs) == {
        f"gblend/{f}/{h}"
        for f in ("delta_o", "delta_g", "ogr", "delta_g_se", "delta_o_se")
        for h in "a v joint".split()
    }


def test_estimate_figures_are_ogr_functions_of_its_measured_losses(
        toy_data, compiled_toy_model):
    train, holdout = _split(toy_data)
    model = compiled_toy_model(keras.optimizers.SGD(0.05))
    # min_delta_o 0.3 is above every |ΔO| here: it sets the weights.
    for noise_z, min_delta_o in ((None, kg.ogr.DEFAULT_MIN_DELTA_O),
                                 (1.0, 0.3)):
        e = kg.estimate_blend_weights(model, train, holdout, epochs=2,
                                      noise_z=noise_z,
                                      min_delta_o=min_delta_o)
        delta_o = (e.holdout_end - e.train_end) - (e.holdout_start - e.train_start)
        np.testing.assert_allclose(e.delta_o, delta_o, rtol=1e-12)
        np.testing.assert_allclose(e.delta_g, e.holdout_start - e.holdout_end,
                                   rtol=1e-12)
        np.testing.assert_allclose(e.ogr, np.abs(delta_o / e.delta_g))
        expected = kg.ogr.updated_blend_weights(
            e.previous_weights, e.delta_g, e.delta_o, min_delta_o=min_delta_o,
            delta_g_se=e.delta_g_se, delta_o_se=e.delta_o_se,
            noise_z=noise_z or 0.0)
        np.testing.assert_allclose(e.weights, expected, rtol=1e-12)
        np.testing.assert_array_equal(e.generalizing, kg.ogr.generalizing_heads(
            e.delta_g, e.delta_g_se, noise_z or 0.0))
        # The weights in use were the model's (compiled: 1 each).
        np.testing.assert_allclose(e.previous_weights, [1.0, 1.0, 1.0])
        if noise_z is None:
            assert e.delta_g_se is None
        else:
            assert np.all(e.delta_g_se > 0) and np.all(e.delta_o_se > 0)


class _UnregisteredScale(keras.layers.Layer):
    """A custom layer Keras cannot deserialize without `custom_objects`."""

    def call(self, inputs):
        return 2.0 * inputs


def test_clones_deserialize_custom_layers_through_custom_objects(toy_data):
    train, holdout = _split(toy_data)
    encoders = {"a": keras.Sequential([keras.Input((6,)), _UnregisteredScale(),
                                       keras.layers.Dense(4)]),
                "v": keras.Sequential([keras.Input((4,)),
                                       keras.layers.Dense(4)])}
    model = kg.late_fusion_model(encoders, num_classes=3)
    model.compile(keras.optimizers.SGD(0.05),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(Exception, match="_UnregisteredScale"):
        kg.estimate_blend_weights(model, train, holdout, epochs=1,
                                  noise_z=None)
    estimate = kg.estimate_blend_weights(
        model, train, holdout, epochs=1, noise_z=None,
        custom_objects={"_UnregisteredScale": _UnregisteredScale})
    assert np.all(np.isfinite(estimate.delta_g))


def test_a_model_compiled_with_a_loss_name_clones_saves_and_loads(
        tmp_path, toy_data):
    # Keras turns "sparse_categorical_crossentropy" into a function; the
    # model wraps it in a Loss that must rebuild in clones and .keras files.
    # (A probability loss: the heads end in a softmax.)
    train, holdout = _split(toy_data)
    keras.utils.set_random_seed(0)
    inputs = {"a": keras.Input((6,), name="a"), "v": keras.Input((4,), name="v")}
    features = {m: keras.layers.Dense(8, activation="relu")(t)
                for m, t in inputs.items()}
    model = kg.BlendedModel(inputs=inputs, outputs={
        **{m: keras.layers.Dense(3, activation="softmax", name=f"{m}_head")(f)
           for m, f in features.items()},
        "joint": keras.layers.Dense(3, activation="softmax", name="joint")(
            keras.layers.Concatenate()(list(features.values())))})
    model.compile(keras.optimizers.SGD(0.05), "sparse_categorical_crossentropy")
    estimate = kg.estimate_blend_weights(model, train, holdout, epochs=1,
                                         noise_z=None)
    assert np.all(np.isfinite(estimate.delta_g))
    model.fit(*train, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.evaluate(*holdout, verbose=0) == pytest.approx(
        model.evaluate(*holdout, verbose=0), rel=1e-6)


def test_per_example_values_average_to_what_evaluate_reports(
        toy_data, compiled_toy_model, sparse_ce):
    train, holdout = _split(toy_data)
    model = compiled_toy_model(keras.optimizers.SGD(0.05))
    model.fit(*train, epochs=1, verbose=0)
    weights = np.linspace(0.5, 2.0, len(holdout[1])).astype("float32")
    for data in (holdout, holdout + (weights,)):
        dataset = input_data.dataset_factory(data, 16)()
        losses = measurements.per_example_values(
            model, dataset, model.head_names, "loss")
        errors = measurements.per_example_values(
            model, dataset, model.head_names, "accuracy")
        assert losses.shape == (3, len(holdout[1]))
        model.compile(keras.optimizers.SGD(0.05), sparse_ce(),
                      metrics=["accuracy"], weighted_metrics=["accuracy"])
        scores = model.evaluate(dataset, return_dict=True, verbose=0)
        for i, head in enumerate(model.head_names):
            assert losses[i].mean() == pytest.approx(scores[f"{head}_loss"], rel=1e-5)
            key = f"{head}_accuracy" if len(data) == 2 else f"{head}_weighted_accuracy"
            assert errors[i].mean() == pytest.approx(1 - scores[key], abs=1e-6)


def test_accuracy_metric_uses_error(toy_data, compiled_toy_model):
    train, holdout = _split(toy_data)
    model = compiled_toy_model(keras.optimizers.SGD(0.05))
    estimate = kg.estimate_blend_weights(
        model, train, holdout, epochs=2, metric="accuracy"
    )
    for values in (estimate.holdout_start, estimate.holdout_end, estimate.train_end):
        assert np.all((values >= 0) & (values <= 1))
    # Error on V before any estimation training equals 1 - model accuracy.
    logits = model.predict(holdout[0], verbose=0)
    for head, error in zip(estimate.head_names, estimate.holdout_start):
        accuracy = (logits[head].argmax(1) == holdout[1]).mean()
        assert error == pytest.approx(1 - accuracy, abs=1e-6)


def test_estimation_from_a_dataset_matches_arrays_of_the_same_order(
        toy_data, compiled_toy_model):
    train, holdout = _split(toy_data)
    model = compiled_toy_model(keras.optimizers.SGD(0.05))
    import tensorflow as tf

    train_ds = tf.data.Dataset.from_tensor_slices(train).batch(16)
    holdout_ds = tf.data.Dataset.from_tensor_slices(holdout).batch(16)
    subset = (
        {k: v[:32] for k, v in train[0].items()},
        train[1][:32],
    )
    # All the training data, in order: the same clone training either way.
    from_ds = kg.estimate_blend_weights(
        model, train_ds, holdout_ds, epochs=1, train_subset=subset,
        batch_size=16, estimation_fraction=1.0,
    )
    from_arrays = kg.estimate_blend_weights(
        model,
        train,
        holdout,
        epochs=1,
        train_subset=subset,
        batch_size=16,
        seed=None,
        estimation_fraction=1.0,
    )
    np.testing.assert_allclose(from_ds.delta_g, from_arrays.delta_g, rtol=1e-5)


def test_bad_holdouts_fail_before_training(toy_data, compiled_toy_model):
    train, holdout = _split(toy_data)
    model = compiled_toy_model(keras.optimizers.SGD(0.05))
    before = _state(model)
    x_h, y_h = holdout
    cases = {
        "no labels": (x_h, None),
        "empty": ({k: v[:0] for k, v in x_h.items()}, y_h[:0]),
        "single class": (x_h, np.zeros_like(y_h)),
        # Checked against the model's classes: the message names the
        # holdout.
        r"^The holdout: 1 label\(s\) are not": (
            x_h, np.where(np.arange(len(y_h)) == 0, 7, y_h)),
    }
    for problem, bad in cases.items():
        with pytest.raises(ValueError, match=problem):
            kg.estimate_blend_weights(model, train, bad, epochs=1)
    for b, a in zip(before[0], _state(model)[0]):
        assert b.tobytes() == a.tobytes()
    assert int(model.optimizer.iterations.numpy()) == 0


def test_non_finite_loss_raises_and_leaves_model_unchanged(
        toy_data, compiled_toy_model):
    train, holdout = _split(toy_data)
    model = compiled_toy_model(keras.optimizers.SGD(1e12))
    before = _state(model)
    with pytest.raises(FloatingPointError, match="Non-finite"):
        kg.estimate_blend_weights(model, train, holdout, epochs=2)
    for b, a in zip(before[0], _state(model)[0]):
        assert b.tobytes() == a.tobytes()


def test_argument_errors(toy_data, compiled_toy_model):
    train, holdout = _split(toy_data)
    model = compiled_toy_model()
    with pytest.raises(ValueError, match="metric"):
        kg.estimate_blend_weights(model, train, holdout, metric="f1")
    with pytest.raises(ValueError, match="epochs"):
        kg.estimate_blend_weights(model, train, holdout, epochs=0)
    import tensorflow as tf

    forever = tf.data.Dataset.from_tensor_slices(train).batch(8).repeat()
    with pytest.raises(ValueError, match="repeats forever"):
        kg.estimate_blend_weights(model, forever, holdout)
    with pytest.raises(TypeError, match="BlendedModel"):
        kg.estimate_blend_weights(keras.Sequential(), train, holdout)
    uncompiled = compiled_toy_model().__class__.from_config(model.get_config())
    with pytest.raises(ValueError, match="Compile"):
        kg.estimate_blend_weights(uncompiled, train, holdout)


def test_shared_unimodal_variables_fall_back_to_separate_runs():
    a = keras.Input((6,), name="a")
    v = keras.Input((6,), name="v")
    shared = keras.layers.Dense(4, name="shared")
    fa, fv = shared(a), shared(v)
    model = kg.BlendedModel(
        inputs={"a": a, "v": v},
        outputs={
            "a": keras.layers.Dense(3, name="ha")(fa),
            "v": keras.layers.Dense(3, name="hv")(fv),
            "joint": keras.layers.Dense(3, name="joint")(
                keras.layers.Concatenate()([fa, fv])
            ),
        },
    )
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    groups, fused = blend_estimator.estimation_groups(model, None)
    assert not fused and groups == [("a",), ("v",), ("joint",)]
    with pytest.raises(ValueError, match="share variables"):
        blend_estimator.estimation_groups(model, True)


def test_clones_continue_the_learning_rate_schedule_from_the_model_step(
        toy_data, compiled_toy_model):
    # 0.1 up to step 1000, then 0: a clone of a model past step 1000 must
    # not train at all (no restart at the schedule's initial 0.1).
    train, holdout = _split(toy_data)
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([1000], [0.1, 0.0])
    model = compiled_toy_model(keras.optimizers.SGD(schedule))
    early = kg.estimate_blend_weights(model, train, holdout, epochs=1)
    assert np.all(early.holdout_end != early.holdout_start)
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(1001)
    late = kg.estimate_blend_weights(model, train, holdout, epochs=1,
                                     on_no_generalization="keep")
    np.testing.assert_array_equal(late.holdout_end, late.holdout_start)
    np.testing.assert_array_equal(late.train_end, late.train_start)
    assert late.weights is None  # no head generalized
    assert int(model.optimizer.iterations) == 1001  # the model's is only read


def test_fresh_optimizer_of_a_fresh_optimizer_continues_from_both_steps():
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
        [10, 20], [0.3, 0.2, 0.1])
    model_optimizer = keras.optimizers.SGD(schedule)
    model_optimizer.build([keras.Variable(1.0)])
    model_optimizer.iterations.assign(12)
    clone_optimizer = clones.fresh_optimizer(model_optimizer)
    assert int(clone_optimizer.iterations) == 0
    np.testing.assert_allclose(float(clone_optimizer.learning_rate), 0.2)
    clone_optimizer.build([keras.Variable(1.0)])
    clone_optimizer.iterations.assign(9)  # 12 + 9 = 21: past step 20
    again = clones.fresh_optimizer(clone_optimizer)
    np.testing.assert_allclose(float(again.learning_rate), 0.1)


def test_a_shuffled_holdout_gives_the_estimate_of_the_unshuffled_one(
        toy_data, compiled_toy_model):
    # Issue 26: the labels were read in one pass and the predictions in
    # another; a reshuffling dataset paired them with other examples.
    import tensorflow as tf

    train, holdout = _split(toy_data)
    model = compiled_toy_model(keras.optimizers.SGD(0.05))
    plain = tf.data.Dataset.from_tensor_slices(holdout).batch(8)
    shuffled = tf.data.Dataset.from_tensor_slices(holdout).shuffle(
        len(holdout[1]), seed=3, reshuffle_each_iteration=True).batch(8)
    estimates = [kg.estimate_blend_weights(model, train, ds, epochs=2)
                 for ds in (plain, shuffled)]
    for field in ("holdout_start", "holdout_end", "delta_g", "delta_o",
                  "delta_g_se", "delta_o_se", "weights"):
        np.testing.assert_allclose(getattr(estimates[0], field),
                                   getattr(estimates[1], field),
                                   rtol=1e-5, atol=1e-7, err_msg=field)
    # The same holds for the answer chosen on it.
    answers = [kg.select_answer(model, ds) for ds in (plain, shuffled)]
    assert answers[0].holdout_log_loss == pytest.approx(
        answers[1].holdout_log_loss, rel=1e-6)
    assert answers[1].accuracy(model, shuffled) == pytest.approx(
        answers[0].holdout_accuracy)


def test_the_train_subset_keeps_sample_weights_and_labels_per_head(toy_data):
    # Issue 26: T' dropped sample weights (and broke on {head: y} labels)
    # for array data, while V kept them.
    x, y = toy_data(n=40)
    weight = np.linspace(0.0, 2.0, 40).astype("float32")
    elements = list(measurements.train_subset_dataset(
        (x, y, weight), fraction=0.5, batch_size=40, seed=0))
    assert len(elements) == 1 and len(elements[0]) == 3
    x_subset, y_subset, w_subset = (np.asarray(t) if not isinstance(t, dict)
                                    else t for t in elements[0])
    rows = [int(np.flatnonzero((x["a"] == r).all(axis=1))[0])
            for r in np.asarray(x_subset["a"])]
    np.testing.assert_array_equal(w_subset, weight[rows])
    np.testing.assert_array_equal(y_subset, y[rows])
    per_head = {h: y for h in ("a", "v", "joint")}
    (_, labels), = measurements.train_subset_dataset(
        (x, per_head), fraction=0.5, batch_size=40, seed=0)
    assert sorted(labels) == ["a", "joint", "v"]
    np.testing.assert_array_equal(labels["joint"], y[rows])


def test_train_losses_on_t_prime_are_weighted_as_on_the_holdout(
        toy_data, compiled_toy_model):
    # Zero weight on every example of class 0: T' and V both measure the
    # loss of the other classes only, so with T' = V (the same rows) the
    # overfitting O = L^V - L^T' is 0 at both checkpoints.
    x, y = toy_data(n=90, seed=4)
    weight = (y != 0).astype("float32")
    model = compiled_toy_model(keras.optimizers.SGD(0.05))
    data = (x, y, weight)
    estimate = kg.estimate_blend_weights(
        model, data, data, epochs=1, train_subset=data, noise_z=None)
    np.testing.assert_allclose(estimate.train_start, estimate.holdout_start,
                               rtol=1e-6)
    default_subset = kg.estimate_blend_weights(
        model, data, data, epochs=1, train_subset_fraction=1.0,
        estimation_fraction=1.0, noise_z=None)
    np.testing.assert_allclose(default_subset.train_start,
                               estimate.holdout_start, rtol=1e-6)


# Estimation on a subset of the training data (`estimation_fraction`) and
# clones kept between estimates (`keep_clones`).
FRACTION = 0.3


def _data_with_row_ids(toy_data, n=160, seed=0):
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


def _eager_model(compiled_toy_model):
    return compiled_toy_model(keras.optimizers.SGD(0.05), run_eagerly=True)


def test_clones_train_only_on_the_subset_the_same_at_every_estimate_and_resume(
        rows_clones_train_on, toy_data, compiled_toy_model):
    train, holdout = _data_with_row_ids(toy_data)
    expected = set(train[0]["a"][
        stratified_subset.stratified_rows(train[1], FRACTION, seed=3), -1
    ].astype(int))
    train_rows = set(train[0]["a"][:, -1].astype(int))
    model = _eager_model(compiled_toy_model)

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


def test_train_subset_is_drawn_from_the_rows_the_clones_train_on(
        toy_data, compiled_toy_model):
    # T' is 25 % of T (train_subset_fraction), taken from the clones'
    # subset: all of it when the subset is smaller.
    train, holdout = _data_with_row_ids(toy_data)
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
        rows_clones_train_on, toy_data, compiled_toy_model):
    train, holdout = _data_with_row_ids(toy_data)
    dataset = tf.data.Dataset.from_tensor_slices(train).shuffle(
        200, seed=1, reshuffle_each_iteration=True).batch(16)
    model = _eager_model(compiled_toy_model)
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


def test_kept_clones_estimate_exactly_as_fresh_clones(
        toy_data, compiled_toy_model):
    # Reloading a kept clone (weights, optimizer state, schedule position)
    # must measure what a newly built clone measures, estimate after
    # estimate.
    train, holdout = _data_with_row_ids(toy_data)
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


def test_estimate_reports_where_its_time_went(toy_data, compiled_toy_model):
    train, holdout = _data_with_row_ids(toy_data)
    estimate = kg.estimate_blend_weights(
        compiled_toy_model(), train, holdout, epochs=1,
        estimation_fraction=0.5)
    assert set(estimate.seconds) == {"subset", "clones", "training",
                                     "measuring", "bootstrap"}
    assert estimate.seconds["training"] > 0


@pytest.mark.parametrize("bad", [0, 0.0, -0.2, 1.5, float("nan"), "half",
                                 None, True])
def test_bad_fractions_are_refused_naming_the_argument(
        bad, toy_data, compiled_toy_model):
    train, holdout = _data_with_row_ids(toy_data, n=80)
    with pytest.raises(ValueError, match="estimation_fraction"):
        kg.GBlendCallback(holdout, estimation_fraction=bad)
    with pytest.raises(ValueError, match="estimation_fraction"):
        kg.estimate_blend_weights(compiled_toy_model(), train, holdout,
                                  estimation_fraction=bad)
    if isinstance(bad, (int, float)) and not isinstance(bad, bool):
        with pytest.raises(ValueError, match="estimation_fraction"):
            experiment_config.ExperimentConfig(estimation_fraction=bad).validate()


def test_a_fit_builds_and_compiles_one_clone(
        monkeypatch, toy_data, compiled_toy_model):
    from keras_gblend.gblend import clones, measurements

    compiled = []
    real = clones.compile_clone
    monkeypatch.setattr(clones, "compile_clone",
                        lambda model, clone, group: compiled.append(group)
                        or real(model, clone, group))
    train, holdout = _data_with_row_ids(toy_data)
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
