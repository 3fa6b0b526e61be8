import warnings

import keras
import numpy as np
import pytest

import keras_gblend as kg
from keras_gblend.ogm import modality_imbalance, modality_imbalance_monitor
from conftest import NUM_CLASSES, sparse_ce, toy_data, toy_model


def test_diagnosis_by_hand():
    # Informativeness (acc - 0.1) / 0.9: audio 0.867, visual 0.222, whose
    # ratio 0.256 is below 0.5: audio, slowed, is the only informative one.
    found = modality_imbalance.diagnose(
        {"audio": 0.88, "visual": 0.3}, {"audio": 0.5, "visual": 1.0}, 10)
    assert found.slowed == "audio"
    assert found.informativeness["visual"] == pytest.approx(0.2 / 0.9)
    assert "slowing 'audio'" in found.warning and "visual 0.300" in found.warning
    # Visual alone at 0.8 (ratio 0.81): worth waiting for, no warning.
    assert modality_imbalance.diagnose(
        {"audio": 0.88, "visual": 0.8}, {"audio": 0.5, "visual": 1.0},
        10).warning is None
    # The threshold decides: 0.256 < 0.3 warns, 0.256 > 0.2 does not.
    assert modality_imbalance.diagnose(
        {"audio": 0.88, "visual": 0.3}, {"audio": 0.5, "visual": 1.0}, 10,
        threshold=0.2).warning is None
    # The slowed modality is the one with the lowest coefficient, wherever
    # it is in the dict; "within threshold" is strict.
    found = modality_imbalance.diagnose(
        {"audio": 0.3, "visual": 0.88}, {"audio": 1.0, "visual": 0.5}, 10)
    assert found.slowed == "visual" and "slowing 'visual'" in found.warning
    assert found.coefficient == {"audio": 1.0, "visual": 0.5}
    at_threshold = modality_imbalance.diagnose(
        {"a": 0.55, "b": 1.0}, {"a": 1.0, "b": 0.5}, 10, threshold=0.5)
    assert at_threshold.warning is None  # 0.5 is not below 0.5 * 1.0
    # Nothing slowed (GE noise only): nothing to judge.
    nothing = modality_imbalance.diagnose(
        {"audio": 0.88, "visual": 0.3}, {"audio": 1.0, "visual": 1.0}, 10)
    assert nothing.slowed is None and nothing.warning is None


def _balanced_data(n=192, seed=0):
    """Both modalities carry the class."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % NUM_CLASSES).astype("int32")
    rng.shuffle(y)
    x = {"a": (rng.normal(size=(NUM_CLASSES, 6))[y] * 2.0
               + 0.3 * rng.normal(size=(n, 6))).astype("float32"),
         "v": (rng.normal(size=(NUM_CLASSES, 4))[y] * 2.0
               + 0.3 * rng.normal(size=(n, 4))).astype("float32")}
    return x, y


def _diagnosed(x, y):
    model = toy_model(seed=0, modulation=kg.OGMGE(alpha=0.5, seed=0))
    model.compile(keras.optimizers.SGD(0.1), sparse_ce(),
                  loss_weights=[0.0, 0.0, 1.0])
    rows = np.arange(len(y))
    holdout = ({m: v[rows % 4 == 0] for m, v in x.items()}, y[rows % 4 == 0])
    train = ({m: v[rows % 4 != 0] for m, v in x.items()}, y[rows % 4 != 0])
    monitor = kg.ModalityImbalanceMonitor(holdout, check_epoch=2, epochs=4,
                                          fraction=1.0, batch_size=16)
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


def test_monitor_warns_when_the_slowed_modality_is_the_only_informative_one():
    x, y = toy_data(n=192)  # `v` is almost pure noise
    diagnosis, messages, logs = _diagnosed(x, y)
    assert diagnosis.slowed == "a" and diagnosis.epoch == 2
    assert diagnosis.alone_accuracy["a"] > 0.9
    assert diagnosis.alone_accuracy["v"] < 0.6
    assert len(messages) == 1 and "slowing 'a'" in messages[0]
    # Logged from the checked epoch on.
    assert logs["ogm/premise_fails"] == [1.0, 1.0]
    assert logs["ogm/alone_accuracy/v"][0] == diagnosis.alone_accuracy["v"]
    assert len(diagnosis.ratio_trend["a"]) >= 2


def test_monitor_is_silent_when_the_other_modality_is_informative():
    diagnosis, messages, logs = _diagnosed(*_balanced_data())
    assert diagnosis.slowed is not None
    assert min(diagnosis.alone_accuracy.values()) > 0.8
    assert diagnosis.warning is None and not messages
    assert logs["ogm/premise_fails"] == [0.0, 0.0]


def test_monitor_validates_its_arguments_and_needs_ogm():
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


def test_scoring_heads_that_never_train_is_refused():
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
        monkeypatch):
    from keras_gblend.gblend import blend_estimator

    asked = []
    real = blend_estimator.BlendEstimator.unimodal_holdout_values

    def spy(self, epochs, seed=None):
        asked.append((epochs, self.batch_size, self.estimation_fraction))
        return real(self, epochs, seed)

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


def test_diagnosis_threshold_is_strict_and_figures_are_listed():
    # Two classes: informativeness 0.75 -> 0.5 and 1.0 -> 1.0 exactly, so
    # 0.5 is at the threshold (0.5 x 1.0), which is not below it.
    found = modality_imbalance.diagnose({"a": 0.75, "b": 1.0},
                                        {"a": 1.0, "b": 0.5}, 2)
    assert found.informativeness == {"a": 0.5, "b": 1.0}
    assert found.warning is None and found.epoch == 0
    warned = modality_imbalance.diagnose(
        {"audio": 0.88, "visual": 0.3}, {"audio": 0.5, "visual": 1.0}, 10)
    assert "(holdout accuracy alone: audio 0.880, visual 0.300; chance " \
        "0.100)" in warned.warning


def test_monitor_defaults_and_argument_names():
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


def test_monitor_hands_its_settings_to_the_estimator(monkeypatch):
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


def test_monitor_names_itself_when_the_fit_data_cannot_be_cloned():
    x, y = toy_data(n=64)
    model = toy_model(seed=0, modulation=kg.OGMGE(alpha=0.5, seed=0))
    model.compile(keras.optimizers.SGD(0.1), sparse_ce())

    def batches():
        while True:
            yield x, y

    with pytest.raises(ValueError, match="^ModalityImbalanceMonitor "):
        model.fit(batches(), steps_per_epoch=2, epochs=1, verbose=0,
                  callbacks=[kg.ModalityImbalanceMonitor((x, y))])
