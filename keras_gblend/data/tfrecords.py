"""TFRecord shards for audio-visual data larger than memory.

Each record holds one clip's raw file bytes (`audio`, the list `frames`),
its `label` and `clip` name, so reading a shard gives exactly the stage-1
elements of `pipelines.clip_bytes_dataset` and the same decoding follows.
"""

import os
from typing import List

import tensorflow as tf

from keras_gblend.data.layout import ClipList
from keras_gblend.data.pipelines import AUTOTUNE, _with_shard_policy

_FEATURES = {
    "audio": tf.io.FixedLenFeature([], tf.string),
    "frames": tf.io.VarLenFeature(tf.string),
    "label": tf.io.FixedLenFeature([], tf.int64),
    "clip": tf.io.FixedLenFeature([], tf.string),
}


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def _bytes(values):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))


def write_tfrecords(
    clips: ClipList, out_dir: str, prefix: str = "train", num_shards: int = 4
) -> List[str]:
    """Writes `clips` into `num_shards` shards `<prefix>-XXXXX-of-YYYYY.tfrecord`.

    Each shard is written to a temporary name and renamed when complete, so
    a crash never leaves a half-written shard under the final name.

    Returns:
        The shard paths.
    """
    if num_shards < 1:
        raise ValueError(f"`num_shards` must be >= 1, got {num_shards}.")
    os.makedirs(out_dir, exist_ok=True)
    paths = [
        os.path.join(out_dir, f"{prefix}-{i:05d}-of-{num_shards:05d}.tfrecord")
        for i in range(num_shards)
    ]
    writers = [tf.io.TFRecordWriter(p + ".tmp") for p in paths]
    try:
        for index, (audio, frames, label) in enumerate(
            zip(clips.audio_paths, clips.frame_paths, clips.labels)
        ):
            clip = os.path.splitext(os.path.basename(audio))[0]
            example = tf.train.Example(
                features=tf.train.Features(
                    feature={
                        "audio": _bytes([_read(audio)]),
                        "frames": _bytes([_read(f) for f in frames]),
                        "label": tf.train.Feature(
                            int64_list=tf.train.Int64List(value=[label])
                        ),
                        "clip": _bytes([clip.encode()]),
                    }
                )
            )
            writers[index % num_shards].write(example.SerializeToString())
    finally:
        for writer in writers:
            writer.close()
    for path in paths:
        os.replace(path + ".tmp", path)
    return paths


def parse_record(serialized):
    """One serialized record to a stage-1 element (plus `clip`)."""
    parsed = tf.io.parse_single_example(serialized, _FEATURES)
    return {
        "audio_bytes": parsed["audio"],
        "frame_bytes": tf.sparse.to_dense(parsed["frames"], default_value=""),
        "label": parsed["label"],
        "clip": parsed["clip"],
    }


def read_tfrecords(pattern: str, shuffle_files: bool = False,
                   seed=None) -> tf.data.Dataset:
    """Stage-1 dataset from shards matching `pattern` (FILE auto-sharding).

    Raises:
        FileNotFoundError: no file matches.
    """
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise FileNotFoundError(f"No TFRecord shard matches {pattern}.")
    dataset = tf.data.Dataset.from_tensor_slices(files)
    if shuffle_files:
        dataset = dataset.shuffle(len(files), seed=seed)
    dataset = dataset.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(len(files), 4),
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    ).map(parse_record, num_parallel_calls=AUTOTUNE)
    return _with_shard_policy(
        dataset, tf.data.experimental.AutoShardPolicy.FILE
    )
