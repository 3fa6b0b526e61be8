import math

import keras
import numpy as np
import pytest

import keras_gblend as kg
from keras_gblend import ogm


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_modality_scores_hand_computation_sparse_and_one_hot():
    rng = np.random.default_rng(0)
    logits_a = rng.normal(size=(5, 3)).astype("float32")
    logits_v = rng.normal(size=(5, 3)).astype("float32")
    labels = np.array([0, 2, 1, 1, 0])
    expected = [
        _softmax(l)[np.arange(5), labels].sum() for l in (logits_a, logits_v)
    ]
    scores = ogm.modality_scores([logits_a, logits_v], labels)
    np.testing.assert_allclose(scores.numpy(), expected, rtol=1e-5)
    stacked = np.stack([logits_a, logits_v], axis=1)
    np.testing.assert_allclose(
        ogm.modality_scores(stacked, np.eye(3)[labels]).numpy(), expected, rtol=1e-5
    )
    np.testing.assert_allclose(
        ogm.modality_scores(stacked, labels[:, None]).numpy(), expected, rtol=1e-5
    )


@pytest.mark.parametrize(
    "scores, alpha, expected",
    [
        # dominant a: ratio_a = 2 -> coeff_a = 1 - tanh(0.5 * 2)
        ([20.0, 10.0], 0.5, [1 - math.tanh(1.0), 1.0]),
        # dominant v: ratio_v = 4 -> coeff_v = 1 - tanh(0.1 * 4)
        ([5.0, 20.0], 0.1, [1.0, 1 - math.tanh(0.4)]),
        # equal: the reference's `else` branch slows a with ratio 1
        ([7.0, 7.0], 0.8, [1 - math.tanh(0.8), 1.0]),
        # k = 3: rho = [(1 + 3) / 2, (1 + 3) / 2, (1/3 + 1/3) / 2]
        ([3.0, 3.0, 1.0], 0.3, [1 - math.tanh(0.6), 1 - math.tanh(0.6), 1.0]),
    ],
)
def test_modulation_coefficients_hand_computation(scores, alpha, expected):
    np.testing.assert_allclose(
        ogm.modulation_coefficients(scores, alpha).numpy(), expected, rtol=1e-6
    )


@pytest.mark.parametrize(
    "scores, alpha, expected",
    [
        # ratio_a = 2 -> 1 - tanh(0.5 * (2 - 1))
        ([20.0, 10.0], 0.5, [1 - math.tanh(0.5), 1.0]),
        # at balance the slowed modality keeps its whole step
        ([7.0, 7.0], 0.8, [1.0, 1.0]),
        # k = 3: rho = [2, 2, 1/3]
        ([3.0, 3.0, 1.0], 0.3, [1 - math.tanh(0.3), 1 - math.tanh(0.3), 1.0]),
    ],
)
def test_excess_coefficients_hand_computation(scores, alpha, expected):
    np.testing.assert_allclose(
        ogm.modulation_coefficients(scores, alpha, "excess").numpy(),
        expected, rtol=1e-6)


def test_an_unknown_coefficient_form_is_refused():
    with pytest.raises(ValueError, match="`form` must be one of"):
        ogm.modulation_coefficients([1.0, 2.0], 0.5, "smooth")
    with pytest.raises(ValueError, match="`coefficient` must be one of"):
        kg.OGMGE(coefficient="smooth")


def test_ratios_reduce_to_reference_at_two_modalities():
    np.testing.assert_allclose(
        ogm.discrepancy_ratios([3.0, 12.0]).numpy(), [0.25, 4.0], rtol=1e-6
    )
    with pytest.raises(ValueError, match="two or more"):
        ogm.discrepancy_ratios([1.0])


@pytest.mark.parametrize("box_muller", [False, True])
def test_add_gradient_noise_draws_or_takes_its_normals(box_muller):
    rng = np.random.default_rng(0)
    reference = [rng.normal(scale=3.0, size=(200, 300)).astype("float32")]
    updates = [0.5 * reference[0]]
    generator = keras.random.SeedGenerator(5)
    noisy = ogm.add_gradient_noise(updates, reference, [[0]], generator,
                                   scale=2.0, box_muller=box_muller)[0]
    noise = noisy.numpy() - updates[0]
    assert np.std(noise) == pytest.approx(2.0 * np.std(reference[0], ddof=1),
                                          rel=0.01)
    # Normals drawn ahead are used as given, scaled by std(reference), and
    # the generator is left alone.
    state = generator.state.numpy().copy()
    draws = {0: rng.normal(size=(200, 300)).astype("float32")}
    given = ogm.add_gradient_noise(updates, reference, [[0]], generator,
                                   scale=2.0, draws=draws)[0]
    np.testing.assert_allclose(
        given.numpy() - updates[0],
        draws[0] * 2.0 * (np.std(reference[0], ddof=1) + ogm.NOISE_EPSILON),
        rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(generator.state.numpy(), state)


def test_standard_normal_is_gaussian_seeded_and_shaped():
    z = ogm.standard_normal([3, 100_001], seed=[4, 7]).numpy()  # odd size
    assert z.shape == (3, 100_001) and np.all(np.isfinite(z))
    z = z.ravel()
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1.0) < 0.01
    assert abs(((z - z.mean()) ** 4).mean() / z.var() ** 2 - 3.0) < 0.05
    # Two-sided 5 % and 0.27 % tails, as a Gaussian's.
    assert abs(np.mean(np.abs(z) > 1.96) - 0.05) < 0.003
    assert abs(np.mean(np.abs(z) > 3.0) - 0.0027) < 0.0006
    # No correlation between the halves Box-Muller pairs up.
    pairs = ogm.standard_normal([200_000], seed=[1, 1]).numpy()
    assert abs(np.corrcoef(pairs[:100_000], pairs[100_000:])[0, 1]) < 0.02
    again = ogm.standard_normal([5], seed=[4, 7]).numpy()
    np.testing.assert_array_equal(again,
                                  ogm.standard_normal([5], seed=[4, 7]).numpy())
    assert not np.allclose(again, ogm.standard_normal([5], seed=[4, 8]).numpy())


def test_ogm_score_is_the_mean_sigmoid_probability_of_true_labels():
    logits = np.array([[[2.0, -1.0, 0.0]], [[0.0, 0.0, 3.0]]], "float32")
    labels = np.array([[1, 0, 1], [0, 0, 0]], "float32")
    # Shape (batch=2, k=1, 3) after transposing: two examples, one modality.
    scores = ogm.modality_scores(logits, labels, multi_label=True)
    sigmoid = 1 / (1 + np.exp(-logits[:, 0]))
    expected = (sigmoid[0, 0] + sigmoid[0, 2]) / 2 + 0.0  # 2nd: no label
    np.testing.assert_allclose(scores, [expected], rtol=1e-6)
