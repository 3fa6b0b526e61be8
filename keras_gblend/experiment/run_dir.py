"""A run's folder (`--model_dir`): what it holds, when a run may resume in
it, and what a resumed run reads back.

`config.json` (the settings), `data_fingerprint.json` (what it was trained
on), `checkpoints/` (`ResumableCheckpoint`, with `progress.json`), `logs/`
(TensorBoard), `metrics.json` and `model.keras`.
"""

import hashlib
import json
import math
import os
from typing import Dict, List

import numpy as np
import tensorflow as tf

from keras_gblend.callbacks.resumable_checkpoint import (
    ResumableCheckpoint,
    is_chief,
)
from keras_gblend.evaluation import training_history
from keras_gblend.experiment.config import (
    ExperimentConfig,
    config_from_json,
    config_json,
    resumable_changes,
)

DATA_FINGERPRINT = "data_fingerprint.json"
RESUMABLE_CHANGES = resumable_changes()


def worker_dir(model_dir, strategy: tf.distribute.Strategy):
    """`model_dir` on the chief; a private folder inside it on the other
    workers of a multi-worker cluster (every worker writes, one keeps)."""
    if model_dir and not is_chief(strategy):
        task = strategy.cluster_resolver
        return os.path.join(model_dir, f"_{task.task_type}_{task.task_id}")
    return model_dir


def checkpoint_dir(model_dir: str) -> str:
    """Where a run keeps its checkpoints."""
    return os.path.join(model_dir, "checkpoints")


def write_config(model_dir: str, config: ExperimentConfig) -> None:
    """Writes `config.json` (the settings a resume must match)."""
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(config_json(config), f, indent=2)


def check_resumable(config: ExperimentConfig) -> None:
    """Raises `ValueError` if `config.model_dir` holds checkpoints of a run
    whose settings differ from `config` (other than `RESUMABLE_CHANGES`;
    not `epochs` under a learning rate schedule): resuming would silently
    mix two experiments."""
    if not config.model_dir:
        return
    saved_path = os.path.join(config.model_dir, "config.json")
    checkpoints = checkpoint_dir(config.model_dir)
    if not os.path.isfile(saved_path) or not ResumableCheckpoint.saved_epoch(
        checkpoints
    ):
        return
    with open(saved_path) as f:
        saved = json.load(f)
    current = config_json(config.resolved())
    resumable = set(RESUMABLE_CHANGES)
    if config.lr_schedule != "constant":
        # The schedule's length is `epochs`: more epochs would change the
        # learning rate of the epochs already trained.
        resumable.discard("epochs")
    # Settings added since a run was saved have their default there; the
    # preset settings are compared by the values they resolve to.
    saved = config_json(config_from_json(
        {**config_json(ExperimentConfig()), **saved}).resolved())
    differences = [
        f"{name}={saved[name]!r} (saved) vs {value!r} (now)"
        for name, value in current.items()
        if name not in resumable and saved[name] != value
    ]
    if differences:
        raise ValueError(
            f"model_dir: {config.model_dir} holds a checkpointed run with "
            f"other settings: {'; '.join(differences)}. Rerun with the saved "
            "settings (its config.json) to resume, or use a new model_dir."
        )


def _sha256(*parts) -> str:
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, str):
            part = part.encode()
        elif not isinstance(part, bytes):
            part = np.ascontiguousarray(part).tobytes()
        digest.update(part)
    return digest.hexdigest()


def _arrays_fingerprint(data) -> str:
    return _sha256(*(np.asarray(a) for a in tf.nest.flatten(data)))


def data_fingerprint(config: ExperimentConfig, train, holdout, test) -> Dict:
    """What a run was trained and evaluated on, as hashes: for AV-digits
    the contents of `train.csv` and `test.csv` (labels) and every file's
    name and size; for the built-in sets the split arrays themselves."""
    if config.dataset == "av_digits":
        listing = []
        for root, _, files in os.walk(config.data_dir):
            for name in sorted(files):
                path = os.path.join(root, name)
                if name in ("train.csv", "test.csv") and (
                        root == config.data_dir):
                    continue  # hashed by content below
                listing.append(
                    f"{os.path.relpath(path, config.data_dir)}:"
                    f"{os.path.getsize(path)}")
        fingerprint = {"files": _sha256("\n".join(sorted(listing)))}
        for name in ("train.csv", "test.csv"):
            with open(os.path.join(config.data_dir, name), "rb") as f:
                fingerprint[name] = _sha256(f.read())
        return fingerprint
    return {"train": _arrays_fingerprint(train),
            "holdout": _arrays_fingerprint(holdout),
            "test": _arrays_fingerprint(test)}


def check_data_unchanged(model_dir: str, fingerprint: Dict,
                         config: ExperimentConfig) -> None:
    """Raises `ValueError` if `model_dir` was trained on other data than
    `fingerprint` describes, naming what changed; records the fingerprint
    of a new run."""
    path = os.path.join(model_dir, DATA_FINGERPRINT)
    if not os.path.isfile(path):
        with open(path, "w") as f:
            json.dump(fingerprint, f, indent=2)
        return
    with open(path) as f:
        saved = json.load(f)
    changed = [name for name in sorted(set(saved) | set(fingerprint))
               if saved.get(name) != fingerprint.get(name)]
    if changed:
        source = (f"data_dir: {config.data_dir}" if config.dataset == "av_digits"
                  else f"dataset: {config.dataset}")
        raise ValueError(
            f"{source} is not the data the run in {model_dir} was trained on "
            f"({', '.join(changed)} changed). Point it at the original data, "
            "or use a new model_dir to train on this data.")


def whole_history(model_dir: str, history: Dict[str, List[float]],
                   initial_epoch: int) -> Dict[str, List[float]]:
    """A resumed run's history over all its epochs: the epochs before
    `initial_epoch` read back from its TensorBoard logs (NaN where a value
    was not logged), then this session's."""
    try:
        earlier = training_history.load_epoch_logs(model_dir)
    except ValueError:
        earlier = {}
    whole = {}
    for key, values in history.items():
        by_epoch = dict(zip(*earlier.get(key, ([], []))))
        whole[key] = [by_epoch.get(e, math.nan) for e in range(initial_epoch)]
        whole[key] += list(values)
    return whole


def stopped_early(model_dir: str) -> bool:
    """Whether the run in `model_dir` finished by early stopping (so a
    rerun evaluates it instead of training on)."""
    path = os.path.join(model_dir, "metrics.json")
    if not os.path.isfile(path):
        return False
    with open(path) as f:
        return bool(json.load(f).get("stopped_early"))
