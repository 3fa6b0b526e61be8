import keras
import numpy as np
import pytest

import keras_gblend as kg
from keras_gblend.gblend import blend_estimator, clones, measurements
from keras_gblend.inputs import input_data
from conftest import compiled_toy_model, sparse_ce as kg_sparse_ce, toy_data, toy_model


def _split(seed=0):
    x, y = toy_data(n=120, seed=seed)
    return kg.split_holdout((x, y), fraction=0.25, seed=0)


def _state(model):
    weights = [w.copy() for w in model.get_weights()]
    optimizer = [np.array(v.numpy()) for v in model.optimizer.variables]
    return weights, optimizer


def test_estimation_leaves_model_and_optimizer_bit_identical():
    train, holdout = _split()
    model = compiled_toy_model(keras.optimizers.SGD(0.05, momentum=0.9))
    model.fit(*train, epochs=1, verbose=0)  # optimizer state is non-trivial
    before = _state(model)
    estimate = kg.estimate_blend_weights(model, train, holdout, epochs=2)
    after = _state(model)
    for b, a in zip(before[0] + before[1], after[0] + after[1]):
        assert b.tobytes() == a.tobytes()
    assert estimate.fused


def test_fused_unimodal_estimation_equals_separate_estimation():
    train, holdout = _split()
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


def test_informative_modality_gets_more_weight_than_noise():
    train, holdout = _split()
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


def test_estimate_figures_are_ogr_functions_of_its_measured_losses():
    train, holdout = _split()
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


def test_clones_deserialize_custom_layers_through_custom_objects():
    train, holdout = _split()
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


def test_a_model_compiled_with_a_loss_name_clones_saves_and_loads(tmp_path):
    # Keras turns "sparse_categorical_crossentropy" into a function; the
    # model wraps it in a Loss that must rebuild in clones and .keras files.
    # (A probability loss: the heads end in a softmax.)
    train, holdout = _split()
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


def test_per_example_values_average_to_what_evaluate_reports():
    train, holdout = _split()
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
        model.compile(keras.optimizers.SGD(0.05), kg_sparse_ce(),
                      metrics=["accuracy"], weighted_metrics=["accuracy"])
        scores = model.evaluate(dataset, return_dict=True, verbose=0)
        for i, head in enumerate(model.head_names):
            assert losses[i].mean() == pytest.approx(scores[f"{head}_loss"], rel=1e-5)
            key = f"{head}_accuracy" if len(data) == 2 else f"{head}_weighted_accuracy"
            assert errors[i].mean() == pytest.approx(1 - scores[key], abs=1e-6)


def test_accuracy_metric_uses_error():
    train, holdout = _split()
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


def test_estimation_from_a_dataset_matches_arrays_of_the_same_order():
    train, holdout = _split()
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


def test_bad_holdouts_fail_before_training():
    train, holdout = _split()
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


def test_non_finite_loss_raises_and_leaves_model_unchanged():
    train, holdout = _split()
    model = compiled_toy_model(keras.optimizers.SGD(1e12))
    before = _state(model)
    with pytest.raises(FloatingPointError, match="Non-finite"):
        kg.estimate_blend_weights(model, train, holdout, epochs=2)
    for b, a in zip(before[0], _state(model)[0]):
        assert b.tobytes() == a.tobytes()


def test_argument_errors():
    train, holdout = _split()
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


def test_clones_continue_the_learning_rate_schedule_from_the_model_step():
    # 0.1 up to step 1000, then 0: a clone of a model past step 1000 must
    # not train at all (no restart at the schedule's initial 0.1).
    train, holdout = _split()
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


def test_a_shuffled_holdout_gives_the_estimate_of_the_unshuffled_one():
    # Issue 26: the labels were read in one pass and the predictions in
    # another; a reshuffling dataset paired them with other examples.
    import tensorflow as tf

    train, holdout = _split()
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


def test_the_train_subset_keeps_sample_weights_and_labels_per_head():
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


def test_train_losses_on_t_prime_are_weighted_as_on_the_holdout():
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
