import pytest

from keras_gblend.ogm import modality_imbalance


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
