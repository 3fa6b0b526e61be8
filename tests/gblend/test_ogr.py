import numpy as np
import pytest

from keras_gblend.gblend import ogr


def test_overfitting_and_deltas_match_hand_computation():
    assert ogr.overfitting(1.5, 1.0) == pytest.approx(0.5)
    # O_N = 1.2 - 1.0 = 0.2 ; O_N+n = 1.1 - 0.6 = 0.5 -> delta_o = 0.3
    assert ogr.delta_overfitting(1.2, 1.0, 1.1, 0.6) == pytest.approx(0.3)
    assert ogr.delta_generalization(1.2, 1.1) == pytest.approx(0.1)
    np.testing.assert_allclose(
        ogr.overfitting_to_generalization_ratio([0.3, -0.2], [0.1, 0.4]),
        [3.0, 0.5],
    )
    assert ogr.overfitting_to_generalization_ratio([0.1], [0.0])[0] == np.inf


def test_blend_weights_hand_computation():
    weights = ogr.blend_weights(delta_g=[0.2, 0.1, 0.3], delta_o=[0.1, 0.1, 0.2])
    # 0.2/0.01 = 20, 0.1/0.01 = 10, 0.3/0.04 = 7.5 ; Z = 37.5
    np.testing.assert_allclose(weights, [20 / 37.5, 10 / 37.5, 7.5 / 37.5])
    assert isinstance(weights, np.ndarray)


def test_negative_delta_o_enters_squared_as_in_the_paper():
    # The review example: a head whose gap fell by 0.3 is as unreliable as
    # one whose gap rose by 0.3; it must not get the largest weight.
    weights = ogr.blend_weights([0.3, 0.05, 0.2], [0.1, -0.3, 0.15])
    # 0.3/0.01 = 30, 0.05/0.09 = 0.556, 0.2/0.0225 = 8.889
    expected = np.array([30.0, 0.05 / 0.09, 0.2 / 0.0225])
    np.testing.assert_allclose(weights, expected / expected.sum())
    np.testing.assert_allclose(weights, [0.761, 0.014, 0.225], atol=1e-3)


def test_head_without_generalization_gets_zero_weight():
    weights = ogr.blend_weights(delta_g=[0.2, -0.1, 0.0], delta_o=[0.1, 0.1, 0.1])
    np.testing.assert_allclose(weights, [1.0, 0.0, 0.0])


def test_tiny_overfitting_of_either_sign_is_floored():
    weights = ogr.blend_weights(
        delta_g=[0.1, 0.1, 0.1], delta_o=[-1e-3, 1e-9, 0.02], min_delta_o=0.01
    )
    # effective |delta_o|: 0.01, 0.01, 0.02 -> 1000, 1000, 250 ; Z = 2250
    np.testing.assert_allclose(weights, [1000 / 2250, 1000 / 2250, 250 / 2250])


def test_gain_within_its_noise_does_not_count():
    delta_g, delta_o = [0.05, 0.02, 0.3], [0.1, 0.1, 0.1]
    # Head 1's gain is 1 standard error: not clear at z = 2.
    weights = ogr.blend_weights(
        delta_g, delta_o, delta_g_se=[0.01, 0.02, 0.05], noise_z=2.0
    )
    expected = np.array([0.05, 0.0, 0.3]) / 0.01
    np.testing.assert_allclose(weights, expected / expected.sum())
    np.testing.assert_array_equal(
        ogr.generalizing_heads(delta_g, [0.01, 0.02, 0.05], 2.0),
        [True, False, True],
    )
    # At z = 0 every positive gain counts again.
    assert ogr.blend_weights(delta_g, delta_o, delta_g_se=[0.01, 0.02, 0.05],
                             noise_z=0.0)[1] > 0
    with pytest.raises(ogr.NoGeneralizationError, match="standard errors"):
        ogr.blend_weights(delta_g, delta_o, delta_g_se=[1.0, 1.0, 1.0])


def test_update_with_every_gain_clear_is_the_plain_blend():
    delta_g, delta_o = [0.2, 0.1, 0.3], [0.1, 0.1, 0.2]
    np.testing.assert_allclose(
        ogr.updated_blend_weights([5.0, 1.0, 0.0], delta_g, delta_o,
                                  delta_g_se=[0.01] * 3),
        ogr.blend_weights(delta_g, delta_o))


