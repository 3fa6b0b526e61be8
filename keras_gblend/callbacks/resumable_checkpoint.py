"""`ResumableCheckpoint`: preemption-safe training state for `fit`.

Saves, at the end of every epoch, one `tf.train.Checkpoint`
of the model — so its weights, optimizer state, G-Blend blend weights and
estimation state, OGM-GE epoch counter and every `SeedGenerator` (GE noise,
dropout) — plus the number of finished epochs. `tf.train.CheckpointManager`
writes the data files first and then atomically replaces the index that
names the latest checkpoint, so a process killed while saving leaves the
previous checkpoint intact: no half-written checkpoint is ever restored.

At the start of `fit` the latest checkpoint that reads in full, if any, is
restored (a truncated newer one, e.g. from a full disk or a copy cut short,
is skipped with a warning naming it) and
training continues at the epoch after it (like `keras.callbacks.
BackupAndRestore`, whose `_initial_epoch` hand-off it shares). A run killed
mid-epoch replays that epoch from its start; with seeded, epoch-keyed input
order (`input_data.epoch_keyed_dataset`) and
`tf.config.experimental.enable_op_determinism()` it ends with the same
weights as an uninterrupted run.
"""

import glob
import json
import os
import re
import shutil
import time
import warnings
from typing import Any, Dict, List, Optional

import keras
import tensorflow as tf


