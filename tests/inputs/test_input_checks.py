"""Bad input gets a clear error naming the problem, before any training."""

import numpy as np
import pytest

import keras_gblend as kg
from keras_gblend.data import arrays_dataset


def _with_nan(x, modality="a", row=3):
    x = {k: v.copy() for k, v in x.items()}
    x[modality][row, 1] = np.nan
    return x


def _untouched(model, before):
    return all(np.array_equal(a, b, equal_nan=True)
               for a, b in zip(before, model.get_weights()))


def test_a_single_nan_feature_is_caught_everywhere_naming_the_modality(
        toy_data, compiled_toy_model):
    x, y = toy_data(n=96)
    train, holdout = kg.split_holdout((x, y), fraction=0.25, seed=0)
    bad_x = _with_nan(x)
    message = r"modality 'a' has 1 non-finite value\(s\) in 1 row\(s\) \(first: row 3, nan\)"
    with pytest.raises(ValueError, match=message):
        kg.split_holdout((bad_x, y), fraction=0.25)
    bad_holdout = (_with_nan(holdout[0], row=0), holdout[1])
    with pytest.raises(ValueError, match="holdout.*modality 'a'"):
        kg.GBlendCallback(bad_holdout)
    with pytest.raises(ValueError, match="holdout.*modality 'a'"):
        kg.OGRMonitor(bad_holdout, train)
    with pytest.raises(ValueError, match="modality 'a'"):
        arrays_dataset(bad_x, y)
    model = compiled_toy_model()
    before = model.get_weights()
    with pytest.raises(ValueError, match="fit data: modality 'a'"):
        model.fit(bad_x, y, epochs=1, verbose=0,
                  callbacks=[kg.GBlendCallback(holdout, verbose=0)])
    with pytest.raises(ValueError, match="modality 'v'.*inf"):
        inf_x = {k: v.copy() for k, v in x.items()}
        inf_x["v"][5, 0] = np.inf
        model.fit(inf_x, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="training data: modality 'a'"):
        kg.estimate_blend_weights(model, (bad_x, y), holdout, epochs=1)
    assert _untouched(model, before)
    assert int(model.optimizer.iterations) == 0


@pytest.mark.parametrize("bad_label, shown", [(12, "12 \\(x1\\)"), (-1, "-1 \\(x1\\)")])
def test_labels_outside_the_classes_name_the_value_and_count(
        bad_label, shown, toy_data, compiled_toy_model):
    x, y = toy_data(n=96)
    y = y.copy()
    y[7] = bad_label
    model = compiled_toy_model()
    with pytest.raises(ValueError, match=f"1 label\\(s\\) are not in \\[0, 3\\): {shown}"):
        model.fit(x, y, epochs=1, verbose=0)
    train, holdout = kg.split_holdout(toy_data(n=96), fraction=0.25)
    bad_holdout = (holdout[0], np.where(np.arange(len(holdout[1])) < 2, 5,
                                        holdout[1]))
    callback = kg.GBlendCallback(bad_holdout, verbose=0)
    with pytest.raises(ValueError, match=r"holdout: 2 label\(s\).*5 \(x2\)"):
        model.fit(*train, epochs=1, verbose=0, callbacks=[callback])
    if bad_label < 0:
        with pytest.raises(ValueError, match="not non-negative"):
            kg.split_holdout((x, y), fraction=0.25)
    assert int(model.optimizer.iterations) == 0


def test_modalities_with_different_row_counts_name_each_count(
        toy_data, compiled_toy_model):
    x, y = toy_data(n=120)
    x = {"a": x["a"], "v": x["v"][:100]}
    with pytest.raises(ValueError, match="a 120, v 100, labels 120"):
        kg.split_holdout((x, y), fraction=0.25)
    with pytest.raises(ValueError, match="a 120, v 100, labels 120"):
        compiled_toy_model().fit(x, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="labels 90"):
        compiled_toy_model().fit(toy_data(n=96)[0], y[:90], epochs=1, verbose=0)


def test_non_integer_labels_are_refused(toy_data, compiled_toy_model):
    x, y = toy_data(n=96)
    with pytest.raises(ValueError, match="integer class ids.*0.5"):
        compiled_toy_model().fit(x, y + 0.5, epochs=1, verbose=0)
