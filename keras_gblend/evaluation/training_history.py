"""Per-epoch training logs, read back from a `History`, a dict or a run's
folder (its TensorBoard event files)."""

import glob
import json
import os
from typing import Dict, List, Tuple, Union

import keras
import numpy as np
import tensorflow as tf

# {log key: (epochs, values)}, epochs 0-based as in `History.epoch`.
EpochLogs = Dict[str, Tuple[List[int], List[float]]]

# Keras's TensorBoard callback writes epoch logs as `epoch_<key>` into
# `train/` and, without the `val_` prefix, into `validation/`.
_EVENT_DIRS = (("train", ""), ("validation", "val_"))
_EPOCH_TAG = "epoch_"


def read_event_scalars(log_dir: str) -> Dict[str, Dict[int, float]]:
    """Every scalar in the TensorBoard event files directly in `log_dir`.

    Where a step was written more than once (a run resumed into the same
    folder repeats the epochs after its last checkpoint), the value written
    last wins.

    Args:
        log_dir: a folder holding `*.tfevents*` files.

    Returns:
        `{tag: {step: value}}`.
    """
    written: Dict[str, Dict[int, Tuple[float, float]]] = {}
    for path in glob.glob(os.path.join(log_dir, "*tfevents*")):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.HasField("tensor"):
                    array = tf.make_ndarray(value.tensor)
                    if array.size != 1 or not np.issubdtype(
                        array.dtype, np.number
                    ):
                        continue  # not a scalar (histogram, text, ...)
                    number = float(array.reshape(()))
                elif value.HasField("simple_value"):
                    number = float(value.simple_value)
                else:
                    continue
                by_step = written.setdefault(value.tag, {})
                step = int(event.step)
                if step not in by_step or event.wall_time >= by_step[step][0]:
                    by_step[step] = (event.wall_time, number)
    return {
        tag: {step: number for step, (_, number) in by_step.items()}
        for tag, by_step in written.items()
    }


def _from_model_dir(path: str) -> EpochLogs:
    log_root = os.path.join(path, "logs")
    if not os.path.isdir(log_root):
        log_root = path
    logs: EpochLogs = {}
    for sub_dir, prefix in _EVENT_DIRS:
        scalars = read_event_scalars(os.path.join(log_root, sub_dir))
        for tag, by_step in scalars.items():
            if not tag.startswith(_EPOCH_TAG):
                continue
            steps = sorted(by_step)
            logs[prefix + tag[len(_EPOCH_TAG):]] = (
                steps, [by_step[s] for s in steps])
    if logs:
        return logs
    metrics_path = os.path.join(path, "metrics.json")
    if os.path.isfile(metrics_path):
        with open(metrics_path) as f:
            metrics = json.load(f)
        history = metrics.get("history") or {}
        if history:
            # Written before `history_first_epoch`, a resumed run's
            # history started at the epoch it resumed from.
            first = int(metrics.get("history_first_epoch",
                                    metrics.get("initial_epoch", 0)))
            length = max(len(values) for values in history.values())
            return _from_dict(history, range(first, first + length))
    raise ValueError(
        f"{path!r} holds no epoch logs: expected TensorBoard event files "
        "in logs/train (keras.callbacks.TensorBoard) or a metrics.json "
        "with a history (scripts/train.py --model_dir)."
    )


def _from_dict(history: Dict[str, List[float]], epochs=None) -> EpochLogs:
    logs: EpochLogs = {}
    for key, values in history.items():
        values = [float(v) for v in np.ravel(values)]
        steps = list(epochs) if epochs is not None else list(range(len(values)))
        if len(steps) != len(values):
            raise ValueError(
                f"History key {key!r} has {len(values)} values for "
                f"{len(steps)} epochs."
            )
        logs[key] = (steps, values)
    return logs


def load_epoch_logs(
    source: Union[str, os.PathLike, dict, keras.callbacks.History],
) -> EpochLogs:
    """Per-epoch logs from any of the places a run leaves them.

    Args:
        source: a `keras.callbacks.History` (as `fit` returns; its epochs
            count from `initial_epoch`), a `{key: [value per epoch]}` dict,
            or a folder: a `--model_dir` of `scripts/train.py` or any
            folder with Keras TensorBoard logs (`logs/train`,
            `logs/validation`, or `train/`, `validation/` directly), else
            its `metrics.json`.

    Returns:
        `{key: (epochs, values)}` with Keras's log keys (`loss`,
        `val_joint_loss`, `blend_weight/joint`, ...) and 0-based epochs.

    Example:

    ```python
    logs = kg.training_history.load_epoch_logs("runs/latest")
    epochs, weights = logs["blend_weight/joint"]
    ```
    """
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isdir(path):
            raise ValueError(f"{path!r} is not a folder.")
        return _from_model_dir(path)
    if isinstance(source, dict):
        return _from_dict(source)
    history = getattr(source, "history", None)
    if isinstance(history, dict):
        return _from_dict(history, getattr(source, "epoch", None))
    raise TypeError(
        "Expected a keras.callbacks.History, a dict of per-epoch lists or "
        f"a run folder, got {type(source).__name__}."
    )
