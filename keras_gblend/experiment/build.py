"""What a run is made of: its data, encoders, optimizer, gradient
transform, model and distribution strategy, from an `ExperimentConfig`."""

import inspect
from typing import Dict, Optional

import keras
import numpy as np
import tensorflow as tf

from keras_gblend import datasets
from keras_gblend.experiment import methods
from keras_gblend.experiment.config import (
    MID_FUSIONS,
    OPTIMIZERS,
    STRATEGIES,
    ExperimentConfig,
)
from keras_gblend.evaluation.multilabel import multi_label_metrics
from keras_gblend.inputs.holdout import split_holdout
from keras_gblend.inputs.input_data import num_batches, num_examples
from keras_gblend.model.blended_model import BlendedModel
from keras_gblend.networks.encoders import (
    frames_encoder,
    frames_trunk,
    mfcc_encoder,
    small_image_encoder,
    spectrogram_encoder,
    spectrogram_trunk,
)
from keras_gblend.networks.late_fusion import late_fusion_model
from keras_gblend.networks.mid_fusion import mid_fusion_model
from keras_gblend.ogm import OGMGE

OPTIMIZER_CLASSES = {
    "sgd": keras.optimizers.SGD,
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
}


def modulation(config: ExperimentConfig) -> Optional[OGMGE]:
    """The `OGMGE` a method uses (`methods.Method.modulation`), if any."""
    kind = methods.method(config.method).modulation
    if kind is None:
        return None
    return OGMGE(
        alpha=config.alpha,
        start_epoch=config.ogm_start_epoch,
        end_epoch=config.ogm_end_epoch,
        noise=kind == "ogm_ge",
        seed=config.seed,
        apply_to=config.ogm_apply_to,
        coefficient=config.ogm_coefficient,
    )


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
            multi_label=config.multi_label,
            unimodal_heads=config.unimodal_heads)
    else:
        model = late_fusion_model(
            encoders,
            num_classes,
            fusion=config.fusion,
            fusion_dropout=config.fusion_dropout,
            modulation=modulation(config),
            blend_scope=config.blend_scope,
            loss_weighting=methods.method(config.method).loss_weighting,
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
        loss_weights=methods.starting_loss_weights(config.method,
                                                   model.head_names),
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
    if config.dataset == "spoken_digits":
        data = datasets.load_spoken_digits(seed=config.seed,
                                           **config.spoken_digits_noise)
    elif config.dataset == "uci_paradox":
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
        if config.dataset == "spoken_digits":
            return {
                "audio": mfcc_encoder(train[0]["audio"],
                                      units=config.encoder_units),
                "image": small_image_encoder(train[0]["image"].shape[1:],
                                             units=config.encoder_units),
            }
        return {
            view: mlp_encoder(train[0][view], config.encoder_units, view)
            for view in data.views
        }

    return train, holdout, (data.x_test, data.y_test), encoders, data.num_classes

