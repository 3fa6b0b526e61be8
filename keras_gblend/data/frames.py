"""Video frames in `tf.data`: choosing frames, decoding, augmenting.

Follows the OGM-GE reference: training uses a random-resized crop and a
horizontal flip, evaluation a plain resize; both normalise with the
ImageNet mean and std. Frames are chosen evenly spaced over the clip, at a
random offset in training and from the start in evaluation.
"""

import dataclasses
from typing import Optional, Tuple

import tensorflow as tf

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class FrameConfig:
    """How a folder of frames becomes a `(frames, size, size, 3)` tensor.

    Attributes:
        num_frames: frames per clip.
        size: output height and width.
        crop_scale: area range of the training random-resized crop.
        crop_ratio: aspect-ratio range of the random-resized crop.
        normalize: subtract the ImageNet mean and divide by its std.
    """

    num_frames: int = 3
    size: int = 224
    crop_scale: Tuple[float, float] = (0.08, 1.0)
    crop_ratio: Tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    normalize: bool = True


def frame_indices(
    available, num_frames: int, training: bool, seed: Optional[int] = None
) -> tf.Tensor:
    """Indices of `num_frames` frames evenly spaced over `available`.

    The clip is cut into `num_frames` equal segments; evaluation takes the
    first frame of each segment, training a random offset inside the
    segment (the same offset for all). With fewer frames than asked,
    frames repeat.

    Returns:
        int32 `(num_frames,)`, non-decreasing, in `[0, available)`.
    """
    available = tf.cast(available, tf.float32)
    step = available / num_frames
    starts = tf.range(num_frames, dtype=tf.float32) * step
    if training:
        offset = tf.random.uniform([], 0.0, 1.0, seed=seed) * step
    else:
        offset = 0.0
    index = tf.cast(tf.floor(starts + offset), tf.int32)
    return tf.minimum(index, tf.cast(available, tf.int32) - 1)


def decode_frame(contents: tf.Tensor) -> tf.Tensor:
    """JPEG/PNG/BMP/GIF bytes to float32 RGB in [0, 1], `(h, w, 3)`."""
    image = tf.io.decode_image(contents, channels=3, expand_animations=False)
    return tf.image.convert_image_dtype(image, tf.float32)


def random_resized_crop(image: tf.Tensor, config: FrameConfig,
                        seed: Optional[int] = None) -> tf.Tensor:
    """Crop of random area and aspect ratio, resized to `config.size`."""
    shape = tf.shape(image)
    height, width = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    area = height * width * tf.random.uniform(
        [], config.crop_scale[0], config.crop_scale[1], seed=seed
    )
    log_ratio = tf.random.uniform(
        [],
        tf.math.log(config.crop_ratio[0]),
        tf.math.log(config.crop_ratio[1]),
        seed=seed,
    )
    ratio = tf.exp(log_ratio)
    crop_w = tf.clip_by_value(tf.sqrt(area * ratio), 1.0, width)
    crop_h = tf.clip_by_value(tf.sqrt(area / ratio), 1.0, height)
    top = tf.random.uniform([], 0.0, 1.0, seed=seed) * (height - crop_h)
    left = tf.random.uniform([], 0.0, 1.0, seed=seed) * (width - crop_w)
    box = tf.stack(
        [top / height, left / width, (top + crop_h) / height,
         (left + crop_w) / width]
    )
    return tf.image.crop_and_resize(
        image[None], box[None], [0], [config.size, config.size]
    )[0]


def preprocess_frame(image: tf.Tensor, config: FrameConfig, training: bool,
                     seed: Optional[int] = None) -> tf.Tensor:
    """Augment (training) or resize (evaluation), then normalise."""
    if training:
        image = random_resized_crop(image, config, seed)
        image = tf.image.random_flip_left_right(image, seed=seed)
    else:
        image = tf.image.resize(image, [config.size, config.size])
    if config.normalize:
        image = (image - IMAGENET_MEAN) / IMAGENET_STD
    return image
