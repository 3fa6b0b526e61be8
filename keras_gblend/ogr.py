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
- `delta_g_i <= 0` (the head did not generalize): weight 0 for that head.
- `delta_o_i <= min_delta_o` (no measurable overfitting: tiny or negative):
  `delta_o_i` is floored to `min_delta_o` (default 0.01, about the noise of
  a loss or error measured on a few hundred holdout examples), so the weight
  stays finite. Such a head gets the largest weight its `delta_g_i` allows.
- every `delta_g_i <= 0`: `NoGeneralizationError`; `GBlendCallback` catches
  it and keeps the weights it had.
"""

from typing import Optional, Sequence

import numpy as np

DEFAULT_MIN_DELTA_O = 1e-2


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


def blend_weights(
    delta_g: Sequence[float],
    delta_o: Sequence[float],
    min_delta_o: float = DEFAULT_MIN_DELTA_O,
    head_names: Optional[Sequence[str]] = None,
) -> np.ndarray:
    """Optimal blend of Proposition 1: `w_i = delta_g_i / delta_o_i**2 / Z`.

    Args:
        delta_g: per-head generalization gain `delta_g_i`.
        delta_o: per-head change in overfitting `delta_o_i`.
        min_delta_o: floor for `delta_o_i` (see the module docstring).
        head_names: optional names used in error messages.

    Returns:
        float64 numpy array of weights, non-negative, summing to 1.

    Raises:
        ValueError: mismatched lengths or non-finite values.
        NoGeneralizationError: no head has `delta_g > 0`.

    Example:

    >>> blend_weights(delta_g=[0.2, 0.1, 0.3], delta_o=[0.1, 0.1, 0.2])
    array([0.53333333, 0.26666667, 0.2       ])
    """
    delta_g = _as_vector(delta_g, "delta_g")
    delta_o = _as_vector(delta_o, "delta_o")
    if delta_g.shape != delta_o.shape:
        raise ValueError(
            f"`delta_g` has {delta_g.size} heads but `delta_o` has "
            f"{delta_o.size}."
        )
    if not min_delta_o > 0:
        raise ValueError(f"`min_delta_o` must be > 0, got {min_delta_o}.")
    _check_finite(delta_g, "delta_g", head_names)
    _check_finite(delta_o, "delta_o", head_names)
    if not np.any(delta_g > 0):
        raise NoGeneralizationError(
            "No head improved on the holdout (every delta_g <= 0: "
            f"{delta_g.tolist()}); cannot derive a blend."
        )
    gain = np.where(delta_g > 0, delta_g, 0.0)
    spread = np.maximum(delta_o, min_delta_o)
    unnormalized = gain / spread**2
    return unnormalized / unnormalized.sum()


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
