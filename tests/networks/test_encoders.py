import numpy as np

import keras_gblend as kg


def _trainable_count(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


def test_resnet18_has_torchvisions_parameter_count():
    # torchvision's resnet18 has 11,689,512 parameters; without its
    # 1000-way classifier (512 * 1000 + 1000) that is 11,176,512.
    trunk = kg.encoders.resnet18((112, 112, 3))
    assert _trainable_count(trunk) == 11_689_512 - 513_000
    assert tuple(trunk.output.shape) == (None, 512)
    # One input channel (spectrograms): only the 7x7 stem changes.
    audio = kg.encoders.resnet18((128, 94, 1))
    assert _trainable_count(trunk) - _trainable_count(audio) == 7 * 7 * 64 * 2


def test_resnet18_frames_averages_the_per_frame_features():
    encoder = kg.encoders.resnet18_frames((2, 32, 32, 3))
    trunk = encoder.get_layer("visual_encoder_per_frame").layer
    frames = np.random.default_rng(0).normal(size=(1, 2, 32, 32, 3)).astype(
        "float32")
    expected = (trunk.predict(frames[:, 0], verbose=0)
                + trunk.predict(frames[:, 1], verbose=0)) / 2
    np.testing.assert_allclose(encoder.predict(frames, verbose=0), expected,
                               rtol=1e-4, atol=1e-5)
