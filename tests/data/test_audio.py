import numpy as np
import pytest
import tensorflow as tf

from keras_gblend.data import audio


def _tone(rate=16000, seconds=0.5, freq=440.0):
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_decoded_wav_equals_what_was_written(tmp_path):
    samples = _tone()
    path = str(tmp_path / "tone.wav")
    tf.io.write_file(path, tf.audio.encode_wav(samples[:, None], 16000))
    decoded, rate = audio.decode_wav(tf.io.read_file(path))
    assert int(rate) == 16000
    # 16-bit PCM: equal to within one quantization step.
    np.testing.assert_allclose(decoded.numpy(), samples, atol=1 / 32767)


def test_stereo_is_averaged_to_mono():
    stereo = np.stack([np.full(100, 0.5), np.full(100, -0.25)], axis=1)
    decoded, _ = audio.decode_wav(tf.audio.encode_wav(stereo.astype("float32"), 8000))
    np.testing.assert_allclose(decoded.numpy(), 0.125, atol=1e-4)


def test_resample_keeps_a_tone_and_changes_length():
    tone = _tone(rate=22050, seconds=0.5, freq=300.0)
    out = audio.resample(tf.constant(tone), 22050, 16000).numpy()
    assert len(out) == 8000
    expected = _tone(rate=16000, seconds=0.5, freq=300.0)
    # Band-limited: the 300 Hz tone survives (edges aside).
    np.testing.assert_allclose(out[500:-500], expected[500:-500], atol=0.02)
    same = audio.resample(tf.constant(tone), 16000, 16000).numpy()
    np.testing.assert_array_equal(same, tone)


def test_fix_length_tiles_pads_and_crops():
    clip = tf.constant([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(
        audio.fix_length(clip, 7, "tile").numpy(), [1, 2, 3, 1, 2, 3, 1]
    )
    np.testing.assert_array_equal(
        audio.fix_length(clip, 5, "pad").numpy(), [1, 2, 3, 0, 0]
    )
    np.testing.assert_array_equal(audio.fix_length(clip, 2, "crop").numpy(), [1, 2])
    crops = {
        tuple(audio.fix_length(tf.range(10.0), 4, "crop", random_crop=True).numpy())
        for _ in range(30)
    }
    assert len(crops) > 1 and all(c[1] - c[0] == 1 for c in crops)
    with pytest.raises(ValueError, match="fit"):
        audio.fix_length(clip, 4, "stretch")


def test_spectrogram_matches_numpy_reference_and_cremad_shape():
    rng = np.random.default_rng(0)
    samples = rng.uniform(-1, 1, 22050 * 3).astype(np.float32)
    config = audio.PRESETS["cremad"]
    ours = audio.spectrogram(tf.constant(samples), config).numpy()
    reference = audio.numpy_log_spectrogram(samples, 512, 353)
    assert ours.shape == (188, 257) == (config.num_frames, config.num_bins)
    np.testing.assert_allclose(ours, reference, atol=2e-3)


def test_mel_preset_shape_and_standardization():
    config = audio.PRESETS["av_digits"]
    out = audio.waveform_to_spectrogram(
        tf.constant(_tone(seconds=0.3)), 16000, config
    ).numpy()
    assert out.shape == (config.num_frames, 64)
    assert abs(out.mean()) < 1e-4 and abs(out.std() - 1) < 1e-3


@pytest.mark.parametrize("suffix", [".flac", ".ogg"])
def test_other_formats_decode_through_soundfile(tmp_path, suffix):
    import soundfile

    samples = _tone(rate=22050, seconds=0.25)
    path = str(tmp_path / f"tone{suffix}")
    soundfile.write(path, np.stack([samples, samples], 1), 22050)
    decoded, rate = audio.decode_audio_file(path)
    assert rate == 22050 and decoded.dtype == np.float32
    tolerance = 1e-4 if suffix == ".flac" else 0.05  # FLAC lossless, OGG lossy
    np.testing.assert_allclose(decoded, samples, atol=tolerance)
