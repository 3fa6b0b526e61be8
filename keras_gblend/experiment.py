"""One training run, end to end: the engine behind `scripts/train.py` and the
benchmarks.

`run_experiment` loads a built-in dataset, carves a stratified holdout from
the training split, builds a late-fusion model, trains it with the chosen
method and evaluates every head on the test split once.
"""

import dataclasses
import hashlib
import inspect
import json
import math
import os
import time
from typing import Dict, List, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from keras_gblend import datasets, training_history
from keras_gblend.answer import select_answer
from keras_gblend.blended_model import BlendedModel
from keras_gblend.checkpointing import ResumableCheckpoint, is_chief
from keras_gblend.encoders import (
    frames_encoder,
    frames_trunk,
    spectrogram_encoder,
    spectrogram_trunk,
)
from keras_gblend.estimation import train_subset_dataset
from keras_gblend.baselines import PretrainFinetune
from keras_gblend.concise_progbar import ConciseProgbarLogger
from keras_gblend.experiment_config import (  # noqa: F401 - re-exported
    ALL_FUSIONS,
    AV_DIGITS_MODALITIES,
    DATASETS,
    LR_SCHEDULES,
    METHODS,
    MID_FUSIONS,
    OPTIMIZERS,
    STRATEGIES,
    UNIMODAL_PREFIX,
    ExperimentConfig,
    config_from_json,
    config_json,
    flag_message,
    resumable_changes,
    unimodal_modality,
)
from keras_gblend.fusion import late_fusion_model
from keras_gblend.mid_fusion import mid_fusion_model
from keras_gblend.gblend_callback import GBlendCallback
from keras_gblend.holdout import split_holdout
from keras_gblend.input_data import (
    epoch_keyed_dataset,
    num_batches,
    num_examples,
)
from keras_gblend.non_finite_guard import RaiseOnNonFiniteLoss
from keras_gblend.ogm import OGMGE
from keras_gblend.modality_imbalance import ModalityImbalanceMonitor
from keras_gblend.multilabel import (mean_auc, mean_average_precision,
                                     multi_label_metrics)
from keras_gblend.ogr_monitor import OGRMonitor

OPTIMIZER_CLASSES = {
    "sgd": keras.optimizers.SGD,
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
}
DATA_FINGERPRINT = "data_fingerprint.json"
RESUMABLE_CHANGES = resumable_changes()


def modulation(config: ExperimentConfig) -> Optional[OGMGE]:
    """The `OGMGE` a method uses, if any."""
    if config.method == "ogm":
        noise = False
    elif config.method.endswith("ogm_ge"):
        noise = True
    else:
        return None
    return OGMGE(
        alpha=config.alpha,
        start_epoch=config.ogm_start_epoch,
        end_epoch=config.ogm_end_epoch,
        noise=noise,
        seed=config.seed,
    )


def starting_loss_weights(method: str, heads: Sequence[str]) -> List[float]:
    """Blend weights a method trains with (G-Blend: until its estimate).

    - `naive`, `ogm`, `ogm_ge`: the joint head only (the plain multimodal
      network; OGM-GE then modulates its encoders' gradients);
    - `unimodal`: each uni-modal head alone (their variables are disjoint,
      so this trains k independent uni-modal networks in one run);
    - `unimodal:<m>`: modality m's head alone (every other variable gets
      a zero gradient);
    - `gblend_*`: uniform, summing to 1 like the estimated weights;
    - `aux_loss`: every head 1/(k+1) (the paper's equal-weight auxiliary
      losses);
    - `uncertainty`: every head 1, scaled by its learned `exp(-s_i)`;
    - `pretrain_finetune`: the uni-modal heads first (`PretrainFinetune`
      switches to the joint head);
    - `early_stop`: the joint head (naive fusion, stopped on the holdout).
    """
    k = len(heads)
    if method in ("unimodal", "pretrain_finetune"):
        return [1.0] * (k - 1) + [0.0]
    modality = unimodal_modality(method)
    if modality is not None:
        if modality not in heads[:-1]:
            raise ValueError(
                f"{method!r} names no modality of the model {list(heads[:-1])}."
            )
        return [float(head == modality) for head in heads]
    if method.startswith("gblend_") or method == "aux_loss":
        return [1.0 / k] * k
    if method == "uncertainty":
        return [1.0] * k
    return [0.0] * (k - 1) + [1.0]


