"""AV-digits: spoken digits paired with handwritten digit images.

A small real audio-visual dataset made locally. Audio: the digit's English
name spoken by Debian's `espeak-ng` (several accents and variants, speeds,
pitches) or `flite` (several voices), then resampled to 16 kHz mono,
trimmed of silence and tempo/pitch shifted with `sox -D` (no dither, so the
output is deterministic). Frames: scikit-learn's bundled 8x8 handwritten
digits (UCI optdigits), upscaled to 32x32, 3 frames per clip with small
random shifts, from separate image pools for train and test. Gaussian noise
on either modality (`audio_noise`, `image_noise`) creates imbalance.

It is written in the CREMA-D-like layout of `keras_gblend.data.layout`:
`AudioWAV/<clip>.wav`, `Image-01-FPS/<clip>/<k>.jpg`, `train.csv`,
`test.csv` (rows `clip,label`, labels `0`..`9`), plus `meta.json`.

Generating needs `espeak-ng`, `flite`, `sox` (apt) and scikit-learn (pip
extra `keras_gblend[av]`); reading needs neither.
"""

import concurrent.futures
import csv
import json
import os
import shutil
import subprocess
import tempfile
from typing import Optional

import numpy as np
import tensorflow as tf

from keras_gblend.data import audio as audio_lib
from keras_gblend.data import frames as frames_lib
from keras_gblend.data import layout as layout_lib
from keras_gblend.data import pipelines
from keras_gblend.inputs.holdout import stratified_holdout_mask

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven",
         "eight", "nine")
CLASSES = tuple(str(d) for d in range(10))
ESPEAK_VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp",
                 "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029")
ESPEAK_VARIANTS = ("", "+m1", "+m2", "+m3", "+m4", "+f1", "+f2", "+f3",
                   "+f4")
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
SAMPLE_RATE = 16000
NUM_FRAMES = 3
IMAGE_SIZE = 32
LAYOUT = dict(audio_dir="AudioWAV", frames_dir="Image-01-FPS")


def _require_tools():
    missing = [t for t in ("espeak-ng", "flite", "sox") if not shutil.which(t)]
    if missing:
        raise RuntimeError(
            f"AV-digits needs {missing} on PATH: "
            "apt-get install -y espeak-ng flite sox"
        )


def _speak(word: str, params: dict, out_path: str, workdir: str) -> None:
    raw = os.path.join(workdir, os.path.basename(out_path) + ".raw.wav")
    if params["engine"] == "espeak-ng":
        command = ["espeak-ng", "-v", params["voice"], "-s",
                   str(params["speed"]), "-p", str(params["pitch"]), "-w", raw,
                   word]
    else:
        command = ["flite", "-voice", params["voice"], "-t", word, "-o", raw]
    subprocess.run(command, check=True, capture_output=True)
    subprocess.run(
        ["sox", "-D", raw, "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16",
         out_path, "silence", "1", "0.02", "1%", "reverse", "silence", "1",
         "0.02", "1%", "reverse", "tempo", f"{params['tempo']:.3f}", "pitch",
         str(params["cents"])],
        check=True, capture_output=True,
    )
    os.remove(raw)


def _add_audio_noise(path: str, std: float, rng: np.random.Generator) -> None:
    samples, rate = tf.audio.decode_wav(tf.io.read_file(path))
    noisy = samples.numpy() + rng.normal(0.0, std, samples.shape)
    encoded = tf.audio.encode_wav(
        np.clip(noisy, -1.0, 1.0).astype(np.float32), rate
    )
    tf.io.write_file(path, encoded)


def _frames(image8: np.ndarray, noise: float, rng: np.random.Generator):
    base = tf.image.resize(
        image8[..., None].astype(np.float32) / 16.0, [IMAGE_SIZE, IMAGE_SIZE]
    ).numpy()
    out = []
    for _ in range(NUM_FRAMES):
        dy, dx = rng.integers(-2, 3, size=2)
        shifted = np.roll(base, (dy, dx), axis=(0, 1))
        noisy = np.clip(shifted + rng.normal(0.0, noise, shifted.shape), 0, 1)
        pixels = np.repeat((noisy * 255).round().astype(np.uint8), 3, axis=-1)
        out.append(tf.io.encode_jpeg(pixels, quality=95).numpy())
    return out


