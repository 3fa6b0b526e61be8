import numpy as np
import tensorflow as tf

from keras_gblend.data import frames


def test_eval_frame_indices_are_evenly_spaced():
    assert frames.frame_indices(9, 3, training=False).numpy().tolist() == [0, 3, 6]
    assert frames.frame_indices(10, 4, training=False).numpy().tolist() == [0, 2, 5, 7]
    # Fewer frames than asked: frames repeat, all valid.
    assert frames.frame_indices(2, 3, training=False).numpy().tolist() == [0, 0, 1]


def test_training_frame_indices_shift_inside_their_segments():
    seen = set()
    for _ in range(40):
        index = frames.frame_indices(9, 3, training=True).numpy()
        assert np.all(index >= [0, 3, 6]) and np.all(index <= [2, 5, 8])
        assert len(set(index - [0, 3, 6])) == 1  # one offset for all
        seen.add(tuple(index))
    assert len(seen) > 1


def test_preprocess_resizes_normalizes_and_augments():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(40, 60, 3), dtype=np.uint8)
    image = frames.decode_frame(tf.io.encode_png(pixels))
    np.testing.assert_allclose(image.numpy(), pixels / 255.0, atol=1e-6)
    config = frames.FrameConfig(size=16)
    evaluation = frames.preprocess_frame(image, config, training=False).numpy()
    expected = (tf.image.resize(image, [16, 16]).numpy() - frames.IMAGENET_MEAN) / frames.IMAGENET_STD
    np.testing.assert_allclose(evaluation, expected, rtol=1e-5, atol=1e-5)
    train = [frames.preprocess_frame(image, config, training=True).numpy() for _ in range(3)]
    assert all(t.shape == (16, 16, 3) for t in train)
    assert not np.allclose(train[0], train[1])
