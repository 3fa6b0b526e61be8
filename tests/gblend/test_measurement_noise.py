import numpy as np
import pytest

from keras_gblend.gblend import measurement_noise


def _toy(seed=0, heads=3, n_v=400, n_t=300):
    rng = np.random.default_rng(seed)
    holdout_start = rng.gamma(2.0, 0.5, size=(heads, n_v))
    holdout_end = holdout_start - rng.normal(0.1, 0.3, size=(heads, n_v))
    train_start = rng.gamma(2.0, 0.5, size=(heads, n_t))
    train_end = train_start - rng.normal(0.3, 0.2, size=(heads, n_t))
    return holdout_start, holdout_end, train_start, train_end


def test_bootstrap_matches_the_analytic_standard_error_of_a_mean_difference():
    values = _toy()
    g_boot, o_boot = measurement_noise.bootstrap_standard_errors(
        *values, num_resamples=4000, seed=1
    )
    g_exact, o_exact = measurement_noise.analytic_standard_errors(*values)
    # The analytic SE of a paired mean difference: s_d / sqrt(n).
    d = values[0] - values[1]
    np.testing.assert_allclose(g_exact, d.std(axis=1, ddof=1) / np.sqrt(400))
    # 4000 resamples: the bootstrap's own error is ~1-2%.
    np.testing.assert_allclose(g_boot, g_exact, rtol=0.05)
    np.testing.assert_allclose(o_boot, o_exact, rtol=0.05)
    # ΔO adds the independent T' noise to the holdout's.
    assert np.all(o_exact > g_exact)


def test_standard_errors_shrink_with_more_examples():
    small = measurement_noise.bootstrap_standard_errors(*_toy(n_v=100, n_t=100))
    large = measurement_noise.bootstrap_standard_errors(*_toy(n_v=1600, n_t=1600))
    # sqrt(16) = 4 times smaller, within bootstrap and sampling error.
    for s, l in zip(small, large):
        np.testing.assert_allclose(s / l, 4.0, rtol=0.25)


def test_identical_measurements_have_zero_noise_and_seed_is_reproducible():
    start = np.random.default_rng(0).normal(size=(2, 50))
    g, o = measurement_noise.bootstrap_standard_errors(start, start, start, start)
    np.testing.assert_array_equal(g, 0.0)
    np.testing.assert_array_equal(o, 0.0)
    values = _toy()
    first = measurement_noise.bootstrap_standard_errors(*values, seed=3)
    again = measurement_noise.bootstrap_standard_errors(*values, seed=3)
    np.testing.assert_array_equal(first[0], again[0])


def test_shape_errors_name_the_argument():
    values = list(_toy())
    with pytest.raises(ValueError, match="holdout_end"):
        measurement_noise.bootstrap_standard_errors(
            values[0], values[1][:, :10], values[2], values[3])
    with pytest.raises(ValueError, match="train subset"):
        measurement_noise.bootstrap_standard_errors(
            values[0], values[1], values[2][:2], values[3][:2])
    with pytest.raises(ValueError, match="num_resamples"):
        measurement_noise.bootstrap_standard_errors(*values, num_resamples=1)
    # Two resamples, the least a spread is defined for, are enough.
    g_se, o_se = measurement_noise.bootstrap_standard_errors(
        *values, num_resamples=2)
    assert np.all(np.isfinite(g_se)) and np.all(np.isfinite(o_se))


def test_analytic_errors_of_one_and_two_examples():
    start = np.array([[1.0, 2.0]])
    end = np.array([[0.5, 2.5]])  # differences 0.5 and -0.5
    g, o = measurement_noise.analytic_standard_errors(start, end, start, start)
    # s = 0.7071 (ddof 1), SE = s / sqrt(2) = 0.5
    np.testing.assert_allclose(g, [0.5])
    np.testing.assert_allclose(o, [0.5])
    g, o = measurement_noise.analytic_standard_errors(
        start[:, :1], end[:, :1], start[:, :1], end[:, :1])
    np.testing.assert_array_equal(g, [0.0])
    assert g.shape == (1,)
    # Three heads, one example each: zeros for every head.
    three = np.ones((3, 1))
    assert measurement_noise.analytic_standard_errors(
        three, three, three, three)[0].shape == (3,)


@pytest.mark.parametrize("bad, name", [(0, "holdout_start"), (1, "holdout_end"),
                                        (2, "train_start"), (3, "train_end")])
def test_every_argument_is_named_in_its_errors(bad, name):
    values = [np.ones((2, 5)) for _ in range(4)]
    values[bad] = np.ones((2, 0))
    for function in (measurement_noise.bootstrap_standard_errors,
                     measurement_noise.analytic_standard_errors):
        with pytest.raises(ValueError, match=f"`{name}`"):
            function(*values)
