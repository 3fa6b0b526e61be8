"""Small encoders for spectrograms and frame stacks (the AV-digits model).

Each maps one modality's input to a feature vector `(batch, features)`, as
`late_fusion_model` expects.
"""

from typing import Sequence

import keras


def _conv_stack(widths: Sequence[int], name: str,
                pool: bool = True) -> keras.Sequential:
    layers = []
    for width in widths:
        layers += [
            keras.layers.Conv2D(width, 3, padding="same", use_bias=False),
            keras.layers.BatchNormalization(momentum=0.9),
            keras.layers.ReLU(),
            keras.layers.MaxPooling2D(2),
        ]
    if pool:
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
    return _mean_over_frames(input_shape, _conv_stack(widths, f"{name}_convs"),
                             name)


def spectrogram_trunk(
    input_shape: Sequence[int], widths: Sequence[int] = (16, 32),
    name: str = "audio_trunk",
) -> keras.Model:
    """The pre-fusion part of `spectrogram_encoder` for mid fusion: its
    conv blocks without the pooling, a `(time, frequency, channels)` map.

    Example:

    ```python
    trunk = kg.encoders.spectrogram_trunk((101, 64, 1))  # -> (25, 16, 32)
    ```
    """
    inputs = keras.Input(tuple(input_shape))
    maps = _conv_stack(widths, f"{name}_convs", pool=False)(inputs)
    return keras.Model(inputs, maps, name=name)


def frames_trunk(
    input_shape: Sequence[int], widths: Sequence[int] = (16, 32),
    name: str = "visual_trunk",
) -> keras.Model:
    """The pre-fusion part of `frames_encoder` for mid fusion: its conv
    blocks on each frame, a `(frames, height, width, channels)` map.

    Example:

    ```python
    trunk = kg.encoders.frames_trunk((3, 32, 32, 3))  # -> (3, 8, 8, 32)
    ```
    """
    inputs = keras.Input(tuple(input_shape))
    maps = keras.layers.TimeDistributed(
        _conv_stack(widths, f"{name}_convs", pool=False),
        name=f"{name}_per_frame")(inputs)
    return keras.Model(inputs, maps, name=name)


def _mean_over_frames(input_shape: Sequence[int], trunk, name: str):
    """`trunk` on each frame of `(frames, ...)`, then the mean over frames."""
    inputs = keras.Input(tuple(input_shape))
    per_frame = keras.layers.TimeDistributed(
        trunk, name=f"{name}_per_frame"
    )(inputs)
    features = keras.layers.GlobalAveragePooling1D(name=f"{name}_time_pool")(
        per_frame
    )
    return keras.Model(inputs, features, name=name)


def _basic_block(x, width: int, stride: int, name: str):
    """ResNet's basic block: two 3x3 conv-BN, identity or 1x1 projection."""
    shortcut = x
    if stride != 1 or x.shape[-1] != width:
        shortcut = keras.layers.Conv2D(
            width, 1, strides=stride, use_bias=False, name=f"{name}_proj"
        )(x)
        shortcut = keras.layers.BatchNormalization(name=f"{name}_proj_bn")(
            shortcut
        )
    y = keras.layers.Conv2D(width, 3, strides=stride, padding="same",
                            use_bias=False, name=f"{name}_conv1")(x)
    y = keras.layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = keras.layers.ReLU(name=f"{name}_relu1")(y)
    y = keras.layers.Conv2D(width, 3, padding="same", use_bias=False,
                            name=f"{name}_conv2")(y)
    y = keras.layers.BatchNormalization(name=f"{name}_bn2")(y)
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def resnet18(input_shape: Sequence[int], name: str = "resnet18") -> keras.Model:
    """ResNet-18 trunk (He et al., 2016) without its classifier: 7x7/2 conv,
    3x3/2 max pool, four stages of two basic blocks (64, 128, 256, 512
    channels), global average pooling. The backbone of both OGM-GE's and
    G-Blend's reference models; any number of input channels (1 for
    spectrograms, as the OGM-GE reference's audio network).

    Example:

    ```python
    encoder = kg.encoders.resnet18((128, 94, 1), name="audio_encoder")
    ```
    """
    inputs = keras.Input(tuple(input_shape))
    x = keras.layers.Conv2D(64, 7, strides=2, padding="same", use_bias=False,
                            name=f"{name}_stem_conv")(inputs)
    x = keras.layers.BatchNormalization(name=f"{name}_stem_bn")(x)
    x = keras.layers.ReLU(name=f"{name}_stem_relu")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same",
                                  name=f"{name}_stem_pool")(x)
    for stage, width in enumerate((64, 128, 256, 512)):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            x = _basic_block(x, width, stride, f"{name}_s{stage + 1}b{block + 1}")
    features = keras.layers.GlobalAveragePooling2D(name=f"{name}_pool")(x)
    return keras.Model(inputs, features, name=name)


def resnet18_frames(input_shape: Sequence[int],
                    name: str = "visual_encoder") -> keras.Model:
    """`resnet18` on each frame of `(frames, h, w, channels)`, then the mean
    over frames (the OGM-GE reference's visual network).

    Example:

    ```python
    encoder = kg.encoders.resnet18_frames((3, 112, 112, 3))
    ```
    """
    return _mean_over_frames(
        input_shape, resnet18(tuple(input_shape)[1:], name=f"{name}_resnet18"),
        name)


def mfcc_encoder(
    train_mfcc, widths: Sequence[int] = (32, 64), units: int = 64,
    name: str = "audio_encoder",
) -> keras.Model:
    """For MFCC sequences `(frames, coefficients)`: each coefficient
    standardized (statistics of `train_mfcc`), Conv1D-BN-ReLU blocks over
    time, global average pooling, a ReLU layer of `units`.

    Example:

    ```python
    data = kg.datasets.load_spoken_digits()
    encoder = kg.encoders.mfcc_encoder(data.x_train["audio"])
    ```
    """
    normalization = keras.layers.Normalization(axis=-1, name=f"{name}_norm")
    normalization.adapt(train_mfcc)
    layers = [keras.Input(train_mfcc.shape[1:]), normalization]
    for width in widths:
        layers += [keras.layers.Conv1D(width, 3, padding="same",
                                       use_bias=False),
                   keras.layers.BatchNormalization(momentum=0.9),
                   keras.layers.ReLU()]
    layers += [keras.layers.GlobalAveragePooling1D(),
               keras.layers.Dense(units, activation="relu")]
    return keras.Sequential(layers, name=name)


def small_image_encoder(
    input_shape: Sequence[int], units: int = 64,
    name: str = "image_encoder",
) -> keras.Model:
    """For small grayscale images (8x8 digits): flattened, one ReLU layer
    of `units`.

    Example:

    ```python
    encoder = kg.encoders.small_image_encoder((8, 8, 1))
    ```
    """
    return keras.Sequential([
        keras.Input(tuple(input_shape)), keras.layers.Flatten(),
        keras.layers.Dense(units, activation="relu")], name=name)
