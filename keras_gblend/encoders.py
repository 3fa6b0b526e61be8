"""Small encoders for spectrograms and frame stacks (the AV-digits model).

Each maps one modality's input to a feature vector `(batch, features)`, as
`late_fusion_model` expects.
"""

from typing import Sequence

import keras


def _conv_stack(widths: Sequence[int], name: str) -> keras.Sequential:
    layers = []
    for width in widths:
        layers += [
            keras.layers.Conv2D(width, 3, padding="same", use_bias=False),
            keras.layers.BatchNormalization(momentum=0.9),
            keras.layers.ReLU(),
            keras.layers.MaxPooling2D(2),
        ]
    layers.append(keras.layers.GlobalAveragePooling2D())
    return keras.Sequential(layers, name=name)


def spectrogram_encoder(
    input_shape: Sequence[int], widths: Sequence[int] = (16, 32, 64),
    name: str = "audio_encoder",
) -> keras.Model:
    """Conv-BN-ReLU-pool blocks over a `(frames, bins, 1)` spectrogram
    (standardized per clip, as the AV-digits preset does), then global
    average pooling.

    Example:

    ```python
    encoder = kg.encoders.spectrogram_encoder((101, 64, 1))
    ```
    """
    inputs = keras.Input(tuple(input_shape))
    features = _conv_stack(widths, f"{name}_convs")(inputs)
    return keras.Model(inputs, features, name=name)


def frames_encoder(
    input_shape: Sequence[int], widths: Sequence[int] = (16, 32, 64),
    name: str = "visual_encoder",
) -> keras.Model:
    """The same conv blocks applied to each frame of `(frames, h, w, 3)`,
    then the mean over frames (temporal pooling, as the OGM-GE reference's
    visual network over its 3 frames)."""
    inputs = keras.Input(tuple(input_shape))
    per_frame = keras.layers.TimeDistributed(
        _conv_stack(widths, f"{name}_convs"), name=f"{name}_per_frame"
    )(inputs)
    features = keras.layers.GlobalAveragePooling1D(name=f"{name}_time_pool")(
        per_frame
    )
    return keras.Model(inputs, features, name=name)
