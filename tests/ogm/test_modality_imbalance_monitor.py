import warnings

import keras
import numpy as np
import pytest

import keras_gblend as kg
from keras_gblend.ogm import modality_imbalance, modality_imbalance_monitor


def _balanced_data(NUM_CLASSES, n=192, seed=0):
    """Both modalities carry the class."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % NUM_CLASSES).astype("int32")
    rng.shuffle(y)
    x = {"a": (rng.normal(size=(NUM_CLASSES, 6))[y] * 2.0
               + 0.3 * rng.normal(size=(n, 6))).astype("float32"),
         "v": (rng.normal(size=(NUM_CLASSES, 4))[y] * 2.0
               + 0.3 * rng.normal(size=(n, 4))).astype("float32")}
    return x, y


def _diagnosed(toy_model, sparse_ce, x, y, probe=True):
    model = toy_model(seed=0, modulation=kg.OGMGE(alpha=0.5, seed=0))
    model.compile(keras.optimizers.SGD(0.1), sparse_ce(),
                  loss_weights=[0.0, 0.0, 1.0])
    rows = np.arange(len(y))
    holdout = ({m: v[rows % 4 == 0] for m, v in x.items()}, y[rows % 4 == 0])
    train = ({m: v[rows % 4 != 0] for m, v in x.items()}, y[rows % 4 != 0])
    monitor = kg.ModalityImbalanceMonitor(holdout, check_epoch=2, epochs=4,
                                          fraction=1.0, batch_size=16,
                                          probe=probe)
    before = [w.copy() for w in model.get_weights()]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(*train, batch_size=16, epochs=3, verbose=0,
                            callbacks=[monitor])
    assert not all(np.array_equal(a, b)
                   for a, b in zip(before, model.get_weights()))
    messages = [str(w.message) for w in caught
                if "premise" in str(w.message)]
    return monitor.diagnosis, messages, history.history


def test_monitor_warns_when_the_slowed_modality_is_the_only_informative_one(
        toy_data, toy_model, sparse_ce):
    x, y = toy_data(n=192)  # `v` is almost pure noise
    diagnosis, messages, logs = _diagnosed(toy_model, sparse_ce, x, y)
    assert diagnosis.slowed == "a" and diagnosis.epoch == 2
    assert diagnosis.alone_accuracy["a"] > 0.9
    assert diagnosis.alone_accuracy["v"] < 0.6
    assert len(messages) == 1 and "slowing 'a'" in messages[0]
    # Logged from the checked epoch on.
    assert logs["ogm/premise_fails"] == [1.0, 1.0]
    assert logs["ogm/alone_accuracy/v"][0] == diagnosis.alone_accuracy["v"]
    assert len(diagnosis.ratio_trend["a"]) >= 2
    # The checked epoch's share of steps each modality was slowed: two
    # modalities, one slowed on every step, 'a' the dominant one.
    share = diagnosis.slowed_share
    assert share["a"] == logs["ogm/slowed/a"][1] > 0.5
    assert share["a"] + share["v"] == pytest.approx(1.0)


def test_monitor_is_silent_when_the_other_modality_is_informative(
        toy_model, sparse_ce, NUM_CLASSES):
    # Without probes the verdict rests on informativeness alone: both
    # modalities carry the class, so nothing is said.
    diagnosis, messages, logs = _diagnosed(
        toy_model, sparse_ce, *_balanced_data(NUM_CLASSES), probe=False)
    assert diagnosis.slowed is not None
    assert min(diagnosis.alone_accuracy.values()) > 0.8
    assert diagnosis.warning is None and not messages
    assert diagnosis.verdict == "modulate"
    assert logs["ogm/premise_fails"] == [0.0, 0.0]


def test_probes_say_do_not_when_fusion_leaves_no_encoder_behind(
        toy_model, sparse_ce, NUM_CLASSES):
    # Both encoders separate the classes as well fused as alone: the
    # informativeness check passes, the probes find nothing to recover.
    diagnosis, messages, logs = _diagnosed(
        toy_model, sparse_ce, *_balanced_data(NUM_CLASSES))
    assert diagnosis.warning is None
    for m in ("a", "v"):
        gap = (diagnosis.alone_probe_accuracy[m]
               - diagnosis.probe_accuracy[m])
        assert gap < 0.05
    assert diagnosis.verdict == "do not modulate"
    assert len(messages) == 1 and "do not modulate" in messages[0]
    assert "nothing to recover" in messages[0]
    assert logs["ogm/premise_fails"] == [1.0, 1.0]


def test_monitor_validates_its_arguments_and_needs_ogm(
        toy_data, toy_model, sparse_ce):
    x, y = toy_data()
    with pytest.raises(ValueError, match="fraction"):
        kg.ModalityImbalanceMonitor((x, y), fraction=0.0)
    with pytest.raises(ValueError, match="check_epoch"):
        kg.ModalityImbalanceMonitor((x, y), check_epoch=0)
    with pytest.raises(ValueError, match="epochs"):
        kg.ModalityImbalanceMonitor((x, y), epochs=1.5)
    for threshold in (0.0, 1.5):
        with pytest.raises(ValueError, match="threshold"):
            kg.ModalityImbalanceMonitor((x, y), threshold=threshold)
    assert kg.ModalityImbalanceMonitor((x, y), threshold=1.0).threshold == 1.0
    model = toy_model()
    model.compile("sgd", sparse_ce())
    with pytest.raises(ValueError, match="OGMGE"):
        model.fit(x, y, epochs=1, verbose=0,
                  callbacks=[kg.ModalityImbalanceMonitor((x, y))])


def test_a_check_outside_the_window_or_the_run_is_refused_before_training(
        toy_data, toy_model, sparse_ce):
    x, y = toy_data()
    model = toy_model(modulation=kg.OGMGE(alpha=0.5, start_epoch=1,
                                          end_epoch=2))
    model.compile("sgd", sparse_ce(), loss_weights=[0.0, 0.0, 1.0])
    before = [w.copy() for w in model.get_weights()]
    # Epoch indices 1 and 2 are modulated: check_epoch 2 and 3 see them.
    for check_epoch in (1, 4):
        with pytest.raises(ValueError, match=(
                rf"`check_epoch={check_epoch}` checks after epoch index "
                rf"{check_epoch - 1}, outside .* epochs 1 to 2.*between 2 "
                rf"and 3")):
            model.fit(x, y, epochs=5, verbose=0, callbacks=[
                kg.ModalityImbalanceMonitor((x, y), check_epoch=check_epoch)])
    assert all(np.array_equal(a, b, equal_nan=True)  # unset ΔO/ΔG are NaN
               for a, b in zip(before, model.get_weights()))
    # A fit that ends before the check warns; the fit continuing the run
    # checks.
    monitor = kg.ModalityImbalanceMonitor((x, y), check_epoch=3)
    with pytest.warns(UserWarning, match="after the last of the 2 epochs"):
        model.fit(x, y, epochs=2, verbose=0, callbacks=[monitor])
    assert monitor.diagnosis is None
    model.fit(x, y, epochs=3, initial_epoch=2, verbose=0,
              callbacks=[monitor])
    assert monitor.diagnosis.epoch == 3


def test_scoring_heads_that_never_train_is_refused(
        toy_data, toy_model, sparse_ce):
    # blend_scope='all' with the uni-modal heads at weight 0: they never
    # train, so OGM-GE would score random projections.
    x, y = toy_data()
    model = toy_model(blend_scope="all", modulation=kg.OGMGE(
        alpha=0.5, score_source="heads"))
    model.compile("sgd", sparse_ce(), loss_weights=[0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match=r"\['a', 'v'\].*blend_scope='shared'"):
        model.fit(x, y, epochs=1, verbose=0)
    # Under 'shared' the same heads train as probes: accepted.
    model = toy_model(blend_scope="shared", modulation=kg.OGMGE(
        alpha=0.5, score_source="heads"))
    model.compile("sgd", sparse_ce(), loss_weights=[0.0, 0.0, 1.0])
    model.fit(x, y, epochs=1, verbose=0)
    assert model.history.history["ogm/coefficient/a"][0] <= 1.0


def test_monitor_trains_each_modality_as_long_as_the_model_by_default(
        monkeypatch, toy_data, toy_model, sparse_ce):
    from keras_gblend.gblend import blend_estimator

    asked = []
    real = blend_estimator.BlendEstimator.unimodal_holdout_values

    def spy(self, epochs, seed=None, inspect=None):
        asked.append((epochs, self.batch_size, self.estimation_fraction))
        return real(self, epochs, seed, inspect=inspect)

    monkeypatch.setattr(blend_estimator.BlendEstimator, "unimodal_holdout_values",
                        spy)
    x, y = toy_data(n=96)
    model = toy_model(seed=0, modulation=kg.OGMGE(alpha=0.5, seed=0))
    model.compile(keras.optimizers.SGD(0.1), sparse_ce(),
                  loss_weights=[0.0, 0.0, 1.0])
    monitor = kg.ModalityImbalanceMonitor((x, y), check_epoch=3)
    model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[monitor])
    # check_epoch epochs, the fit's batch size, half the data.
    assert asked == [(3, 16, 0.5)]
    assert monitor.diagnosis.epoch == 3


def test_monitor_defaults_and_argument_names(toy_data):
    x, y = toy_data()
    monitor = kg.ModalityImbalanceMonitor((x, y))
    assert (monitor.check_epoch, monitor.epochs, monitor.fraction,
            monitor.seed) == (1, None, 0.5, 0)
    assert kg.ModalityImbalanceMonitor((x, y), epochs=1).epochs == 1
    with pytest.raises(ValueError, match="^`check_epoch` must be"):
        kg.ModalityImbalanceMonitor((x, y), check_epoch=0)
    with pytest.raises(ValueError, match="^`fraction` must be in"):
        kg.ModalityImbalanceMonitor((x, y), fraction=2.0)
    # Not a BlendedModel at all: the same clear error.
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    plain.compile("sgd", "mse")
    with pytest.raises(ValueError, match="OGMGE"):
        plain.fit(np.zeros((4, 3)), np.zeros((4, 2)), verbose=0,
                  callbacks=[kg.ModalityImbalanceMonitor((x, y))])


def test_monitor_hands_its_settings_to_the_estimator(
        monkeypatch, toy_data, toy_model, sparse_ce):
    from keras_gblend.gblend import blend_estimator

    made = []
    real_init = blend_estimator.BlendEstimator.__init__

    def spy(self, model, train, holdout, **kwargs):
        made.append((train, kwargs))
        real_init(self, model, train, holdout, **kwargs)

    monkeypatch.setattr(blend_estimator.BlendEstimator, "__init__", spy)
    thresholds = []
    real_diagnose = modality_imbalance.diagnose

    def diagnose_spy(*args, **kwargs):
        thresholds.append(args[3])
        return real_diagnose(*args, **kwargs)

    monkeypatch.setattr(modality_imbalance_monitor, "diagnose", diagnose_spy)
    x, y = toy_data(n=96)
    own_train = ({m: v[:48] for m, v in x.items()}, y[:48])
    model = toy_model(seed=0, modulation=kg.OGMGE(alpha=0.5, seed=0))
    model.compile(keras.optimizers.SGD(0.1), sparse_ce(),
                  loss_weights=[0.0, 0.0, 1.0])
    monitor = kg.ModalityImbalanceMonitor((x, y), train=own_train,
                                          check_epoch=2, seed=5,
                                          threshold=0.3)
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0,
                        callbacks=[monitor])
    (train, kwargs), = made
    assert train is own_train
    assert kwargs["seed"] == 5 and kwargs["keep_clones"] is False
    assert kwargs["metric"] == "accuracy"
    assert thresholds == [0.3]
    # The ratio trend holds the logged epoch means, as numbers.
    assert monitor.diagnosis.ratio_trend["a"] == pytest.approx(
        history.history["ogm/ratio/a"])
    # Keras may call on_epoch_end without logs.
    monitor.on_epoch_end(7)


def test_monitor_names_itself_when_the_fit_data_cannot_be_cloned(
        toy_data, toy_model, sparse_ce):
    x, y = toy_data(n=64)
    model = toy_model(seed=0, modulation=kg.OGMGE(alpha=0.5, seed=0))
    model.compile(keras.optimizers.SGD(0.1), sparse_ce())

    def batches():
        while True:
            yield x, y

    with pytest.raises(ValueError, match="^ModalityImbalanceMonitor "):
        model.fit(batches(), steps_per_epoch=2, epochs=1, verbose=0,
                  callbacks=[kg.ModalityImbalanceMonitor((x, y))])
