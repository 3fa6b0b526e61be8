"""`tf.data` pipelines yielding `({"audio": ..., "visual": ...}, label)`.

Two stages, shared by every source:

1. *read*: a source yields `{"audio_bytes", "frame_bytes", "label"}` —
   raw file contents, read in parallel from a `ClipList` (files) or parsed
   from TFRecord shards (`tfrecords.py`);
2. *decode*: `preprocess` decodes WAV and frames, builds the log
   spectrogram and the augmented frames in parallel (`AUTOTUNE`), then
   batches and prefetches. `cache=True` keeps the raw bytes of stage 1 in
   memory (so files are read once, augmentation stays random per epoch).

Auto-sharding under `tf.distribute` is set deliberately: file lists shard by
DATA (every worker reads its share of examples), TFRecords by FILE (shards
are split between workers; have at least as many shards as workers).
"""

from typing import Optional

import tensorflow as tf

from keras_gblend.inputs import input_checks, input_data
from keras_gblend.data import audio as audio_lib
from keras_gblend.data import frames as frames_lib
from keras_gblend.data.layout import ClipList

AUTOTUNE = tf.data.AUTOTUNE


def _with_shard_policy(dataset: tf.data.Dataset, policy) -> tf.data.Dataset:
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = policy
    return dataset.with_options(options)


def clip_bytes_dataset(clips: ClipList) -> tf.data.Dataset:
    """Stage 1 from files: raw bytes of each clip's audio and frames."""
    dataset = tf.data.Dataset.from_tensor_slices(
        {
            "audio_path": tf.constant(clips.audio_paths),
            "frame_paths": tf.ragged.constant(clips.frame_paths),
            "label": tf.constant(clips.labels, dtype=tf.int64),
        }
    )

    def read(element):
        return {
            "audio_bytes": tf.io.read_file(element["audio_path"]),
            "frame_bytes": tf.map_fn(
                tf.io.read_file,
                element["frame_paths"],
                fn_output_signature=tf.string,
            ),
            "label": element["label"],
        }

    dataset = dataset.map(read, num_parallel_calls=AUTOTUNE)
    return _with_shard_policy(
        dataset, tf.data.experimental.AutoShardPolicy.DATA
    )


def decode_example(
    element,
    audio_config: audio_lib.AudioConfig,
    frame_config: frames_lib.FrameConfig,
    training: bool,
    seed: Optional[int] = None,
):
    """Stage 2 for one clip: `({"audio", "visual"}, label)`."""
    samples, rate = audio_lib.decode_wav(element["audio_bytes"])
    spectrogram = audio_lib.waveform_to_spectrogram(
        samples, rate, audio_config, training=training, seed=seed
    )
    frame_bytes = element["frame_bytes"]
    chosen = tf.gather(
        frame_bytes,
        frames_lib.frame_indices(
            tf.shape(frame_bytes)[0], frame_config.num_frames, training, seed
        ),
    )

    def one_frame(contents):
        image = frames_lib.decode_frame(contents)
        return frames_lib.preprocess_frame(image, frame_config, training, seed)

    visual = tf.map_fn(
        one_frame,
        chosen,
        fn_output_signature=tf.TensorSpec(
            (frame_config.size, frame_config.size, 3), tf.float32
        ),
    )
    inputs = {"audio": spectrogram[..., None], "visual": visual}
    return inputs, tf.cast(element["label"], tf.int32)


def preprocess(
    raw: tf.data.Dataset,
    audio_config: audio_lib.AudioConfig,
    frame_config: frames_lib.FrameConfig,
    batch_size: int = 32,
    training: bool = False,
    shuffle_seed: Optional[int] = None,
    shuffle_buffer: int = 10000,
    cache: bool = False,
    deterministic: bool = True,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Stage 2: decode, augment (training), batch, prefetch.

    Args:
        raw: a stage-1 dataset (`clip_bytes_dataset`, `read_tfrecords`).
        audio_config: spectrogram settings (`audio.PRESETS[...]`).
        frame_config: frame settings.
        batch_size: batch size.
        training: random crops/flips/frame offsets and reshuffling.
        shuffle_seed: seed of the shuffle and augmentation (training).
        shuffle_buffer: examples in the shuffle buffer.
        cache: keep stage-1 bytes in memory after the first epoch.
        deterministic: keep element order under parallel `map` (needed for
            bit-reproducible runs; `False` can be faster).
        drop_remainder: drop the last partial batch.

    Returns:
        A batched `tf.data.Dataset`.
    """
    dataset = raw.cache() if cache else raw
    if training:
        dataset = dataset.shuffle(
            shuffle_buffer, seed=shuffle_seed, reshuffle_each_iteration=True
        )
    dataset = dataset.map(
        lambda element: decode_example(
            element, audio_config, frame_config, training, shuffle_seed
        ),
        num_parallel_calls=AUTOTUNE,
        deterministic=deterministic,
    )
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    options = tf.data.Options()
    options.deterministic = deterministic
    return dataset.with_options(options).prefetch(AUTOTUNE)


def arrays_dataset(
    x,
    y,
    batch_size: int = 32,
    shuffle_seed: Optional[int] = None,
) -> tf.data.Dataset:
    """In-memory arrays (`x` may be a dict) to a batched, prefetched
    dataset, shuffled each epoch when `shuffle_seed` is given (see
    `input_data.dataset_factory`), sharded by DATA under tf.distribute."""
    input_checks.check_arrays((x, y), "arrays_dataset")
    dataset = input_data.dataset_factory((x, y), batch_size, shuffle_seed)()
    return _with_shard_policy(
        dataset.prefetch(AUTOTUNE), tf.data.experimental.AutoShardPolicy.DATA
    )
