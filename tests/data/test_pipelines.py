import numpy as np
import tensorflow as tf

import keras_gblend as kg
from keras_gblend import data as kd


def test_pipeline_yields_batches_from_files(av_digits_dir):
    clips = kd.read_split(kg.datasets.av_digits.layout(av_digits_dir), "test")
    dataset = kd.preprocess(
        kd.clip_bytes_dataset(clips), kg.datasets.av_digits.AUDIO,
        kg.datasets.av_digits.FRAMES, batch_size=8,
    )
    (x, y), = dataset.take(1)
    assert x["audio"].shape == (8, 101, 64, 1)
    assert x["visual"].shape == (8, 3, 32, 32, 3)
    assert y.numpy().tolist() == clips.labels[:8]
    # The audio equals a direct decode of the file.
    samples, rate = kd.audio.decode_wav(tf.io.read_file(clips.audio_paths[0]))
    expected = kd.audio.waveform_to_spectrogram(samples, rate, kg.datasets.av_digits.AUDIO)
    np.testing.assert_allclose(x["audio"][0, ..., 0].numpy(), expected.numpy(), atol=1e-5)