def mlp_encoder(train_features: np.ndarray, hidden_units: int, name: str):
    """Standardisation (fitted on the training split) and one ReLU layer."""
    normalization = keras.layers.Normalization(name=f"{name}_norm")
    normalization.adapt(train_features)
    return keras.Sequential(
        [
            keras.Input(train_features.shape[1:]),
            normalization,
            keras.layers.Dense(hidden_units, activation="relu"),
        ],
        name=f"{name}_encoder",
    )


def steps_per_epoch(train, batch_size: int) -> Optional[int]:
    """Batches per epoch of `train`: `(x, y)` arrays batched by
    `batch_size`, or a batched `tf.data.Dataset` (None if its length is
    unknown)."""
    if isinstance(train, tf.data.Dataset):
        steps = int(train.cardinality())
        return steps if steps >= 0 else None
    return num_batches(num_examples(train[0]), batch_size)


def optimizer_class(name: str) -> type:
    """The Keras optimizer class `name` (one of `OPTIMIZERS`) stands for."""
    if name not in OPTIMIZER_CLASSES:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}.")
    return OPTIMIZER_CLASSES[name]


def make_optimizer(
    config: ExperimentConfig, steps_per_epoch: Optional[int] = None
) -> keras.optimizers.Optimizer:
    """The optimizer `config` names. Without `learning_rate`, Keras's
    default for it (SGD 0.01, Adam/AdamW 0.001); without `weight_decay`,
    Keras's (AdamW 0.004, none otherwise). `momentum` is SGD's.

    `lr_schedule="cosine"` decays the learning rate to 0 over
    `config.epochs * steps_per_epoch` steps (`keras.optimizers.schedules.
    CosineDecay`); it needs `steps_per_epoch`."""
    optimizer_type = optimizer_class(config.optimizer)
    kwargs = {}
    if config.optimizer == "sgd":
        kwargs["momentum"] = config.momentum
    if config.weight_decay is not None:
        kwargs["weight_decay"] = config.weight_decay
    learning_rate = config.learning_rate
    if config.lr_schedule == "cosine":
        if not steps_per_epoch:
            raise ValueError(
                "lr_schedule: 'cosine' needs the number of steps per epoch "
                "(the training data's length is unknown)."
            )
        if learning_rate is None:
            learning_rate = inspect.signature(optimizer_type).parameters[
                "learning_rate"
            ].default
        learning_rate = keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps=config.epochs * steps_per_epoch
        )
    if learning_rate is not None:
        kwargs["learning_rate"] = learning_rate
    return optimizer_type(**kwargs)


def check_resumable(config: ExperimentConfig) -> None:
    """Raises `ValueError` if `config.model_dir` holds checkpoints of a run
    whose settings differ from `config` (other than `RESUMABLE_CHANGES`;
    not `epochs` under a learning rate schedule): resuming would silently
    mix two experiments."""
    if not config.model_dir:
        return
    saved_path = os.path.join(config.model_dir, "config.json")
    checkpoints = os.path.join(config.model_dir, "checkpoints")
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


def build_model(config: ExperimentConfig, encoders: Dict[str, keras.Model],
                num_classes: int,
                steps_per_epoch: Optional[int] = None) -> BlendedModel:
    """The late-fusion model over `encoders` (the mid-fusion model over
    pre-fusion trunks for `MID_FUSIONS`), compiled for `config.method`
    (`steps_per_epoch`: see `make_optimizer`)."""
    config = config.resolved()
    if config.fusion in MID_FUSIONS:
        model = mid_fusion_model(
            encoders, num_classes, fusion=config.fusion,
            fusion_dropout=config.fusion_dropout,
            modulation=modulation(config), blend_scope=config.blend_scope,
            multi_label=config.multi_label)
    else:
        model = late_fusion_model(
            encoders,
            num_classes,
            fusion=config.fusion,
            fusion_dropout=config.fusion_dropout,
            modulation=modulation(config),
            blend_scope=config.blend_scope,
            loss_weighting=("uncertainty" if config.method == "uncertainty"
                            else "blend"),
            multi_label=config.multi_label,
        )
    if config.multi_label:
        # Per-label accuracy of the logits (> 0: predicted), mAUC, mAP.
        loss = keras.losses.BinaryCrossentropy(from_logits=True)
        metrics = [keras.metrics.BinaryAccuracy(threshold=0.0,
                                                name="accuracy"),
                   *multi_label_metrics(num_classes)]
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        metrics = ["accuracy"]
    model.compile(
        optimizer=make_optimizer(config, steps_per_epoch),
        loss=loss,
        loss_weights=starting_loss_weights(config.method, model.head_names),
        metrics=metrics,
        jit_compile=config.jit_compile,
    )
    return model


