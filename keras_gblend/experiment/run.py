"""One training run, end to end: the engine behind `scripts/train.py` and the
benchmarks.

`run_experiment` reads as the steps of a run: prepare the process, load the
data and build the model, find where the run folder leaves off, assemble
the method's callbacks, train, and score on the test split once.
"""

import json
import os
import time
from typing import Dict, List, Optional

import keras
import tensorflow as tf

from keras_gblend import datasets
from keras_gblend.callbacks.concise_progbar_logger import ConciseProgbarLogger
from keras_gblend.callbacks.pretrain_finetune import PretrainFinetune
from keras_gblend.callbacks.raise_on_non_finite_loss import RaiseOnNonFiniteLoss
from keras_gblend.callbacks.resumable_checkpoint import ResumableCheckpoint
from keras_gblend.evaluation import training_history
from keras_gblend.experiment import build, cli, methods, run_dir, scores
from keras_gblend.experiment.config import ExperimentConfig, config_from_json
from keras_gblend.gblend.gblend_callback import GBlendCallback
from keras_gblend.gblend.measurements import train_subset_dataset
from keras_gblend.gblend.ogr_monitor import OGRMonitor
from keras_gblend.inputs.input_data import epoch_keyed_dataset
from keras_gblend.model.blended_model import BlendedModel
from keras_gblend.ogm.modality_imbalance_monitor import ModalityImbalanceMonitor


def run_experiment(config: ExperimentConfig) -> Dict:
    """Trains and evaluates one configuration.

    With `model_dir`, training state is checkpointed every epoch
    (`ResumableCheckpoint`) and the same call resumes a run that was
    killed; TensorBoard logs go to `<model_dir>/logs`, the result to
    `<model_dir>/metrics.json` and the model to `<model_dir>/model.keras`.
    A run that holds all its epochs is only evaluated: what it wrote is
    never rewritten. The data's fingerprint is kept in the run, and
    resuming on other data is refused. A non-finite loss stops training
    with `FloatingPointError`; the last good checkpoint stays the latest.
    Array data is fed in an epoch-keyed order, so with
    `deterministic=True` a resumed run ends with the same weights as an
    uninterrupted one.

    Returns:
        A dict with `test_accuracy` per head, the final `blend_weights`, the
        holdout-selected `answer`, the `history` of every epoch,
        `wall_time_s` of `fit` (over every session of a resumed run), and
        the config.

    Raises:
        ValueError: a bad setting, a `model_dir` of another run or data.
        FloatingPointError: training diverged.
        CheckpointWriteError: a checkpoint could not be written.
    """
    config = prepare_process(config)
    strategy = build.make_strategy(config.strategy)
    train, holdout, test, encoders, num_classes = build.load_data(config)
    with strategy.scope():
        model = build.build_model(config, encoders(), num_classes,
                                  build.steps_per_epoch(train,
                                                        config.batch_size))
    model_dir = run_dir.worker_dir(config.model_dir, strategy)
    initial_epoch = 0
    if model_dir:
        initial_epoch = _resume_point(config, model_dir, train, holdout, test)
        if initial_epoch is None:
            return _evaluate_finished_run(config, model, model_dir, holdout,
                                          test)
    callbacks, gblend, premise = method_callbacks(config, model, train,
                                                  holdout)
    callbacks += _run_callbacks(config, model, model_dir)
    history, wall_time, trained = _train(config, model, train, holdout,
                                         callbacks, initial_epoch, model_dir)
    if initial_epoch:
        history = run_dir.whole_history(model_dir, history, initial_epoch)
    return scores.write_results(
        config, model, model_dir, holdout, test, history, wall_time,
        initial_epoch, gblend.timings if gblend is not None else [],
        premise.diagnosis if premise is not None else None,
        stopped_early=(config.method == "early_stop"
                       and initial_epoch + trained < config.epochs),
        probe_accuracy=(scores.probe_scores(config, model, train, test)
                        if config.probe_encoders else None))


def prepare_process(config: ExperimentConfig) -> ExperimentConfig:
    """Validates `config` (and its run folder's saved settings), sets the
    process-wide options it asks for (op determinism, mixed precision, the
    seed) and returns it with its preset settings resolved."""
    config.validate()
    run_dir.check_resumable(config)
    config = config.resolved()
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    keras.utils.set_random_seed(config.seed)
    return config


