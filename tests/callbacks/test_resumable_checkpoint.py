import os
import warnings
from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_gblend as kg
from keras_gblend.callbacks import resumable_checkpoint as checkpointing
from keras_gblend.callbacks.resumable_checkpoint import is_chief


def test_resumable_checkpoint_resumes_plain_fit_at_the_next_epoch(
        tmp_path, toy_data, compiled_toy_model):
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


def _three_epochs(toy_data, compiled_toy_model, tmp_path):
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
        tmp_path, part, toy_data, compiled_toy_model):
    # Keeps ckpt-2 (epoch 2) and ckpt-3.
    x, y = _three_epochs(toy_data, compiled_toy_model, tmp_path)
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


class _Resolver:
    def __init__(self, task_type, task_id, jobs):
        self.task_type, self.task_id, self._jobs = task_type, task_id, jobs

    def cluster_spec(self):
        return tf.train.ClusterSpec({job: ["localhost:1"] for job in self._jobs})


def _strategy(*args):
    return SimpleNamespace(cluster_resolver=_Resolver(*args))


def test_is_chief_reads_the_cluster_role():
    assert is_chief(object())  # no cluster at all
    assert is_chief(tf.distribute.get_strategy())
    assert is_chief(_strategy("chief", 0, ["chief", "worker"]))
    assert is_chief(_strategy("worker", 0, ["worker"]))  # worker 0 leads
    assert not is_chief(_strategy("worker", 1, ["worker"]))
    assert not is_chief(_strategy("worker", 0, ["chief", "worker"]))
    assert not is_chief(_strategy("evaluator", 0, ["worker", "evaluator"]))


def test_other_workers_save_in_a_private_folder(tmp_path):
    callback = kg.ResumableCheckpoint(str(tmp_path))
    callback.set_model(SimpleNamespace(
        distribute_strategy=_strategy("worker", 1, ["worker"])))
    private = str(tmp_path / "_worker_1")
    assert callback._worker_directory() == private
    assert os.path.isdir(private)
    callback.set_model(SimpleNamespace(
        distribute_strategy=_strategy("worker", 0, ["worker"])))
    assert callback._worker_directory() == str(tmp_path)


def test_max_to_keep_keeps_that_many_checkpoints(
        tmp_path, toy_data, compiled_toy_model):
    x, y = toy_data(n=32)
    for keep, folder in ((None, "default"), (1, "one")):
        directory = str(tmp_path / folder)
        kwargs = {} if keep is None else {"max_to_keep": keep}
        compiled_toy_model().fit(
            x, y, epochs=3, verbose=0,
            callbacks=[kg.ResumableCheckpoint(directory, **kwargs)])
        kept = sorted(p[:-len(".index")] for p in os.listdir(directory)
                      if p.endswith(".index"))
        assert kept == (["ckpt-2", "ckpt-3"] if keep is None else ["ckpt-3"])
    for bad in (0, -1):
        with pytest.raises(ValueError, match="max_to_keep"):
            kg.ResumableCheckpoint(str(tmp_path), max_to_keep=bad)


def test_the_newest_checkpoint_is_found_by_number_and_without_a_state_file(
        tmp_path, toy_data, compiled_toy_model):
    x, y = toy_data(n=32)
    compiled_toy_model().fit(x, y, epochs=10, verbose=0,
                             callbacks=[kg.ResumableCheckpoint(str(tmp_path))])
    # ckpt-10 sorts before ckpt-9 as text; the newest is ckpt-10.
    assert kg.ResumableCheckpoint.saved_epoch(str(tmp_path)) == 10
    # A state file TensorFlow cannot parse (it reads as no state), and one
    # it refuses (no model_checkpoint_path: it raises).
    for state in ("not a checkpoint state {",
                  'all_model_checkpoint_paths: "ckpt-9"\n'):
        with open(tmp_path / "checkpoint", "w") as f:
            f.write(state)
        assert kg.ResumableCheckpoint.saved_epoch(str(tmp_path)) == 10
    os.remove(tmp_path / "checkpoint")
    assert checkpointing.latest_restorable(str(tmp_path)) == str(
        tmp_path / "ckpt-10")
    assert kg.ResumableCheckpoint.saved_epoch(str(tmp_path)) == 10