def test_update_keeps_the_weight_of_heads_within_noise():
    # The failure seen on real data: the strong and the joint head have
    # converged (gains within noise), a weak head still creeps forward. It
    # must not take the whole weight.
    # The numbers: ΔG -0.018 and -0.044 for the converged heads,
    # +0.014 with OGR 32 for the weak one.
    previous = [0.6, 0.1, 0.3]  # strong, weak, joint
    delta_g, delta_o = [-0.018, 0.014, -0.044], [0.01, 0.45, 0.02]
    weights = ogr.updated_blend_weights(
        previous, delta_g, delta_o, delta_g_se=[0.012, 0.005, 0.03])
    np.testing.assert_allclose(weights, previous)
    # Without noise estimates the old rule hands the weak head everything.
    np.testing.assert_allclose(ogr.blend_weights(delta_g, delta_o), [0, 1, 0])


def test_update_moves_weight_from_clearly_worse_heads_to_clear_gains():
    previous = np.array([0.2, 0.3, 0.5])
    weights = ogr.updated_blend_weights(
        previous, delta_g=[0.2, -0.3, 0.01], delta_o=[0.1, 0.2, 0.1],
        delta_g_se=[0.02, 0.02, 0.02])
    # Head 1 clearly worse: 0. Head 2 within noise: keeps 0.5. Head 0
    # clearly better: the remaining 0.5 (its 0.2 and head 1's 0.3).
    np.testing.assert_allclose(weights, [0.5, 0.0, 0.5])
    # No clear gain: head 1 still loses its weight, to the heads within
    # noise in their proportions.
    np.testing.assert_allclose(
        ogr.updated_blend_weights(previous, [0.01, -0.3, 0.01],
                                  [0.1, 0.2, 0.1], delta_g_se=[0.02] * 3),
        [0.2 / 0.7, 0.0, 0.5 / 0.7])
    with pytest.raises(ogr.NoGeneralizationError):
        ogr.updated_blend_weights(previous, [0.01, 0.01, 0.01],
                                  [0.1, 0.2, 0.1], delta_g_se=[0.02] * 3)
    with pytest.raises(ValueError, match="previous_weights"):
        ogr.updated_blend_weights([1.0, -1.0, 1.0], [0.2, 0.1, 0.3],
                                  [0.1] * 3)


def test_delta_o_is_never_taken_below_its_noise():
    weights = ogr.blend_weights(
        [0.1, 0.1], [0.02, 0.02], delta_o_se=[0.2, 0.0], min_delta_o=0.01
    )
    # |delta_o| -> 0.2 and 0.02: 0.1/0.04 = 2.5, 0.1/0.0004 = 250
    np.testing.assert_allclose(weights, np.array([2.5, 250.0]) / 252.5)


def test_bad_standard_errors_raise():
    with pytest.raises(ValueError, match="delta_g_se"):
        ogr.blend_weights([0.1, 0.2], [0.1, 0.1], delta_g_se=[0.1])
    with pytest.raises(ValueError, match="delta_o_se"):
        ogr.blend_weights([0.1, 0.2], [0.1, 0.1], delta_o_se=[0.1, -1.0])
    with pytest.raises(ValueError, match="noise_z"):
        ogr.blend_weights([0.1], [0.1], noise_z=-1.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_raises_naming_the_head(bad):
    with pytest.raises(ValueError, match="video"):
        ogr.blend_weights(
            [0.1, bad, 0.2], [0.1, 0.1, 0.1], head_names=["audio", "video", "joint"]
        )
    with pytest.raises(ValueError, match="delta_o"):
        ogr.blend_weights([0.1, 0.1], [bad, 0.1])
    with pytest.raises(ValueError, match=r"`delta_o` .*\['video'\]"):
        ogr.blend_weights(
            [0.1, 0.1, 0.2], [0.1, bad, 0.1], head_names=["audio", "video", "joint"]
        )


def test_no_head_generalizes_raises():
    with pytest.raises(ogr.NoGeneralizationError):
        ogr.blend_weights([-0.1, 0.0], [0.1, 0.1])
    with pytest.raises(ogr.NoGeneralizationError):
        ogr.blend_weights([-0.1, 0.0], [0.1, 0.1], delta_g_se=[0.0, 0.0])


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="heads"):
        ogr.blend_weights([0.1, 0.2], [0.1])
    with pytest.raises(ValueError, match="non-empty"):
        ogr.blend_weights([], [])
    with pytest.raises(ValueError, match="min_delta_o"):
        ogr.blend_weights([0.1], [0.1], min_delta_o=0.0)


def test_correlated_blend_with_diagonal_covariance_equals_independent_blend():
    delta_g = np.array([0.2, 0.1, 0.3])
    delta_o = np.array([0.1, 0.15, 0.2])
    np.testing.assert_allclose(
        ogr.blend_weights_correlated(delta_g, np.diag(delta_o**2)),
        ogr.blend_weights(delta_g, delta_o),
    )