def _resume_point(config, model_dir, train, holdout, test) -> Optional[int]:
    """The epoch a run in `model_dir` resumes from (0: a new run), after
    checking it was trained on this data; None when it has finished (then
    it is only evaluated). Writes `config.json` for a run that trains."""
    os.makedirs(model_dir, exist_ok=True)
    initial_epoch = ResumableCheckpoint.saved_epoch(
        run_dir.checkpoint_dir(model_dir))
    run_dir.check_data_unchanged(
        model_dir, run_dir.data_fingerprint(config, train, holdout, test),
        config)
    if initial_epoch >= config.epochs or run_dir.stopped_early(model_dir):
        return None
    run_dir.write_config(model_dir, config)
    return initial_epoch


def premise_check_epoch(config: ExperimentConfig) -> int:
    """After how many epochs OGM-GE's premise is checked: halfway through
    the run (a modality that learns slowly needs time before it can be
    judged), but inside the modulation window, whose coefficients the
    check reads (after the window every coefficient is 1).

    Example:

    >>> premise_check_epoch(ExperimentConfig(epochs=20, ogm_end_epoch=5))
    6
    """
    epoch = max(config.ogm_start_epoch + 1, config.epochs // 2)
    if config.ogm_end_epoch is not None:
        epoch = min(epoch, config.ogm_end_epoch + 1)
    return epoch


def method_callbacks(config: ExperimentConfig, model: BlendedModel, train,
                     holdout):
    """The callbacks `config.method` trains with (`methods.Method`): the
    non-finite loss guard first (a diverged epoch is never checkpointed),
    G-Blend, the OGR monitor, the baselines' own, and OGM-GE's premise
    check. Returns `(callbacks, the GBlendCallback or None, the
    ModalityImbalanceMonitor or None)`."""
    method = methods.method(config.method)
    callbacks = [RaiseOnNonFiniteLoss("the model")]
    gblend = premise = None
    if method.gblend:
        gblend = GBlendCallback(
            holdout, mode=method.gblend, warmup_epochs=config.warmup_epochs,
            first_super_epoch=config.first_super_epoch,
            super_epoch=config.super_epoch,
            estimation_epochs=config.estimation_epochs,
            estimation_fraction=config.estimation_fraction,
            metric=config.gblend_metric, noise_z=config.noise_z,
            min_delta_o=config.min_delta_o, update_rule=config.update_rule,
            clone_repeats=config.clone_repeats, smoothing=config.smoothing,
            joint_weight_floor=config.joint_weight_floor, train=train,
            batch_size=config.batch_size, seed=config.seed,
            recalibrate_batch_norm=config.recalibrate_batch_norm,
            verbose=config.verbose)
        callbacks.append(gblend)
    if config.ogr_monitor:
        callbacks.append(OGRMonitor(
            holdout, train_subset=train_subset_dataset(
                train, batch_size=config.batch_size, seed=config.seed),
            batch_size=config.batch_size))
    if method.callback == "pretrain_finetune":
        callbacks.append(PretrainFinetune(config.pretrain_epochs_or_default))
    elif method.callback == "early_stop":
        # Naive fusion stopped on the holdout's joint loss, its best epoch's
        # weights restored (the run then reports fewer epochs).
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=f"val_{model.joint_output}_loss", mode="min",
            patience=config.patience, restore_best_weights=True))
    if (method.modulation and config.ogm_premise_check
            and config.ogm_start_epoch < config.epochs):
        # Does the slowed modality stand alone? An early check mistakes
        # "slow" for "uninformative" (`premise_check_epoch`). A run resumed
        # past that epoch does not check again.
        premise = ModalityImbalanceMonitor(
            holdout, train=train, check_epoch=premise_check_epoch(config),
            batch_size=config.batch_size, seed=config.seed,
            recalibrate_batch_norm=config.recalibrate_batch_norm)
        callbacks.append(premise)
    return callbacks, gblend, premise


class _RaiseLostCtrlC(keras.callbacks.Callback):
    """Raises `KeyboardInterrupt` after a batch if a Ctrl-C's own was lost
    (Python drops one raised inside a `__del__`, and training went on)."""

    def on_train_batch_end(self, batch, logs=None):
        if cli.interrupted():
            raise KeyboardInterrupt

    on_test_batch_end = on_train_batch_end


def _run_callbacks(config, model, model_dir) -> List:
    """Checkpoints and TensorBoard logs in the run folder, the concise
    progress line, and a Ctrl-C that cannot be lost."""
    callbacks = [_RaiseLostCtrlC()]
    if model_dir:
        callbacks += [
            ResumableCheckpoint(run_dir.checkpoint_dir(model_dir)),
            keras.callbacks.TensorBoard(os.path.join(model_dir, "logs")),
        ]
    if config.verbose:
        callbacks.append(ConciseProgbarLogger(progress_keys(config, model)))
    return callbacks


