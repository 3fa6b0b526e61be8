"""Audio in `tf.data`: WAV decoding, resampling, fixed length, spectrograms.

Everything is TensorFlow ops (`tf.audio`, `tf.signal`), so it runs inside
`Dataset.map` in parallel and needs no decoder package. Other formats (FLAC,
OGG, MP3) are read through the optional `soundfile` package
(`pip install keras_gblend[audio]`); see `decode_audio_file`.

Spectrograms follow the OGM-GE reference code: `|STFT|` with a periodic Hann
window, centred frames (`n_fft // 2` padding on both sides, as librosa's
`center=True`), then `log(|S| + 1e-7)`. The result is `(frames, bins)`, the
transpose of librosa's `(bins, frames)`.
"""

import dataclasses
import math
from typing import Optional

import numpy as np
import tensorflow as tf

FIT_MODES = ("tile", "pad", "crop")


@dataclasses.dataclass(frozen=True)
class AudioConfig:
    """How a clip becomes a spectrogram.

    Attributes:
        sample_rate: rate every clip is resampled to.
        duration_s: fixed clip length in seconds.
        n_fft: FFT size (and window length).
        hop_length: hop between frames, in samples.
        num_mel_bins: if set, a log-mel spectrogram with this many bins.
        fit: how a clip reaches `duration_s`: `"tile"` repeats it (the
            reference's `np.tile`), `"pad"` zero-pads; longer clips are
            cropped (from the start in eval, a random start in training).
        clip_amplitude: clip samples to [-1, 1] (the reference does).
        log_offset: `log(|S| + log_offset)`.
        standardize: scale each spectrogram to zero mean and unit std (the
            reference has this step commented out; off by default).
    """

    sample_rate: int = 22050
    duration_s: float = 3.0
    n_fft: int = 512
    hop_length: int = 353
    num_mel_bins: Optional[int] = None
    fit: str = "tile"
    clip_amplitude: bool = True
    log_offset: float = 1e-7
    standardize: bool = False

    @property
    def num_samples(self) -> int:
        return int(round(self.sample_rate * self.duration_s))

    @property
    def num_frames(self) -> int:
        return 1 + self.num_samples // self.hop_length

    @property
    def num_bins(self) -> int:
        return self.num_mel_bins or self.n_fft // 2 + 1


PRESETS = {
    # OGM-GE reference, CramedDataset: 22.05 kHz, tiled to 3 s, n_fft 512,
    # hop 353 -> (188, 257).
    "cremad": AudioConfig(22050, 3.0, 512, 353),
    # OGM-GE reference, VGGSoundDataset: 16 kHz, 5 s crops, n_fft 256,
    # hop 128.
    "vggsound": AudioConfig(16000, 5.0, 256, 128),
    # Our spoken digits: 16 kHz, 1 s, 64 log-mel bins.
    "av_digits": AudioConfig(
        16000, 1.0, 400, 160, num_mel_bins=64, fit="pad", standardize=True
    ),
}


def decode_wav(contents: tf.Tensor):
    """Decodes WAV bytes into mono float32 samples in [-1, 1] and the rate.

    Returns:
        `(samples (n,), sample_rate scalar int32)`.
    """
    audio, rate = tf.audio.decode_wav(contents)
    return tf.reduce_mean(audio, axis=-1), rate


def resample(samples: tf.Tensor, rate_in, rate_out: int) -> tf.Tensor:
    """Band-limited resampling by zero-padding/truncating the spectrum.

    Exact for band-limited periodic signals (as `scipy.signal.resample`);
    a no-op when the rates match.

    Args:
        samples: `(n,)` float32.
        rate_in: input rate (tensor or int).
        rate_out: output rate.

    Returns:
        `(round(n * rate_out / rate_in),)` float32.
    """
    rate_in = tf.cast(rate_in, tf.int64)

    def _resample():
        n_in = tf.shape(samples, out_type=tf.int64)[0]
        n_out = tf.cast(
            tf.round(
                tf.cast(n_in, tf.float64)
                * float(rate_out)
                / tf.cast(rate_in, tf.float64)
            ),
            tf.int64,
        )
        spectrum = tf.signal.rfft(samples)
        bins_out = n_out // 2 + 1
        bins_in = tf.shape(spectrum, out_type=tf.int64)[0]
        keep = tf.minimum(bins_in, bins_out)
        spectrum = tf.concat(
            [
                spectrum[:keep],
                tf.zeros([bins_out - keep], dtype=spectrum.dtype),
            ],
            axis=0,
        )
        out = tf.signal.irfft(spectrum, fft_length=[tf.cast(n_out, tf.int32)])
        return out * tf.cast(n_out, tf.float32) / tf.cast(n_in, tf.float32)

    return tf.cond(
        tf.equal(rate_in, rate_out), lambda: tf.identity(samples), _resample
    )