# Cumulative training seconds at the end of each checkpointed epoch.
PROGRESS_FILE = "progress.json"


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (e.g. a full disk); the previous
    checkpoint is intact."""


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process is the chief of `strategy`'s cluster (always true
    without a multi-worker cluster)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if task_type is None or task_type == "chief":
        return True
    return task_type == "worker" and resolver.task_id == 0 and (
        "chief" not in resolver.cluster_spec().as_dict()
    )


def _unreadable(path: str) -> Optional[str]:
    """Why the checkpoint `path` cannot be read in full (None if it can):
    every tensor is read, so a truncated data file or index is found."""
    try:
        reader = tf.train.load_checkpoint(path)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception as error:  # noqa: BLE001 - any failure means unreadable
        lines = str(error).strip().splitlines()
        return f"{type(error).__name__}: {lines[0] if lines else ''}"
    return None


def _checkpoint_paths(directory: str) -> List[str]:
    """Checkpoint prefixes under `directory`, oldest first: the ones the
    state file lists and any other `ckpt-N.index` on disk."""
    paths = set()
    try:
        state = tf.train.get_checkpoint_state(directory)
    except Exception:  # noqa: BLE001 - a corrupt state file lists nothing
        state = None
    if state is not None:
        paths.update(state.all_model_checkpoint_paths)
    for index in glob.glob(os.path.join(directory, "ckpt-*.index")):
        paths.add(index[: -len(".index")])

    def number(path):
        found = re.search(r"ckpt-(\d+)$", path)
        return int(found.group(1)) if found else -1

    return sorted(paths, key=number)


def set_aside_unreadable(directory: str) -> Optional[str]:
    """Moves every checkpoint file under `directory` into a new folder
    `unreadable-<time>` beside them, when checkpoints exist but none reads
    in full, and warns naming it.

    Returns:
        The folder they were moved to, or None (nothing to set aside).
    """
    if not _checkpoint_paths(directory) or latest_restorable(directory):
        return None
    aside = os.path.join(
        directory, time.strftime("unreadable-%Y%m%d-%H%M%S"))
    os.makedirs(aside, exist_ok=True)
    for name in os.listdir(directory):
        if name.startswith("ckpt-") or name in ("checkpoint", PROGRESS_FILE):
            shutil.move(os.path.join(directory, name), aside)
    warnings.warn(
        f"No checkpoint in {directory} reads in full: training starts from "
        f"scratch. The unreadable files were moved to {aside}.")
    return aside


def latest_restorable(directory: str) -> Optional[str]:
    """The newest checkpoint under `directory` that reads in full; each
    newer, unreadable one is skipped with a warning naming it."""
    for path in reversed(_checkpoint_paths(directory)):
        problem = _unreadable(path)
        if problem is None:
            return path
        warnings.warn(
            f"Checkpoint {path} is unreadable ({problem}); trying the one "
            "before it."
        )
    return None


@keras.saving.register_keras_serializable(package="keras_gblend")
class ResumableCheckpoint(keras.callbacks.Callback):
    """Checkpoints training state and resumes from it.

    Checkpoints are taken at epoch ends (a preempted epoch is replayed).

    Args:
        directory: where checkpoints go (created).
        max_to_keep: checkpoints kept on disk.

    Example:

    ```python
    model.fit(x, y, epochs=50, callbacks=[
        kg.GBlendCallback(holdout, mode="online"),
        kg.ResumableCheckpoint("run/checkpoints")])
    # killed? run the same command again: it continues where it stopped.
    ```
    """

    def __init__(self, directory: str, max_to_keep: int = 2):
        super().__init__()
        if int(max_to_keep) < 1:
            raise ValueError(f"`max_to_keep` must be >= 1, got {max_to_keep}.")
        self.directory = directory
        self.max_to_keep = int(max_to_keep)
        self._manager = None

    def get_config(self) -> Dict[str, Any]:
        return {
            "directory": self.directory,
            "max_to_keep": self.max_to_keep,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    @staticmethod
    def _checkpoint(model):
        """The checkpoint object: the model (with its optimizer) and the
        number of finished epochs."""
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        return tf.train.Checkpoint(model=model, epoch=epoch), epoch

    @staticmethod
    def restore(model, directory: str) -> int:
        """Restores the latest checkpoint under `directory` into `model`.

        Returns:
            The number of finished epochs it holds (0: nothing restored).
        """
        checkpoint, epoch = ResumableCheckpoint._checkpoint(model)
        latest = latest_restorable(directory)
        if not latest:
            return 0
        checkpoint.restore(latest).assert_existing_objects_matched()
        return int(epoch.numpy())

    def _build(self):
        checkpoint, self._epoch = self._checkpoint(self.model)
        self._manager = tf.train.CheckpointManager(
            checkpoint, self._worker_directory(), max_to_keep=self.max_to_keep
        )

    def _worker_directory(self) -> str:
        """`directory` on the chief; a private folder on other workers of a
        MultiWorkerMirroredStrategy (every worker must save, one keeps)."""
        strategy = self.model.distribute_strategy
        directory = self.directory
        if not is_chief(strategy):
            task = strategy.cluster_resolver
            directory = os.path.join(directory, f"_{task.task_type}_{task.task_id}")
        os.makedirs(directory, exist_ok=True)
        return directory

    @staticmethod
    def saved_seconds(directory: str) -> float:
        """Seconds of training (as `fit` times it, over every session of a
        resumed run) up to the latest checkpoint under `directory` (0 if
        none or not recorded)."""
        epoch = ResumableCheckpoint.saved_epoch(directory)
        seconds = _read_progress(directory)
        return seconds.get(str(epoch), 0.0) if epoch else 0.0

    @staticmethod
    def saved_epoch(directory: str) -> int:
        """Epochs finished in the latest checkpoint under `directory` (0 if
        none): the `initial_epoch` a resumed `fit` starts from. Read it to
        build epoch-keyed input before calling `fit`."""
        latest = latest_restorable(directory)
        if not latest:
            return 0
        return int(tf.train.load_variable(latest, "epoch/.ATTRIBUTES/VARIABLE_VALUE"))

    def on_train_begin(self, logs=None):
        if not self.model.built:
            raise ValueError(
                "ResumableCheckpoint needs a built model; call it on a batch "
                "or build it before `fit`."
            )
        self._build()
        directory = self._worker_directory()
        set_aside_unreadable(directory)
        latest = latest_restorable(directory)
        self._seconds_before = 0.0
        if latest:
            self._manager.checkpoint.restore(
                latest
            ).assert_existing_objects_matched()
            # Keras's fit reads this after `on_train_begin`, as for
            # `keras.callbacks.BackupAndRestore`.
            self.model._initial_epoch = int(self._epoch.numpy())
            self._seconds_before = _read_progress(directory).get(
                str(int(self._epoch.numpy())), 0.0)
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        directory = self._worker_directory()
        self._epoch.assign(epoch + 1)
        progress = _read_progress(directory)
        progress[str(epoch + 1)] = (
            self._seconds_before + time.perf_counter() - self._started)
        try:
            # Written first: a kill before the save leaves an entry no
            # checkpoint uses.
            with open(os.path.join(directory, PROGRESS_FILE), "w") as f:
                json.dump(progress, f)
            self._manager.save()
        except (OSError, tf.errors.OpError) as error:
            kept = f"after epoch {epoch}" if epoch else "none yet"
            raise CheckpointWriteError(
                f"Could not write the checkpoint after epoch {epoch + 1} to "
                f"{directory} ({_reason(error)}); the last checkpoint "
                f"({kept}) is intact: free space and rerun to resume."
            ) from None


def _read_progress(directory: str) -> Dict[str, float]:
    """`{finished epochs: cumulative training seconds}` (empty if none)."""
    try:
        with open(os.path.join(directory, PROGRESS_FILE)) as f:
            return {str(k): float(v) for k, v in json.load(f).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def _reason(error: Exception) -> str:
    """The short reason of an OS or TensorFlow write error ("No space left
    on device")."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = str(getattr(error, "message", None) or error)
    found = re.search(r";\s*([^;]+?)\s*\[Op:", text)
    if found:
        return found.group(1)
    lines = text.strip().splitlines()
    return lines[-1] if lines else type(error).__name__
