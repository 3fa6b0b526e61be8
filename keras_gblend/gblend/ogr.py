"""Overfitting-to-Generalization Ratio (OGR) and the optimal blend.

Pure numpy functions implementing section 3 of Wang, Tran & Feiszli,
"What Makes Training Multi-Modal Classification Networks Hard?" (CVPR 2020)
and the correlated case from its supplementary material.

Notation, for a head measured at checkpoints `N` and `N + n`:

- overfitting `O_N = L^V_N - L^T_N` (holdout minus train loss or error);
- `delta_o = O_{N+n} - O_N`  (change in overfitting);
- `delta_g = L^V_N - L^V_{N+n}` (gain on the holdout);
- `OGR = |delta_o / delta_g|`;
- optimal blend `w_i = (delta_g_i / delta_o_i**2) / Z`, `sum(w) = 1`.

Degenerate cases (the paper does not discuss them):

- non-finite input: `ValueError` naming the offending head.
- the sign of `delta_o`: the paper's blend divides by `delta_o**2`, so a
  large `|delta_o|` of either sign is a large penalty, and that is what is
  computed (a falling gap is as unreliable a sign as a rising one). A tiny
  `|delta_o|` is floored to `min_delta_o` (default 0.01), so the weight
  stays finite.
- measurement noise: given the standard errors of `delta_g` and `delta_o`
  (see `keras_gblend.measurement_noise`), a head counts as generalizing only
  when `delta_g > noise_z * SE(delta_g)`, and `|delta_o|` is never taken
  below `SE(delta_o)`. Without them, any `delta_g > 0` counts.
- a head that does not count as generalizing gets weight 0 in
  `blend_weights`.
- no head counts: `NoGeneralizationError`; `GBlendCallback` catches it and
  keeps the weights it had.
- re-estimating (`updated_blend_weights`): a head whose gain is within its
  noise tells nothing about its weight (`delta_g / delta_o**2` is noise
  over noise once a head has converged), so it keeps its previous weight;
  a head whose holdout loss clearly rose gets 0; the heads that clearly
  generalize share the rest in proportion to `delta_g / delta_o**2`.
  Without this, a converged strong head and a converged joint head (gains
  within noise) get 0 and a weak head that still creeps forward gets the
  whole weight. When the clearly generalizing heads held nothing before
  (zeroed by an earlier estimate, the unclear heads holding everything),
  they get what the blend would give them if every unclear head had
  gained at the top of its noise band (`delta_g + noise_z * SE`):
  otherwise they would be locked out at 0 for good. When no head clearly
  generalizes, the clearly worse heads still lose their weight to the
  heads within noise.
- the answer: Proposition 1 may give the joint head, the model's answer,
  weight 0; `with_weight_floor` keeps it at a floor (`GBlendCallback`'s
  `joint_weight_floor`, default `DEFAULT_JOINT_WEIGHT_FLOOR`).
"""

from typing import Optional, Sequence

import numpy as np

from keras_gblend.gblend import presets as gblend_presets

_DEFAULTS = gblend_presets.preset_values("default")
DEFAULT_MIN_DELTA_O = _DEFAULTS["min_delta_o"]
DEFAULT_NOISE_Z = _DEFAULTS["noise_z"]
DEFAULT_JOINT_WEIGHT_FLOOR = _DEFAULTS["joint_weight_floor"]


class NoGeneralizationError(ValueError):
    """No head improved on the holdout, so no blend can be derived."""