def test_a_checkpoint_without_a_number_sorts_oldest(tmp_path):
    # A state file may list a prefix that is not ckpt-N (written by other
    # code): it is tried last, after ckpt-0 and ckpt-1.
    for name in ("ckpt-0", "ckpt-1"):
        (tmp_path / f"{name}.index").write_text("")
    with open(tmp_path / "checkpoint", "w") as f:
        f.write(f'model_checkpoint_path: "{tmp_path}/model"\n'
                f'all_model_checkpoint_paths: "{tmp_path}/model"\n')
    assert checkpointing._checkpoint_paths(str(tmp_path)) == [
        str(tmp_path / "model"), str(tmp_path / "ckpt-0"),
        str(tmp_path / "ckpt-1")]


def test_a_latest_checkpoint_whose_index_is_gone_is_named(
        tmp_path, toy_data, compiled_toy_model):
    _three_epochs(toy_data, compiled_toy_model, tmp_path)
    os.remove(tmp_path / "ckpt-3.index")
    with pytest.warns(UserWarning, match=r"ckpt-3 is unreadable"):
        assert kg.ResumableCheckpoint.saved_epoch(str(tmp_path)) == 2


def test_unreadable_names_the_error_and_its_first_line(
        tmp_path, monkeypatch, toy_data, compiled_toy_model):
    _three_epochs(toy_data, compiled_toy_model, tmp_path)
    _truncate(tmp_path / "ckpt-3.index")
    problem = checkpointing._unreadable(str(tmp_path / "ckpt-3"))
    try:
        tf.train.load_checkpoint(str(tmp_path / "ckpt-3"))
    except Exception as error:  # noqa: BLE001
        first_line = str(error).strip().splitlines()[0]
        assert problem == f"{type(error).__name__}: {first_line}"
    assert problem is not None and len(problem.split(": ", 1)[1]) > 0
    assert checkpointing._unreadable(str(tmp_path / "ckpt-2")) is None

    def silent_failure(path):
        raise OSError()

    monkeypatch.setattr(tf.train, "load_checkpoint", silent_failure)
    assert checkpointing._unreadable(str(tmp_path / "ckpt-2")) == "OSError: "


def test_restore_builds_the_optimizer_and_reports_zero_when_nothing_is_saved(
        tmp_path, toy_data, compiled_toy_model):
    x, y = toy_data(n=32)
    empty = compiled_toy_model()
    assert kg.ResumableCheckpoint.restore(empty, str(tmp_path / "none")) == 0
    assert kg.ResumableCheckpoint.saved_epoch(str(tmp_path / "none")) == 0
    trained = compiled_toy_model(keras.optimizers.SGD(0.1, momentum=0.9))
    trained.fit(x, y, epochs=2, verbose=0,
                callbacks=[kg.ResumableCheckpoint(str(tmp_path))])
    fresh = compiled_toy_model(keras.optimizers.SGD(0.1, momentum=0.9),
                               seed=7)
    assert kg.ResumableCheckpoint.restore(fresh, str(tmp_path)) == 2
    # The momentum slots are restored at once, not deferred to a first step.
    assert len(fresh.optimizer.variables) == len(trained.optimizer.variables)
    for a, b in zip(fresh.optimizer.variables, trained.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # A model with no optimizer restores its weights too.
    bare = compiled_toy_model(seed=8)
    bare.optimizer = None
    assert kg.ResumableCheckpoint.restore(bare, str(tmp_path)) == 2
    for a, b in zip(bare.get_weights(), trained.get_weights()):
        np.testing.assert_array_equal(a, b)