def make_strategy(name: str) -> tf.distribute.Strategy:
    """`default` (one device), `mirrored` (all local GPUs, else the CPU) or
    `multi_worker` (`MultiWorkerMirroredStrategy`, reads `TF_CONFIG`)."""
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "default":
        return tf.distribute.get_strategy()
    raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}.")


def load_data(config: ExperimentConfig):
    """`(train, holdout, test, encoder factory, num_classes)`."""
    if config.dataset == "av_digits":
        data = datasets.load_av_digits(
            config.data_dir, batch_size=config.batch_size,
            holdout_fraction=config.holdout_fraction, seed=config.seed)
        audio_shape, visual_shape = (
            spec.shape[1:] for spec in data["train"].element_spec[0].values()
        )

        def encoders():
            if config.fusion in MID_FUSIONS:  # pre-fusion trunks
                return {"audio": spectrogram_trunk(audio_shape),
                        "visual": frames_trunk(visual_shape)}
            return {
                "audio": spectrogram_encoder(audio_shape),
                "visual": frames_encoder(visual_shape),
            }

        return (data["train"], data["holdout"], (data["test"],), encoders,
                data["num_classes"])
    if config.dataset == "uci_paradox":
        data = datasets.load_uci_paradox(seed=config.seed)
    elif config.dataset == "uci_multilabel":
        data = datasets.load_uci_multilabel(views=config.views,
                                            seed=config.seed)
    else:
        data = datasets.load_uci_multifeature(
            views=config.views, seed=config.seed
        )
    train, holdout = split_holdout(
        (data.x_train, data.y_train),
        fraction=config.holdout_fraction,
        seed=config.seed,
    )

    def encoders():
        return {
            view: mlp_encoder(train[0][view], config.encoder_units, view)
            for view in data.views
        }

    return train, holdout, (data.x_test, data.y_test), encoders, data.num_classes


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
        holdout-selected `answer`, the `history`, `wall_time_s` of `fit`,
        and the config.

    Raises:
        ValueError: a bad setting, a `model_dir` of another run or data.
        FloatingPointError: training diverged.
    """
    config.validate()
    check_resumable(config)
    config = config.resolved()
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    keras.utils.set_random_seed(config.seed)
    strategy = make_strategy(config.strategy)
    train, holdout, test, encoders, num_classes = load_data(config)
    with strategy.scope():
        model = build_model(config, encoders(), num_classes,
                            steps_per_epoch(train, config.batch_size))

    model_dir = config.model_dir
    if model_dir and not is_chief(strategy):
        task = strategy.cluster_resolver
        model_dir = os.path.join(model_dir, f"_{task.task_type}_{task.task_id}")
    # First: a diverged epoch is never checkpointed.
    callbacks = [RaiseOnNonFiniteLoss("the model")]
    gblend = None
    if config.gblend_mode:
        gblend = GBlendCallback(
            holdout,
            mode=config.gblend_mode,
            warmup_epochs=config.warmup_epochs,
            first_super_epoch=config.first_super_epoch,
            super_epoch=config.super_epoch,
            estimation_epochs=config.estimation_epochs,
            estimation_fraction=config.estimation_fraction,
            metric=config.gblend_metric,
            noise_z=config.noise_z,
            min_delta_o=config.min_delta_o,
            update_rule=config.update_rule,
            clone_repeats=config.clone_repeats,
            smoothing=config.smoothing,
            joint_weight_floor=config.joint_weight_floor,
            train=train,
            batch_size=config.batch_size,
            seed=config.seed,
            verbose=config.verbose,
        )
        callbacks.append(gblend)
    if config.ogr_monitor:
        callbacks.append(
            OGRMonitor(
                holdout,
                train_subset=train_subset_dataset(
                    train, batch_size=config.batch_size, seed=config.seed
                ),
                batch_size=config.batch_size,
            )
        )
    if config.method == "pretrain_finetune":
        callbacks.append(PretrainFinetune(config.pretrain_epochs_or_default))
    elif config.method == "early_stop":
        # Naive fusion stopped on the holdout's joint loss, its best epoch's
        # weights restored (the run then reports fewer epochs).
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=f"val_{model.joint_output}_loss", mode="min",
            patience=config.patience,
            restore_best_weights=True))
    premise = None
    if (modulation(config) is not None and config.ogm_premise_check
            and config.ogm_start_epoch < config.epochs):
        # Halfway through the run (a modality that learns slowly needs
        # time before it can be judged; an early check mistakes "slow" for
        # "uninformative"): does the slowed modality stand alone? A run
        # resumed past that epoch does not check again.
        premise = ModalityImbalanceMonitor(
            holdout, train=train,
            check_epoch=max(config.ogm_start_epoch + 1, config.epochs // 2),
            batch_size=config.batch_size, seed=config.seed)
        callbacks.append(premise)
    initial_epoch = 0
    if model_dir:
        os.makedirs(model_dir, exist_ok=True)
        checkpoints = os.path.join(model_dir, "checkpoints")
        initial_epoch = ResumableCheckpoint.saved_epoch(checkpoints)
        check_data_unchanged(
            model_dir, data_fingerprint(config, train, holdout, test), config)
        if initial_epoch >= config.epochs or _stopped_early(model_dir):
            return _evaluate_finished_run(config, model, model_dir,
                                          initial_epoch, holdout, test)
        with open(os.path.join(model_dir, "config.json"), "w") as f:
            json.dump(config_json(config), f, indent=2)
        callbacks += [
            ResumableCheckpoint(checkpoints),
            keras.callbacks.TensorBoard(os.path.join(model_dir, "logs")),
        ]
    if config.verbose:
        callbacks.append(ConciseProgbarLogger(progress_keys(config, model)))
    if isinstance(train, tf.data.Dataset):
        fit_data, steps = {"x": train}, None
    else:
        dataset, steps = epoch_keyed_dataset(
            train, config.batch_size, config.seed, config.epochs, initial_epoch
        )
        fit_data = {"x": dataset}
    seconds_before = 0.0
    if initial_epoch:
        seconds_before = ResumableCheckpoint.saved_seconds(
            os.path.join(model_dir, "checkpoints"))
        if config.verbose:
            print(f"Resuming from the checkpoint after epoch "
                  f"{initial_epoch}.")
    start = time.perf_counter()
    try:
        history = model.fit(
            **fit_data,
            epochs=config.epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps,
            shuffle=False,  # the datasets fix their own (epoch-keyed) order
            validation_data=holdout,
            callbacks=callbacks,
            verbose=config.verbose,
        ).history
    except FloatingPointError as error:
        if model_dir:
            kept = ResumableCheckpoint.saved_epoch(
                os.path.join(model_dir, "checkpoints"))
            raise FloatingPointError(
                f"{error} Nothing was written for this epoch: {model_dir} "
                f"keeps its checkpoint after epoch {kept}.") from None
        raise
    except tf.errors.InvalidArgumentError as error:
        _raise_naming_bad_media(config, error)
        raise
    wall_time = seconds_before + time.perf_counter() - start
    trained = len(next(iter(history.values()), []))
    if initial_epoch:
        history = _whole_history(model_dir, history, initial_epoch)
    return _results(config, model, model_dir, holdout, test, history,
                    wall_time, initial_epoch,
                    gblend.timings if gblend is not None else [],
                    premise.diagnosis if premise is not None else None,
                    stopped_early=(config.method == "early_stop"
                                   and initial_epoch + trained < config.epochs))


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


def _whole_history(model_dir: str, history: Dict[str, List[float]],
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


def _stopped_early(model_dir: str) -> bool:
    """Whether the run in `model_dir` finished by early stopping (so a
    rerun evaluates it instead of training on)."""
    path = os.path.join(model_dir, "metrics.json")
    if not os.path.isfile(path):
        return False
    with open(path) as f:
        return bool(json.load(f).get("stopped_early"))


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


def _evaluate_finished_run(config, model, model_dir, saved_epochs, holdout,
                           test) -> Dict:
    """A run holding all its epochs: evaluate its checkpoint, rewrite
    nothing it wrote (`metrics.json`, `config.json`, `model.keras`), and
    write only what is missing (a run killed after its last checkpoint)."""
    checkpoints = os.path.join(model_dir, "checkpoints")
    ResumableCheckpoint.restore(model, checkpoints)
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
    return _results(saved, model, model_dir, holdout, test, history,
                    ResumableCheckpoint.saved_seconds(checkpoints) or None, 0)


def _results(config, model, model_dir, holdout, test, history, wall_time,
             initial_epoch, estimation_timings=(), ogm_diagnosis=None,
             stopped_early=False) -> Dict:
    """Evaluates `model` and writes `metrics.json` and `model.keras`."""
    results = {
        "dataset": config.dataset,
        "views": list(model.modalities),
        "method": config.method,
        "reported_head": config.reported_head,
        **_test_scores(config, model, test),
        "blend_weights": model.blend_weights,
        "answer": _answer(config, model, holdout, test),
        "wall_time_s": wall_time,
        # Per G-Blend estimate: its epoch and seconds per phase.
        "estimation_timings": list(estimation_timings),
        # OGM-GE's premise check (`ModalityImbalanceMonitor`), if run.
        "ogm_diagnosis": (ogm_diagnosis.as_dict()
                          if ogm_diagnosis is not None else None),
        # The epoch this session resumed from; `history` covers every
        # epoch from the first.
        "initial_epoch": initial_epoch,
        "history_first_epoch": 0,
        # early_stop: stopped before `epochs` (the best epoch's weights).
        "stopped_early": stopped_early,
        "history": {
            k: [float(v) for v in values] for k, values in history.items()
        },
        "config": dataclasses.asdict(config),
    }
    if model_dir:
        with open(os.path.join(model_dir, "metrics.json"), "w") as f:
            json.dump(results, f, indent=2, default=list)
        model.save(os.path.join(model_dir, "model.keras"))
    return results


def _answer(config, model, holdout, test) -> Optional[Dict]:
    """The holdout-selected answer and its test accuracy (None for
    multi-label, where `select_answer` does not apply)."""
    if config.multi_label:
        return None
    answer = select_answer(model, holdout, batch_size=config.batch_size)
    return {
        "weights": answer.weights,
        "holdout_accuracy": answer.holdout_accuracy,
        "test_accuracy": answer.accuracy(
            model, test if len(test) > 1 else test[0], config.batch_size),
    }


def _test_scores(config, model, test) -> Dict[str, Dict[str, float]]:
    """Each head's test accuracy; for multi-label also its mAUC and exact
    mAP, all from one prediction pass over the test arrays."""
    if not config.multi_label:
        scores = model.evaluate(*test, return_dict=True, verbose=0)
        return {"test_accuracy": {head: float(scores[f"{head}_accuracy"])
                                  for head in model.head_names}}
    x, y = test
    logits = model.predict(x, batch_size=config.batch_size, verbose=0)
    scores = {"test_accuracy": {}, "test_map": {}, "test_mauc": {}}
    for head in model.head_names:
        probabilities = keras.ops.convert_to_numpy(
            keras.ops.sigmoid(logits[head]))
        # The compiled accuracy's rule: logit > 0, i.e. probability > 0.5.
        scores["test_accuracy"][head] = float(np.mean(
            (logits[head] > 0) == np.asarray(y, bool)))
        scores["test_mauc"][head] = mean_auc(y, probabilities)
        scores["test_map"][head] = mean_average_precision(y, logits[head])
    return scores