def progress_keys(config: ExperimentConfig, model: BlendedModel):
    """What the progress line shows: the loss, the reported head's accuracy
    on the training data and the holdout (every modality's for
    `unimodal`), and the blend weights."""
    heads = ([config.reported_head] if config.reported_head
             else list(model.modalities))
    keys = ["loss"]
    for head in heads:
        keys += [f"{head}_accuracy", f"val_{head}_accuracy"]
    return keys + ["blend_weight/*"]


def _train(config, model, train, holdout, callbacks, initial_epoch,
           model_dir):
    """`model.fit` from `initial_epoch`: `(history, wall time of every
    session, epochs trained in this one)`. A diverged run's error says
    which checkpoint the folder keeps; a decoding error names the file."""
    if isinstance(train, tf.data.Dataset):
        fit_data, steps = {"x": train}, None
    else:
        dataset, steps = epoch_keyed_dataset(
            train, config.batch_size, config.seed, config.epochs,
            initial_epoch)
        fit_data = {"x": dataset}
    seconds_before = 0.0
    if initial_epoch:
        seconds_before = ResumableCheckpoint.saved_seconds(
            run_dir.checkpoint_dir(model_dir))
        if config.verbose:
            print(f"Resuming from the checkpoint after epoch "
                  f"{initial_epoch}.")
    start = time.perf_counter()
    try:
        history = model.fit(
            **fit_data, epochs=config.epochs, initial_epoch=initial_epoch,
            steps_per_epoch=steps,
            shuffle=False,  # the datasets fix their own (epoch-keyed) order
            validation_data=holdout, callbacks=callbacks,
            verbose=config.verbose).history
    except FloatingPointError as error:
        if model_dir:
            kept = ResumableCheckpoint.saved_epoch(
                run_dir.checkpoint_dir(model_dir))
            raise FloatingPointError(
                f"{error} Nothing was written for this epoch: {model_dir} "
                f"keeps its checkpoint after epoch {kept}.") from None
        raise
    except tf.errors.InvalidArgumentError as error:
        _raise_naming_bad_media(config, error)
        raise
    wall_time = seconds_before + time.perf_counter() - start
    return history, wall_time, len(next(iter(history.values()), []))


def _raise_naming_bad_media(config: ExperimentConfig, error) -> None:
    """After a decoding error in an AV-digits pipeline, finds the file that
    does not decode and raises a `MediaError` naming it."""
    if config.dataset != "av_digits":
        return
    from keras_gblend.data import layout as layout_lib
    av_layout = datasets.av_digits.layout(config.data_dir)
    for split in ("train", "test"):
        clips = layout_lib.read_split(av_layout, split)
        layout_lib.check_decodable(clips)  # raises MediaError naming it
    raise layout_lib.MediaError(
        f"Decoding failed while training on {config.data_dir} "
        f"({str(error).strip().splitlines()[0]}), but every file decodes "
        "on its own.") from error


def _evaluate_finished_run(config, model, model_dir, holdout, test) -> Dict:
    """A run holding all its epochs: evaluate its checkpoint, rewrite
    nothing it wrote (`metrics.json`, `config.json`, `model.keras`), and
    write only what is missing (a run killed after its last checkpoint)."""
    checkpoints = run_dir.checkpoint_dir(model_dir)
    saved_epochs = ResumableCheckpoint.restore(model, checkpoints)
    # Always said, whatever the verbosity: nothing was retrained.
    print(f"{model_dir} already holds all {saved_epochs} epochs (asked "
          f"for {config.epochs}); evaluating its checkpoint and keeping "
          "its results (use a new --model_dir to retrain).")
    metrics_path = os.path.join(model_dir, "metrics.json")
    if os.path.isfile(metrics_path):
        with open(metrics_path) as f:
            return json.load(f)
    try:
        logs = training_history.load_epoch_logs(model_dir)
    except ValueError:
        logs = {}
    history = {key: values for key, (_, values) in logs.items()}
    saved = config
    config_path = os.path.join(model_dir, "config.json")
    if os.path.isfile(config_path):
        with open(config_path) as f:
            saved = config_from_json(json.load(f))
    return scores.write_results(
        saved, model, model_dir, holdout, test, history,
        ResumableCheckpoint.saved_seconds(checkpoints) or None, 0)