def _as_vector(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(
            f"`{name}` must be a non-empty 1-D sequence, got shape "
            f"{array.shape}."
        )
    return array


def _check_finite(array: np.ndarray, name: str, head_names=None) -> None:
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        labels = [
            head_names[i] if head_names is not None else f"index {i}"
            for i in bad
        ]
        raise ValueError(
            f"`{name}` is not finite for head(s) {labels}: "
            f"{array[bad].tolist()}. A non-finite loss means the estimation "
            "diverged; lower the learning rate or the estimation epochs."
        )


def overfitting(holdout_value, train_value):
    """Overfitting `O = L^V - L^T` (elementwise).

    Args:
        holdout_value: loss (or error) on the holdout set `V`.
        train_value: loss (or error) on the train subset `T'`.

    Returns:
        `holdout_value - train_value`, as a float or numpy array.
    """
    return np.subtract(holdout_value, train_value)


def delta_overfitting(
    holdout_start, train_start, holdout_end, train_end
):
    """Change in overfitting `delta_o = O_{N+n} - O_N` (elementwise)."""
    return overfitting(holdout_end, train_end) - overfitting(
        holdout_start, train_start
    )


def delta_generalization(holdout_start, holdout_end):
    """Gain on the holdout `delta_g = L^V_N - L^V_{N+n}` (elementwise)."""
    return np.subtract(holdout_start, holdout_end)


def overfitting_to_generalization_ratio(delta_o, delta_g):
    """OGR `|delta_o / delta_g|`, elementwise; `inf` where `delta_g == 0`.

    Example:

    >>> overfitting_to_generalization_ratio([0.1, 0.2], [0.5, 0.1])
    array([0.2, 2. ])
    """
    delta_o = np.asarray(delta_o, dtype=np.float64)
    delta_g = np.asarray(delta_g, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.abs(delta_o / delta_g)
    return np.where(delta_g == 0, np.inf, ratio)


def generalizing_heads(
    delta_g, delta_g_se=None, noise_z: float = DEFAULT_NOISE_Z
) -> np.ndarray:
    """Which heads clearly improved on the holdout: `delta_g > 0` and, with
    standard errors, `delta_g > noise_z * delta_g_se`.

    Returns:
        Boolean numpy array, one entry per head.
    """
    delta_g = np.asarray(delta_g, dtype=np.float64)
    clear = delta_g > 0
    if delta_g_se is not None:
        clear &= delta_g > noise_z * np.asarray(delta_g_se, dtype=np.float64)
    return clear


def _checked_figures(delta_g, delta_o, min_delta_o, head_names, delta_g_se,
                     delta_o_se, noise_z):
    """Validated `(delta_g, spread)`: `spread` is `|delta_o|` floored at
    `min_delta_o` and, with standard errors, at `delta_o_se`."""
    delta_g = _as_vector(delta_g, "delta_g")
    delta_o = _as_vector(delta_o, "delta_o")
    if delta_g.shape != delta_o.shape:
        raise ValueError(
            f"`delta_g` has {delta_g.size} heads but `delta_o` has "
            f"{delta_o.size}."
        )
    if not min_delta_o > 0:
        raise ValueError(f"`min_delta_o` must be > 0, got {min_delta_o}.")
    if not noise_z >= 0:
        raise ValueError(f"`noise_z` must be >= 0, got {noise_z}.")
    _check_finite(delta_g, "delta_g", head_names)
    _check_finite(delta_o, "delta_o", head_names)
    spread = np.maximum(np.abs(delta_o), min_delta_o)
    for name, errors in (("delta_g_se", delta_g_se), ("delta_o_se", delta_o_se)):
        if errors is not None:
            errors = _as_vector(errors, name)
            if errors.shape != delta_g.shape or np.any(~(errors >= 0)):
                raise ValueError(
                    f"`{name}` must hold {delta_g.size} finite values >= 0, "
                    f"got {errors.tolist()}."
                )
    if delta_o_se is not None:
        spread = np.maximum(spread, np.asarray(delta_o_se, dtype=np.float64))
    return delta_g, spread


def _proposition_one(gains: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """`max(gains, 0) / spread**2`, normalised (all-zero gains: zeros)."""
    unnormalized = np.maximum(gains, 0.0) / spread**2
    total = unnormalized.sum()
    return unnormalized / total if total > 0 else unnormalized


def blend_weights(
    delta_g: Sequence[float],
    delta_o: Sequence[float],
    min_delta_o: float = DEFAULT_MIN_DELTA_O,
    head_names: Optional[Sequence[str]] = None,
    delta_g_se: Optional[Sequence[float]] = None,
    delta_o_se: Optional[Sequence[float]] = None,
    noise_z: float = DEFAULT_NOISE_Z,
) -> np.ndarray:
    """Optimal blend of Proposition 1: `w_i = delta_g_i / delta_o_i**2 / Z`.

    Args:
        delta_g: per-head generalization gain `delta_g_i`.
        delta_o: per-head change in overfitting `delta_o_i` (any sign: it
            enters squared, as in the paper).
        min_delta_o: floor for `|delta_o_i|` (see the module docstring).
        head_names: optional names used in error messages.
        delta_g_se: optional standard errors of `delta_g`: a head counts
            only if `delta_g_i > noise_z * delta_g_se_i`.
        delta_o_se: optional standard errors of `delta_o`: `|delta_o_i|` is
            never taken below `delta_o_se_i`.
        noise_z: how many standard errors make a gain clear.

    Returns:
        float64 numpy array of weights, non-negative, summing to 1.

    Raises:
        ValueError: mismatched lengths or non-finite values.
        NoGeneralizationError: no head counts as generalizing.

    Example:

    >>> blend_weights(delta_g=[0.2, 0.1, 0.3], delta_o=[0.1, 0.1, 0.2])
    array([0.53333333, 0.26666667, 0.2       ])
    >>> blend_weights([0.3, 0.05, 0.2], [0.1, -0.3, 0.15]).round(3)
    array([0.761, 0.014, 0.225])
    """
    delta_g, spread = _checked_figures(
        delta_g, delta_o, min_delta_o, head_names, delta_g_se, delta_o_se,
        noise_z)
    clear = generalizing_heads(delta_g, delta_g_se, noise_z)
    if not np.any(clear):
        noise = (
            "" if delta_g_se is None
            else f" above {noise_z:g} standard errors {np.asarray(delta_g_se).tolist()}"
        )
        raise NoGeneralizationError(
            f"No head clearly improved on the holdout (delta_g "
            f"{delta_g.tolist()}, none > 0{noise}); cannot derive a blend."
        )
    return _proposition_one(np.where(clear, delta_g, 0.0), spread)


# A pool of weight below this share is a lock-out: weights read back from a
# float32 variable carry about 7 significant digits, so an exact zero can
# come back as a rounding residue (issue 26: 1e-16 kept a head out).
_LOCKED_OUT = 1e-6


def updated_blend_weights(
    previous_weights: Sequence[float],
    delta_g: Sequence[float],
    delta_o: Sequence[float],
    min_delta_o: float = DEFAULT_MIN_DELTA_O,
    head_names: Optional[Sequence[str]] = None,
    delta_g_se: Optional[Sequence[float]] = None,
    delta_o_se: Optional[Sequence[float]] = None,
    noise_z: float = DEFAULT_NOISE_Z,
) -> np.ndarray:
    """The blend after an estimate, given the weights in use.

    Heads fall in three groups by their gain and its noise (`noise_z`
    standard errors; without standard errors, by the sign of `delta_g`):

    - clearly generalizing (`delta_g > noise_z * SE`): they share the
      previous weight of this group and of the next one, in proportion to
      `delta_g / delta_o**2` (Proposition 1 among them); if that pool is
      (numerically) 0 (they were zeroed before), their share is instead
      their part of Proposition 1's blend over every head that is not
      clearly worse, with each unclear head's gain at the top of its noise
      band (`delta_g + noise_z * SE`), so they are not locked out;
    - clearly worse on the holdout (`delta_g < -noise_z * SE`): weight 0,
      also when no head clearly generalizes;
    - within noise: their previous weight (scaled to fill the blend when
      the clearly worse heads' weight has no clear gain to go to; given
      their top-of-band blend when they held nothing).

    When every head generalizes clearly (the usual first estimate) this is
    `blend_weights`.

    Args:
        previous_weights: the weights in use (normalised here; all zero
            counts as uniform).
        delta_g, delta_o, min_delta_o, head_names, delta_g_se, delta_o_se,
            noise_z: as for `blend_weights`.

    Returns:
        float64 weights, non-negative, summing to 1.

    Raises:
        ValueError: mismatched lengths or non-finite values.
        NoGeneralizationError: no head generalizes clearly and none got
            clearly worse (nothing to change), or every head got worse.

    Example:

    >>> updated_blend_weights([0.7, 0.1, 0.2], delta_g=[0.001, 0.3, 0.0],
    ...                       delta_o=[0.01, 0.2, 0.01],
    ...                       delta_g_se=[0.01, 0.02, 0.01]).round(3)
    array([0.7, 0.1, 0.2])
    >>> updated_blend_weights([0.6, 0.2, 0.2], delta_g=[-0.5, 0.001, 0.001],
    ...                       delta_o=[0.1, 0.1, 0.1],
    ...                       delta_g_se=[0.01, 0.01, 0.01]).round(3)
    array([0. , 0.5, 0.5])
    """
    delta_g, spread = _checked_figures(
        delta_g, delta_o, min_delta_o, head_names, delta_g_se, delta_o_se,
        noise_z)
    previous = _as_vector(previous_weights, "previous_weights")
    if previous.shape != delta_g.shape or np.any(~(previous >= 0)) or (
            not np.all(np.isfinite(previous))):
        raise ValueError(
            f"`previous_weights` must hold {delta_g.size} finite "
            f"values >= 0, got {previous.tolist()}."
        )
    total = previous.sum()
    previous = (previous / total if total > 0
                else np.full(previous.size, 1.0 / previous.size))
    threshold = 0.0 if delta_g_se is None else noise_z * np.asarray(
        delta_g_se, dtype=np.float64)
    gaining = generalizing_heads(delta_g, delta_g_se, noise_z)
    losing = (delta_g < 0) & (delta_g < -threshold)
    unclear = ~gaining & ~losing
    # Proposition 1 over the heads not clearly worse, each unclear head's
    # gain at the top of its noise band: what a head that held nothing is
    # given, so that it is not locked out for good.
    optimistic = _proposition_one(
        np.where(unclear, delta_g + threshold, delta_g) * ~losing, spread)
    if not gaining.any():
        if not losing.any():
            return blend_weights(  # raises NoGeneralizationError
                delta_g, delta_o, min_delta_o, head_names, delta_g_se,
                delta_o_se, noise_z)
        # Nothing clearly gained, but the clearly worse heads lose their
        # weight to the heads within noise.
        kept = np.where(unclear, previous, 0.0)
        if kept.sum() <= _LOCKED_OUT:
            kept = optimistic
        if not kept.sum() > 0:
            raise NoGeneralizationError(
                f"Every head got worse or gained nothing on the holdout "
                f"(delta_g {delta_g.tolist()}); cannot derive a blend."
            )
        return kept / kept.sum()
    clear_weights = _proposition_one(np.where(gaining, delta_g, 0.0), spread)
    # The clear gains' share: what they held before plus what the clearly
    # worse heads held.
    share = previous[~unclear].sum()
    if share <= _LOCKED_OUT:
        share = optimistic[gaining].sum()
    unclear_total = previous[unclear].sum()
    weights = np.zeros_like(previous)
    if unclear_total > 0:
        weights[unclear] = (1.0 - share) * previous[unclear] / unclear_total
    weights[gaining] = share * clear_weights[gaining]
    return weights / weights.sum()


def with_weight_floor(weights: Sequence[float], index: int,
                      floor: float) -> np.ndarray:
    """Raise one head's weight to at least `floor`, rescaling the others.

    Proposition 1 weighs the heads by how well their losses generalize; it
    does not know that one of them, the joint head, is the model's answer.
    At weight 0 that head's features stop being trained for it: its own
    classifier is a probe over encoders trained for the other heads (and
    over an untrained encoder for a modality whose heads are all at 0),
    whose accuracy varies widely between runs. A floor keeps it in the
    encoders' objective.

    Args:
        weights: non-negative weights summing to 1.
        index: the head to floor (the joint head: the last one).
        floor: in [0, 1).

    Returns:
        float64 weights summing to 1; unchanged when `weights[index]`
        already is at least `floor`, else `weights[index] = floor` and the
        others scaled to share `1 - floor` in their proportions.

    Example:

    >>> with_weight_floor([0.8, 0.2, 0.0], index=2, floor=0.2).round(3)
    array([0.64, 0.16, 0.2 ])
    """
    weights = _as_vector(weights, "weights")
    if not 0 <= floor < 1:
        raise ValueError(f"The weight floor must be in [0, 1), got {floor}.")
    if weights[index] >= floor:
        return weights
    others = np.ones(weights.size, dtype=bool)
    others[index] = False
    floored = np.zeros_like(weights)
    floored[index] = floor
    # The others sum to 1 - weights[index] > 1 - floor > 0.
    floored[others] = (1.0 - floor) * weights[others] / weights[others].sum()
    return floored


def blend_weights_correlated(
    gradient_alignment: Sequence[float],
    overfitting_covariance,
    nonnegative: bool = True,
) -> np.ndarray:
    """Blend for correlated overfitting: `w ∝ Σ⁻¹ g` (supplementary, Prop. 1).

    `g_k = <∇L*, v_k>` is estimated by `delta_g_k`; `Σ_kj` is the covariance
    of the heads' overfitting directions (its diagonal estimated by
    `delta_o_k**2`). With a diagonal `Σ` this equals `blend_weights`.

    Args:
        gradient_alignment: vector `g` (length k).
        overfitting_covariance: `k x k` symmetric matrix `Σ`.
        nonnegative: clip negative weights to 0 before normalising (a
            negative weight would train a head to get worse).

    Returns:
        float64 numpy array summing to 1.

    Raises:
        ValueError: non-finite input, shape mismatch, a singular `Σ`, or a
            solution with no positive mass.
    """
    g = _as_vector(gradient_alignment, "gradient_alignment")
    sigma = np.asarray(overfitting_covariance, dtype=np.float64)
    if sigma.shape != (g.size, g.size):
        raise ValueError(
            f"`overfitting_covariance` must have shape {(g.size, g.size)}, "
            f"got {sigma.shape}."
        )
    _check_finite(g, "gradient_alignment")
    if not np.all(np.isfinite(sigma)):
        raise ValueError("`overfitting_covariance` has non-finite entries.")
    try:
        raw = np.linalg.solve(sigma, g)
    except np.linalg.LinAlgError as error:
        raise ValueError(
            "`overfitting_covariance` is singular; add a small ridge "
            "(e.g. 1e-8 * I) or use `blend_weights` (diagonal case)."
        ) from error
    if nonnegative:
        raw = np.maximum(raw, 0.0)
    total = raw.sum()
    if not total > 0:
        raise NoGeneralizationError(
            f"Σ⁻¹ g has no positive mass ({raw.tolist()}); cannot normalise."
        )
    return raw / total