def fix_length(
    samples: tf.Tensor,
    num_samples: int,
    fit: str = "tile",
    random_crop: bool = False,
    seed: Optional[int] = None,
) -> tf.Tensor:
    """Tiles or zero-pads a clip to at least `num_samples`, then crops.

    Args:
        samples: `(n,)` samples, n >= 1.
        num_samples: output length.
        fit: `"tile"`, `"pad"` or `"crop"` (crop only; shorter clips are
            zero-padded).
        random_crop: crop at a random offset (training) instead of 0.
        seed: op seed of the random offset.

    Returns:
        `(num_samples,)`.
    """
    if fit not in FIT_MODES:
        raise ValueError(f"`fit` must be one of {FIT_MODES}, got {fit!r}.")
    length = tf.shape(samples)[0]
    if fit == "tile":
        repeats = (num_samples + length - 1) // tf.maximum(length, 1)
        samples = tf.tile(samples, [tf.maximum(repeats, 1)])
    else:
        samples = tf.pad(samples, [[0, tf.maximum(num_samples - length, 0)]])
    excess = tf.shape(samples)[0] - num_samples
    if random_crop:
        offset = tf.random.uniform(
            [], 0, excess + 1, dtype=tf.int32, seed=seed
        )
    else:
        offset = 0
    return samples[offset:offset + num_samples]


def spectrogram(samples: tf.Tensor, config: AudioConfig) -> tf.Tensor:
    """Log (mel) magnitude spectrogram, `(frames, bins)` float32."""
    pad = config.n_fft // 2
    centred = tf.pad(samples, [[pad, pad]])
    stft = tf.signal.stft(
        centred,
        frame_length=config.n_fft,
        frame_step=config.hop_length,
        fft_length=config.n_fft,
        window_fn=tf.signal.hann_window,
        pad_end=False,
    )
    magnitude = tf.abs(stft)
    if config.num_mel_bins:
        mel = tf.signal.linear_to_mel_weight_matrix(
            num_mel_bins=config.num_mel_bins,
            num_spectrogram_bins=config.n_fft // 2 + 1,
            sample_rate=config.sample_rate,
            lower_edge_hertz=20.0,
            upper_edge_hertz=config.sample_rate / 2.0,
        )
        magnitude = tf.tensordot(magnitude, mel, 1)
    log_magnitude = tf.math.log(magnitude + config.log_offset)
    if config.standardize:
        mean, variance = tf.nn.moments(log_magnitude, axes=[0, 1])
        log_magnitude = (log_magnitude - mean) / (tf.sqrt(variance) + 1e-9)
    return log_magnitude


def waveform_to_spectrogram(
    samples: tf.Tensor,
    rate,
    config: AudioConfig,
    training: bool = False,
    seed: Optional[int] = None,
) -> tf.Tensor:
    """Resample, fix the length, clip, and take the log spectrogram,
    `(config.num_frames, config.num_bins)` (a static shape, which mid
    fusion needs to match time axes)."""
    samples = resample(samples, rate, config.sample_rate)
    samples = fix_length(
        samples, config.num_samples, config.fit, random_crop=training, seed=seed
    )
    if config.clip_amplitude:
        samples = tf.clip_by_value(samples, -1.0, 1.0)
    return tf.ensure_shape(spectrogram(samples, config),
                           (config.num_frames, config.num_bins))


def numpy_log_spectrogram(samples: np.ndarray, n_fft: int, hop_length: int,
                          log_offset: float = 1e-7) -> np.ndarray:
    """Reference implementation in numpy (centred, periodic Hann), used to
    test `spectrogram`. Returns `(frames, bins)`."""
    pad = n_fft // 2
    padded = np.pad(samples.astype(np.float64), (pad, pad))
    window = 0.5 - 0.5 * np.cos(2 * math.pi * np.arange(n_fft) / n_fft)
    count = 1 + (len(padded) - n_fft) // hop_length
    frames = np.stack(
        [padded[i * hop_length:i * hop_length + n_fft] * window
         for i in range(count)]
    )
    return np.log(np.abs(np.fft.rfft(frames, axis=1)) + log_offset)


def decode_audio_file(path: str):
    """Reads any format `soundfile` supports (FLAC, OGG, WAV, MP3 with
    libsndfile >= 1.1) into mono float32 samples and the rate.

    Use it in Python (e.g. to convert to WAV, or through `tf.numpy_function`).

    Raises:
        ImportError: `soundfile` is not installed.
    """
    try:
        import soundfile
    except ImportError as error:
        raise ImportError(
            "Reading non-WAV audio needs `soundfile` "
            "(pip install 'keras_gblend[audio]'); WAV needs nothing."
        ) from error
    data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    return data.mean(axis=1), rate
