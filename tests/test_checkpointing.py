import os
import warnings

import numpy as np
import pytest

import keras_gblend as kg
from conftest import compiled_toy_model, toy_data


def test_resumable_checkpoint_resumes_plain_fit_at_the_next_epoch(tmp_path):
    x, y = toy_data(n=64)
    model = compiled_toy_model()
    model.fit(x, y, epochs=2, verbose=0,
              callbacks=[kg.ResumableCheckpoint(str(tmp_path))])
    weights = model.get_weights()
    again = compiled_toy_model(seed=3)  # different initial weights
    history = again.fit(x, y, epochs=4, verbose=0,
                        callbacks=[kg.ResumableCheckpoint(str(tmp_path))])
    assert history.epoch == [2, 3]
    # It restored the optimizer's 2 epochs x 2 steps and added 2 x 2 more.
    assert int(again.optimizer.iterations) == 4 * 2
    assert kg.ResumableCheckpoint.saved_epoch(str(tmp_path)) == 4
    restored = compiled_toy_model(seed=5)
    kg.ResumableCheckpoint.restore(restored, str(tmp_path))
    for a, b in zip(restored.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b)
               for a, b in zip(weights, again.get_weights()))


def _three_epochs(tmp_path):
    x, y = toy_data(n=64)
    model = compiled_toy_model()
    model.fit(x, y, epochs=3, verbose=0,
              callbacks=[kg.ResumableCheckpoint(str(tmp_path))])
    return x, y


def _truncate(path):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 2)


@pytest.mark.parametrize("part", ["data", "index"])
def test_a_corrupt_latest_checkpoint_falls_back_to_the_previous_one(
        tmp_path, part):
    x, y = _three_epochs(tmp_path)  # keeps ckpt-2 (epoch 2) and ckpt-3
    expected = compiled_toy_model(seed=4)
    checkpoint, _ = kg.ResumableCheckpoint._checkpoint(expected)
    checkpoint.restore(str(tmp_path / "ckpt-2")).assert_existing_objects_matched()
    bad = [p for p in os.listdir(tmp_path)
           if p.startswith("ckpt-3.") and (part in p)][0]
    _truncate(tmp_path / bad)
    with pytest.warns(UserWarning, match=r"ckpt-3 is unreadable"):
        assert kg.ResumableCheckpoint.saved_epoch(str(tmp_path)) == 2
    resumed = compiled_toy_model(seed=5)
    with pytest.warns(UserWarning, match=r"ckpt-3 is unreadable"):
        assert kg.ResumableCheckpoint.restore(resumed, str(tmp_path)) == 2
    for a, b in zip(resumed.get_weights(), expected.get_weights()):
        np.testing.assert_array_equal(a, b)
    # fit resumes after epoch 2 and saves a good epoch 3 again.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        history = compiled_toy_model(seed=6).fit(
            x, y, epochs=4, verbose=0,
            callbacks=[kg.ResumableCheckpoint(str(tmp_path))])
    assert history.epoch == [2, 3]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the newest is readable again
        assert kg.ResumableCheckpoint.saved_epoch(str(tmp_path)) == 4
