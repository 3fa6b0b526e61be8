import numpy as np

from keras_gblend.gblend import blend_estimate, measurement_noise, ogr


def test_repeated_clone_trainings_add_their_spread_to_the_bootstrap_error():
    # 2 heads, 40 holdout / 30 train examples, 3 trainings of the clones:
    # SE = hypot(bootstrap SE over the examples, std of the repeats' means
    # (ddof 1) / sqrt(3)), for ΔG and for ΔO, by hand.
    rng = np.random.default_rng(0)
    heads = ["a", "joint"]
    holdout_start = 2.0 + rng.random((2, 40))
    train_start = 1.5 + rng.random((2, 30))
    holdout_end = 1.0 + rng.random((3, 2, 40))
    train_end = 0.5 + rng.random((3, 2, 30))
    estimate = blend_estimate.blend_estimate(
        heads, holdout_start, train_start, holdout_end, train_end, seed=0)

    boot_g, boot_o = measurement_noise.bootstrap_standard_errors(
        holdout_start, holdout_end.mean(axis=0), train_start,
        train_end.mean(axis=0), seed=0)
    start_v, start_t = holdout_start.mean(axis=1), train_start.mean(axis=1)
    end_v, end_t = holdout_end.mean(axis=-1), train_end.mean(axis=-1)
    gains = start_v - end_v
    changes = ogr.overfitting(end_v, end_t) - ogr.overfitting(start_v,
                                                              start_t)
    np.testing.assert_allclose(
        estimate.delta_g_se,
        np.hypot(boot_g, gains.std(axis=0, ddof=1) / np.sqrt(3)))
    np.testing.assert_allclose(
        estimate.delta_o_se,
        np.hypot(boot_o, changes.std(axis=0, ddof=1) / np.sqrt(3)))
    # One training: the bootstrap's error alone.
    single = blend_estimate.blend_estimate(
        heads, holdout_start, train_start, holdout_end[0], train_end[0],
        seed=0)
    boot_g1, _ = measurement_noise.bootstrap_standard_errors(
        holdout_start, holdout_end[0], train_start, train_end[0], seed=0)
    np.testing.assert_allclose(single.delta_g_se, boot_g1)
