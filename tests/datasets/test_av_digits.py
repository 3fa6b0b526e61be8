import json
import os

import keras
import numpy as np

import keras_gblend as kg


def test_generation_is_deterministic_and_balanced(av_digits_dir, tmp_path):
    meta = json.load(open(os.path.join(av_digits_dir, "meta.json")))
    assert meta["n"] == 200
    labels = [int(l.split(",")[1]) for l in open(os.path.join(av_digits_dir, "train.csv"))]
    labels += [int(l.split(",")[1]) for l in open(os.path.join(av_digits_dir, "test.csv"))]
    assert np.bincount(labels).tolist() == [20] * 10
    again = tmp_path / "again"
    kg.datasets.make_av_digits(str(again), n=200, seed=0)
    clip = open(os.path.join(av_digits_dir, "train.csv")).readline().split(",")[0]
    for relative in (f"AudioWAV/{clip}.wav", f"Image-01-FPS/{clip}/000.jpg"):
        assert open(os.path.join(av_digits_dir, relative), "rb").read() == open(
            again / relative, "rb").read()


def test_holdout_keeps_class_ratios(av_digits_dir):
    data = kg.datasets.load_av_digits(av_digits_dir, batch_size=16, holdout_fraction=0.25)
    holdout = np.concatenate([y.numpy() for _, y in data["holdout"]])
    train = np.concatenate([y.numpy() for _, y in data["train"]])
    assert np.bincount(holdout).tolist() == [4] * 10  # 25% of 16 per digit
    assert np.bincount(train).tolist() == [12] * 10


def test_fit_on_av_digits_beats_chance(av_digits_dir):
    data = kg.datasets.load_av_digits(av_digits_dir, batch_size=16, holdout_fraction=None)
    shapes = [s.shape[1:] for s in data["train"].element_spec[0].values()]
    keras.utils.set_random_seed(0)
    model = kg.late_fusion_model(
        {"audio": kg.encoders.spectrogram_encoder(shapes[0]),
         "visual": kg.encoders.frames_encoder(shapes[1])},
        num_classes=10)
    model.compile(keras.optimizers.Adam(3e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    before = model.evaluate(data["test"], return_dict=True, verbose=0)
    model.fit(data["train"], epochs=12, verbose=0)
    after = model.evaluate(data["test"], return_dict=True, verbose=0)
    assert after["joint_accuracy"] > 0.3  # chance is 0.1
    assert after["joint_loss"] < before["joint_loss"]
