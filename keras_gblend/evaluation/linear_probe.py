"""Linear probes: how much of the task a modality's encoder has learned.

A probe freezes a model's encoder of one modality, takes its features (the
input of that modality's uni-modal head), standardizes them on the
training examples, and trains a fresh linear classifier on them; its
accuracy on held-out examples measures the encoder alone, whatever its own
head or the joint head learned. Comparing the probe of an encoder trained
in the fused model with the probe of the same encoder trained alone shows
whether fusion left it under-trained: the situation OGM-GE is for.
"""

from typing import Dict, Optional, Sequence

import keras
import numpy as np

from keras_gblend.inputs import input_data
from keras_gblend.model import keras_compat

DEFAULT_EPOCHS = 100


def encoder_features(model: keras.Model, modality: str) -> keras.Model:
    """The sub-model from `model`'s input of `modality` to the features its
    uni-modal head classifies (that head's last layer's input).

    Args:
        model: a `BlendedModel` (or any functional model with dict inputs
            and outputs keyed by modality).
        modality: the modality.

    Returns:
        A `keras.Model` sharing `model`'s layers.
    """
    made = keras_compat.producing_node(model.output[modality])
    if made is None:
        raise ValueError(f"Output {modality!r} is not a symbolic tensor.")
    _, node = made
    features = node.input_tensors[0]
    return keras.Model(model.input[modality], features,
                       name=f"{modality}_features")


def _features_and_labels(extractor, data, modality, batch_size):
    dataset = input_data.fixed_order(data, batch_size)
    inputs = dataset.map(lambda *element: element[0][modality])
    features = extractor.predict(inputs, verbose=0)
    labels, _ = input_data.targets_of(dataset)
    if isinstance(labels, dict):
        labels = next(iter(labels.values()))
    return features.reshape(len(features), -1), input_data.class_ids(
        np.asarray(labels))


def linear_probe_accuracy(
    model: keras.Model,
    modality: str,
    train,
    holdout,
    num_classes: int,
    epochs: int = DEFAULT_EPOCHS,
    batch_size: Optional[int] = None,
    seed: int = 0,
) -> float:
    """Holdout accuracy of a linear classifier trained on the frozen
    features of `model`'s `modality` encoder.

    Args:
        model: the model whose encoder is probed (only read).
        modality: which encoder.
        train: examples the probe trains on: `(x, y)` arrays (`x` a dict
            by modality) or a dataset.
        holdout: examples it is scored on, same forms.
        num_classes: classes of the task.
        epochs: full-batch epochs of the probe (Adam, learning rate 0.01).
        batch_size: batch size of the feature pass.
        seed: seed of the probe's initialization.

    Returns:
        The probe's accuracy on `holdout`.

    Example:

    ```python
    kg.evaluation.linear_probe.linear_probe_accuracy(
        model, "audio", train, holdout, num_classes=10)
    ```
    """
    extractor = encoder_features(model, modality)
    x_train, y_train = _features_and_labels(extractor, train, modality,
                                            batch_size)
    x_test, y_test = _features_and_labels(extractor, holdout, modality,
                                          batch_size)
    mean, scale = x_train.mean(axis=0), x_train.std(axis=0) + 1e-6
    probe = keras.Sequential([keras.Input(x_train.shape[1:]), keras.layers.Dense(
        num_classes, kernel_initializer=keras.initializers.GlorotUniform(seed))])
    probe.compile(keras.optimizers.Adam(0.01),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    probe.fit((x_train - mean) / scale, y_train, epochs=epochs,
              batch_size=len(x_train), verbose=0)
    logits = probe.predict((x_test - mean) / scale, verbose=0)
    return float(np.mean(logits.argmax(axis=-1) == y_test))


def probe_every_encoder(model: keras.Model, modalities: Sequence[str], train,
                        holdout, num_classes: int, **kwargs
                        ) -> Dict[str, float]:
    """`{modality: linear_probe_accuracy}` for each of `modalities`."""
    return {m: linear_probe_accuracy(model, m, train, holdout, num_classes,
                                     **kwargs) for m in modalities}