def test_correlated_blend_hand_computation():
    sigma = np.array([[2.0, 1.0], [1.0, 2.0]])
    # inverse = [[2, -1], [-1, 2]] / 3
    np.testing.assert_allclose(
        ogr.blend_weights_correlated([1.0, 1.0], sigma), [0.5, 0.5]
    )
    # sigma^-1 [1, 0] = [2/3, -1/3]
    np.testing.assert_allclose(
        ogr.blend_weights_correlated([1.0, 0.0], sigma, nonnegative=False),
        [2.0, -1.0],
    )
    np.testing.assert_allclose(
        ogr.blend_weights_correlated([1.0, 0.0], sigma), [1.0, 0.0]
    )


def test_correlated_blend_errors():
    with pytest.raises(ValueError, match="singular"):
        ogr.blend_weights_correlated([1.0, 1.0], np.ones((2, 2)))
    with pytest.raises(ValueError, match="shape"):
        ogr.blend_weights_correlated([1.0, 1.0], np.eye(3))
    with pytest.raises(ogr.NoGeneralizationError):
        ogr.blend_weights_correlated([-1.0, -1.0], np.eye(2))


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: ogr.blend_weights([], [0.1]), "delta_g"),
        (lambda: ogr.blend_weights([0.1], []), "delta_o"),
        (lambda: ogr.blend_weights([0.1], [[0.1]]), "delta_o"),
        (lambda: ogr.blend_weights([0.1, np.nan], [0.1, 0.1],
                                   head_names=["a", "joint"]), "delta_g"),
        (lambda: ogr.blend_weights([0.1, 0.1], [0.1, np.inf],
                                   head_names=["a", "joint"]), "delta_o"),
        (lambda: ogr.updated_blend_weights([], [0.1], [0.1]), "previous_weights"),
        (lambda: ogr.updated_blend_weights([np.nan], [0.1], [0.1]),
         "previous_weights"),
        (lambda: ogr.blend_weights_correlated([], np.eye(1)),
         "gradient_alignment"),
        (lambda: ogr.blend_weights_correlated([np.nan, 1.0], np.eye(2)),
         "gradient_alignment"),
        (lambda: ogr.blend_weights_correlated([1.0, 1.0],
                                              [[1.0, np.nan], [0.0, 1.0]]),
         "overfitting_covariance"),
    ],
)
def test_errors_name_the_argument(call, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        call()


def test_non_finite_errors_name_the_head_and_value():
    with pytest.raises(ValueError, match=r"head\(s\) \['joint'\]: \[nan\]"):
        ogr.blend_weights([0.1, np.nan], [0.1, 0.1], head_names=["a", "joint"])
    with pytest.raises(ValueError, match=r"head\(s\) \['index 1'\]"):
        ogr.blend_weights([0.1, np.nan], [0.1, 0.1])


def test_ogr_ratio_and_blend_accept_integer_inputs():
    np.testing.assert_allclose(
        ogr.overfitting_to_generalization_ratio([1, 3], [2, 4]), [0.5, 0.75])
    np.testing.assert_allclose(ogr.blend_weights([1, 2], [1, 2]), [2 / 3, 1 / 3])
    np.testing.assert_allclose(
        ogr.blend_weights_correlated([1, 2], [[1, 0], [0, 2]]), [0.5, 0.5])


def test_update_normalises_previous_weights_and_reads_zero_as_uniform():
    delta_g, delta_o = [0.03, 0.01, 0.02], [0.1, 0.1, 0.1]
    # Head 0 clear; heads 1 and 2 within noise, with bands reaching 0.41
    # and 0.42, so head 0's floor (0.03 / 0.86) stays below its 0.25.
    se = [0.01, 0.2, 0.2]
    weights = ogr.updated_blend_weights([2.0, 2.0, 4.0], delta_g, delta_o,
                                        delta_g_se=se)
    np.testing.assert_allclose(weights, [0.25, 0.25, 0.5])  # shares kept
    weights = ogr.updated_blend_weights([0.0, 0.0, 0.0], delta_g, delta_o,
                                        delta_g_se=se)
    np.testing.assert_allclose(weights, [1 / 3] * 3)


def test_update_passes_its_noise_settings_to_the_blend():
    # Two clear heads share their pool by ΔG/ΔO², with |ΔO| floored at
    # its standard error: the update must use delta_o_se and noise_z.
    previous = [0.25, 0.25, 0.5]
    delta_g, delta_o = [0.2, 0.2, 0.01], [0.1, 0.1, 0.1]
    weights = ogr.updated_blend_weights(
        previous, delta_g, delta_o, delta_g_se=[0.02, 0.02, 0.2],
        delta_o_se=[0.1, 0.2, 0.0])
    # ΔO used: 0.1 and 0.2 -> shares 1/0.01 : 1/0.04 = 4 : 1 of 0.5 (head
    # 2's wide band, 0.41 / 0.1², keeps their floor, 25/66, below 0.5).
    np.testing.assert_allclose(weights, [0.4, 0.1, 0.5])
    # noise_z=15: a gain of 0.2 with SE 0.02 is no longer clear, so no head
    # generalizes clearly.
    with pytest.raises(ogr.NoGeneralizationError):
        ogr.updated_blend_weights(previous, delta_g, delta_o,
                                  delta_g_se=[0.02] * 3, noise_z=15.0)


def test_update_without_standard_errors_goes_by_the_sign_of_the_gain():
    # No SE: any ΔG > 0 is a clear gain, ΔG < 0 a clear loss, ΔG = 0 keeps
    # its weight.
    weights = ogr.updated_blend_weights(
        [0.2, 0.3, 0.5], delta_g=[0.0, 0.001, -0.1], delta_o=[0.1] * 3)
    np.testing.assert_allclose(weights, [0.2, 0.8, 0.0])
    # Two clear gains share their pool by ΔG/ΔO².
    weights = ogr.updated_blend_weights(
        [0.2, 0.3, 0.5], delta_g=[0.002, 0.001, -0.1], delta_o=[0.1] * 3)
    np.testing.assert_allclose(weights, [2 / 3, 1 / 3, 0.0])


def test_a_clear_gain_is_not_locked_out_by_heads_within_noise():
    # Seen on weak-visual AV-digits: audio held the whole weight; at a
    # later estimate the joint head clearly gained (0.156 > 2 x 0.058)
    # while audio and visual were within noise. The joint head must get
    # its share of the blend with audio and visual at the top of their
    # noise bands, not 0.
    se_g, se_o = [0.052, 0.072, 0.058], [0.061, 0.076, 0.066]
    delta_g, delta_o = [0.053, 0.143, 0.156], [0.002, 0.225, -0.054]
    weights = ogr.updated_blend_weights(
        [1.0, 0.0, 0.0], delta_g, delta_o, delta_g_se=se_g, delta_o_se=se_o)
    audio = (0.053 + 2 * 0.052) / 0.061**2
    visual = (0.143 + 2 * 0.072) / 0.225**2
    joint = 0.156 / 0.066**2
    expected_joint = joint / (audio + visual + joint)
    np.testing.assert_allclose(
        weights, [1 - expected_joint, 0.0, expected_joint], rtol=1e-9)
    assert 0.4 < weights[2] < 0.45
    # Not a lock-out (the joint head held some weight): no floor, the
    # unclear heads keep theirs and the joint head its pool.
    weights = ogr.updated_blend_weights(
        [0.9, 0.0, 0.1], delta_g, delta_o, delta_g_se=se_g, delta_o_se=se_o)
    np.testing.assert_allclose(weights, [0.9, 0.0, 0.1])


def test_a_weak_head_creeping_forward_gets_no_floor():
    # Converged strong and joint heads (tiny gains, tiny noise) and a weak
    # head with a clear small gain, as in UCI-paradox's late estimates: the
    # weak head keeps its small pool; the floor would hand it most of the
    # weight (fac's band 0.008 / 0.01² against zer's 0.148 / 0.05²).
    weights = ogr.updated_blend_weights(
        [0.946, 0.002, 0.052], delta_g=[0.002, 0.148, -0.002],
        delta_o=[0.001, 0.05, 0.001], delta_g_se=[0.003, 0.02, 0.003],
        delta_o_se=[0.002, 0.02, 0.002])
    np.testing.assert_allclose(weights, [0.946, 0.002, 0.052])


def test_update_errors_name_the_head():
    with pytest.raises(ValueError, match="'audio'"):
        ogr.updated_blend_weights([0.5, 0.5], [np.nan, 0.1], [0.1, 0.1],
                                  head_names=["audio", "joint"])


def test_ratio_of_zero_gain_warns_nothing():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 0/0 and x/0 are handled, silently
        ratio = ogr.overfitting_to_generalization_ratio([0.0, 0.1], [0.0, 0.0])
    np.testing.assert_array_equal(ratio, [np.inf, np.inf])


def test_a_loss_exactly_at_the_noise_bound_is_within_noise():
    # "Clearly worse" is ΔG < -z·SE, strictly: at the bound a head keeps
    # its weight.
    weights = ogr.updated_blend_weights(
        [0.2, 0.3, 0.5], delta_g=[-0.04, 0.3, 0.0], delta_o=[0.1] * 3,
        delta_g_se=[0.02, 0.02, 0.35], noise_z=2.0)  # (head 2's wide band
    # keeps head 1's floor, 30/100, at its 0.3)
    np.testing.assert_allclose(weights, [0.2, 0.3, 0.5])


def test_weight_floor_raises_the_head_and_keeps_the_others_proportions():
    floored = ogr.with_weight_floor([0.6, 0.4, 0.0], index=2, floor=0.2)
    np.testing.assert_allclose(floored, [0.48, 0.32, 0.2])
    # A head already at or above the floor: the weights as they came.
    np.testing.assert_allclose(
        ogr.with_weight_floor([0.5, 0.2, 0.3], index=-1, floor=0.2),
        [0.5, 0.2, 0.3])
    np.testing.assert_allclose(
        ogr.with_weight_floor([0.5, 0.3, 0.2], index=-1, floor=0.2),
        [0.5, 0.3, 0.2])
    # Floor 0: Proposition 1's weights untouched, a zero head included.
    np.testing.assert_allclose(
        ogr.with_weight_floor([1.0, 0.0, 0.0], index=-1, floor=0.0),
        [1.0, 0.0, 0.0])
    # Any head can be floored; a zero among the others stays zero.
    np.testing.assert_allclose(
        ogr.with_weight_floor([0.0, 0.05, 0.95], index=1, floor=0.25),
        [0.0, 0.25, 0.75])


@pytest.mark.parametrize("floor", [1.0, -0.1, float("nan")])
def test_weight_floor_out_of_range_is_refused(floor):
    with pytest.raises(ValueError, match=r"floor must be in \[0, 1\)"):
        ogr.with_weight_floor([0.5, 0.5, 0.0], index=2, floor=floor)


@pytest.mark.parametrize("heads", [3, 4, 7])
def test_a_locked_out_head_is_readmitted_from_float32_weights(heads):
    # Issue 26: weights read back from the model's float32 variable sum to
    # one rounding step off 1, so "the rest" of the unclear heads' weight
    # was ~1e-16 and a head that clearly gains stayed locked out. 5,000
    # random floored weight vectors, each head 0 zeroed then clearly
    # gaining while the others are within noise.
    rng = np.random.default_rng(heads)
    failures = 0
    for _ in range(5000):
        exact = rng.dirichlet(np.ones(heads))
        exact[0] = 0.0
        exact[1:-1] *= rng.random(heads - 2) > 0.3  # some heads zeroed too
        exact = ogr.with_weight_floor(exact / exact.sum(), -1, 0.2)
        stored = exact.astype(np.float32)  # as the model holds them
        delta_g = np.concatenate([[0.3], rng.normal(0, 0.005, heads - 1)])
        delta_o = rng.uniform(0.05, 0.3, heads)
        se = np.full(heads, 0.01)
        reference = ogr.updated_blend_weights(
            exact, delta_g, delta_o, delta_g_se=se, delta_o_se=se)
        weights = ogr.updated_blend_weights(
            stored.tolist(), delta_g, delta_o, delta_g_se=se, delta_o_se=se)
        assert reference[0] > 1e-3  # the optimistic share, not a residue
        failures += not np.isclose(weights[0], reference[0], rtol=1e-5)
    assert failures == 0


def test_a_clearly_worse_head_loses_its_weight_when_no_head_gains():
    # Issue 26: ΔG = [-0.5, .001, .001] with SE 0.01 kept 0.6 on a head 50
    # standard errors worse. It goes to the heads within noise, in their
    # proportions.
    weights = ogr.updated_blend_weights(
        [0.6, 0.1, 0.3], [-0.5, 0.001, 0.001], [0.1, 0.1, 0.1],
        delta_g_se=[0.01] * 3)
    np.testing.assert_allclose(weights, [0.0, 0.25, 0.75])
    # The worse head held everything: the heads within noise get their
    # blend at the top of their noise bands (0.021 / 0.1² and 0.021 / 0.2²).
    weights = ogr.updated_blend_weights(
        [1.0, 0.0, 0.0], [-0.5, 0.001, 0.001], [0.1, 0.1, 0.2],
        delta_g_se=[0.01] * 3)
    np.testing.assert_allclose(weights, [0.0, 0.8, 0.2])
    # Every head worse: nothing to derive.
    with pytest.raises(ogr.NoGeneralizationError, match="Every head got worse"):
        ogr.updated_blend_weights([0.5, 0.5], [-0.5, -0.4], [0.1, 0.1],
                                  delta_g_se=[0.01, 0.01])
