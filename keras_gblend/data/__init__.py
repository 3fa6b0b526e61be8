"""`tf.data` multimodal input pipelines (audio, frames, layouts, TFRecords)."""

from keras_gblend.data import audio, frames, layout, pipelines, tfrecords
from keras_gblend.data.audio import PRESETS, AudioConfig
from keras_gblend.data.frames import FrameConfig
from keras_gblend.data.layout import AVLayout, ClipList, MediaError, read_split
from keras_gblend.data.pipelines import (
    arrays_dataset,
    clip_bytes_dataset,
    preprocess,
)
from keras_gblend.data.tfrecords import read_tfrecords, write_tfrecords