def make_av_digits(
    out_dir: str,
    n: int = 2000,
    seed: int = 0,
    test_fraction: float = 0.2,
    audio_noise: float = 0.0,
    image_noise: float = 0.0,
    workers: int = 2,
) -> dict:
    """Generates AV-digits into `out_dir` (see the module docstring).

    Args:
        out_dir: output folder (created; existing clips are overwritten).
        n: number of clips (train + test), balanced over digits.
        seed: seed of every random choice; same seed, same files.
        test_fraction: share of clips per digit in `test.csv`.
        audio_noise: std of white noise added to the waveform (peak 1).
        image_noise: std of Gaussian pixel noise (pixels in [0, 1]).
        workers: parallel synthesis processes.

    Returns:
        The metadata written to `meta.json`.
    """
    _require_tools()
    from sklearn.datasets import load_digits  # generation-time only

    if n < 20:
        raise ValueError(f"`n` must be >= 20 (two clips per digit), got {n}.")
    rng = np.random.default_rng(seed)
    digits = load_digits()
    pool_test = stratified_holdout_mask(digits.target, 0.5, seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    is_test = stratified_holdout_mask(labels, test_fraction, seed)
    os.makedirs(os.path.join(out_dir, LAYOUT["audio_dir"]), exist_ok=True)
    clips = []
    for index, (digit, test) in enumerate(zip(labels, is_test)):
        engine = "espeak-ng" if rng.random() < 0.7 else "flite"
        voice = (
            rng.choice(ESPEAK_VOICES) + rng.choice(ESPEAK_VARIANTS)
            if engine == "espeak-ng"
            else rng.choice(FLITE_VOICES)
        )
        pool = np.flatnonzero((digits.target == digit) & (pool_test == test))
        clips.append({
            "clip": f"{index:05d}_{digit}",
            "label": str(digit),
            "split": "test" if test else "train",
            "image": int(rng.choice(pool)),
            "audio": {
                "engine": engine, "voice": str(voice),
                "speed": int(rng.integers(130, 191)),
                "pitch": int(rng.integers(25, 76)),
                "tempo": float(rng.uniform(0.9, 1.1)),
                "cents": int(rng.integers(-150, 151)),
            },
            "noise_seed": int(rng.integers(2**31)),
        })

    def build(clip):
        clip_rng = np.random.default_rng(clip["noise_seed"])
        wav = os.path.join(out_dir, LAYOUT["audio_dir"], clip["clip"] + ".wav")
        with tempfile.TemporaryDirectory() as workdir:
            _speak(WORDS[int(clip["label"])], clip["audio"], wav, workdir)
        if audio_noise > 0:
            _add_audio_noise(wav, audio_noise, clip_rng)
        folder = os.path.join(out_dir, LAYOUT["frames_dir"], clip["clip"])
        os.makedirs(folder, exist_ok=True)
        frames = _frames(digits.images[clip["image"]], image_noise, clip_rng)
        for k, data in enumerate(frames):
            with open(os.path.join(folder, f"{k:03d}.jpg"), "wb") as handle:
                handle.write(data)

    with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
        list(pool.map(build, clips))
    for split in ("train", "test"):
        with open(os.path.join(out_dir, f"{split}.csv"), "w", newline="") as f:
            writer = csv.writer(f)
            for clip in clips:
                if clip["split"] == split:
                    writer.writerow([clip["clip"], clip["label"]])
    meta = {"n": n, "seed": seed, "test_fraction": test_fraction,
            "audio_noise": audio_noise, "image_noise": image_noise,
            "sample_rate": SAMPLE_RATE, "num_frames": NUM_FRAMES,
            "image_size": IMAGE_SIZE, "classes": list(CLASSES)}
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
    return meta


def layout(data_dir: str) -> layout_lib.AVLayout:
    """The `AVLayout` of a generated AV-digits folder."""
    return layout_lib.AVLayout(root=data_dir, classes=CLASSES, **LAYOUT)


AUDIO = audio_lib.PRESETS["av_digits"]
FRAMES = frames_lib.FrameConfig(num_frames=NUM_FRAMES, size=IMAGE_SIZE,
                                crop_scale=(0.6, 1.0))


def load_av_digits(
    data_dir: str,
    batch_size: int = 32,
    holdout_fraction: Optional[float] = 0.1,
    seed: int = 0,
    cache: bool = True,
    on_error: str = "raise",
):
    """Batched `tf.data` pipelines over a generated AV-digits folder.

    Args:
        data_dir: folder written by `make_av_digits`.
        batch_size: batch size.
        holdout_fraction: share of `train.csv` per digit carved out as the
            G-Blend holdout (`None`: no holdout).
        seed: seed of the holdout split, shuffles and augmentation.
        cache: keep file bytes in memory after the first epoch.
        on_error: `"raise"` or `"skip"` bad rows (see `layout.read_split`).

    Returns:
        dict with `train`, `holdout` (or None), `test` datasets yielding
        `({"audio": (101, 64, 1), "visual": (3, 32, 32, 3)}, label)`, and
        `num_classes`.
    """
    av_layout = layout(data_dir)
    train_clips = layout_lib.read_split(av_layout, "train", on_error)
    test_clips = layout_lib.read_split(av_layout, "test", on_error)
    holdout_clips = None
    if holdout_fraction:
        mask = stratified_holdout_mask(
            np.asarray(train_clips.labels), holdout_fraction, seed
        )
        train_clips, holdout_clips = (
            _subset(train_clips, ~mask), _subset(train_clips, mask)
        )
        held_classes = sorted(set(holdout_clips.labels))
        if len(held_classes) < 2:
            raise ValueError(
                f"data_dir: {data_dir} has {len(train_clips.labels) + len(holdout_clips.labels)} "
                f"training clips; a {holdout_fraction:g} holdout of them holds "
                f"{len(holdout_clips.labels)} clip(s) of {len(held_classes)} "
                "class(es), and G-Blend needs two or more. Generate more clips "
                "(make_av_digits.py --n 200 or more) or raise holdout_fraction."
            )
    for name, clips in (("training", train_clips), ("test", test_clips)):
        if not clips.labels:
            raise ValueError(
                f"data_dir: {data_dir} has no usable {name} clips."
            )

    def make(clips, training):
        if clips is None:
            return None
        return pipelines.preprocess(
            pipelines.clip_bytes_dataset(clips), AUDIO, FRAMES,
            batch_size=batch_size, training=training, shuffle_seed=seed,
            cache=cache,
        )

    return {
        "train": make(train_clips, True),
        "holdout": make(holdout_clips, False),
        "test": make(test_clips, False),
        "num_classes": len(CLASSES),
    }


def _subset(clips: layout_lib.ClipList, keep: np.ndarray):
    rows = np.flatnonzero(keep)
    return layout_lib.ClipList(
        audio_paths=[clips.audio_paths[i] for i in rows],
        frame_paths=[clips.frame_paths[i] for i in rows],
        labels=[clips.labels[i] for i in rows],
        classes=clips.classes,
        skipped=list(clips.skipped),
    )
