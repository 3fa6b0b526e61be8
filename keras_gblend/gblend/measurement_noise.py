"""Measurement noise of G-Blend's ΔG and ΔO, from per-example losses.

`ΔG` and `ΔO` are differences of mean losses (or errors) measured on a few
hundred holdout examples `V` and train-subset examples `T'`. Late in
training they are mostly noise, and `w ∝ ΔG / ΔO²` turns that noise into
one-hot weights. Every figure here is computed from the per-example values
measured at the two checkpoints `N` and `N + n` (the same examples at both),
so no extra training is needed:

- `ΔG = mean_V(start - end)`: a paired mean difference over `V`;
- `ΔO = mean_V(end - start) - mean_T'(end - start)`: two independent
  paired differences.

`bootstrap_standard_errors` resamples examples with replacement (the same
rows for every head, so heads stay paired) and reports the standard
deviation of each figure over the resamples; `analytic_standard_errors`
gives the textbook standard error of those means, which the bootstrap
approaches for large samples.
"""

from typing import Optional, Tuple

import numpy as np

DEFAULT_RESAMPLES = 1000


def _as_matrix(values, name: str) -> np.ndarray:
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise ValueError(
            f"`{name}` must be (heads, examples) with at least one example, "
            f"got shape {matrix.shape}."
        )
    return matrix


def _paired_differences(start, end, start_name, end_name) -> np.ndarray:
    start = _as_matrix(start, start_name)
    end = _as_matrix(end, end_name)
    if start.shape != end.shape:
        raise ValueError(
            f"`{start_name}` {start.shape} and `{end_name}` {end.shape} must "
            "hold the same heads and examples (paired measurements)."
        )
    return start - end


def analytic_standard_errors(
    holdout_start, holdout_end, train_start, train_end
) -> Tuple[np.ndarray, np.ndarray]:
    """Standard errors of ΔG and ΔO from the sample variance of the paired
    per-example differences: `SE(ΔG) = s_V / sqrt(n_V)` and
    `SE(ΔO) = sqrt(s_V² / n_V + s_T'² / n_T')` (`ddof=1`; 0 for one
    example).

    Args:
        holdout_start, holdout_end: per-example values on `V`, shape
            `(heads, n_V)` (or `(n_V,)` for one head), at `N` and `N + n`.
        train_start, train_end: the same on `T'`, `(heads, n_T')`.

    Returns:
        `(delta_g_se, delta_o_se)`, float64 arrays of shape `(heads,)`.
    """
    holdout = _paired_differences(
        holdout_start, holdout_end, "holdout_start", "holdout_end"
    )
    train = _paired_differences(
        train_start, train_end, "train_start", "train_end"
    )

    def variance_of_mean(differences):
        count = differences.shape[1]
        if count < 2:
            return np.zeros(differences.shape[0])
        return differences.var(axis=1, ddof=1) / count

    holdout_var = variance_of_mean(holdout)
    return np.sqrt(holdout_var), np.sqrt(holdout_var + variance_of_mean(train))


def bootstrap_standard_errors(
    holdout_start,
    holdout_end,
    train_start,
    train_end,
    num_resamples: int = DEFAULT_RESAMPLES,
    seed: Optional[int] = 0,
) -> Tuple[np.ndarray, np.ndarray]:
    """Paired bootstrap standard errors of ΔG and ΔO.

    Each resample draws `n_V` holdout rows and `n_T'` train-subset rows with
    replacement (the same rows for every head) and recomputes ΔG and ΔO; the
    standard errors are their standard deviations over the resamples. They
    are the same for any order of the examples.

    Args:
        holdout_start, holdout_end: per-example values on `V`, shape
            `(heads, n_V)` (or `(n_V,)`), at `N` and `N + n`.
        train_start, train_end: the same on `T'`, `(heads, n_T')`.
        num_resamples: number of bootstrap resamples (>= 2).
        seed: seed of the resampling.

    Returns:
        `(delta_g_se, delta_o_se)`, float64 arrays of shape `(heads,)`.

    Example:

    >>> rng = np.random.default_rng(0)
    >>> start = rng.normal(1.0, 0.3, size=(2, 400))
    >>> end = start - 0.1 + rng.normal(0, 0.2, size=(2, 400))
    >>> g_se, o_se = bootstrap_standard_errors(start, end, start, start)
    >>> bool(np.all(np.abs(g_se - 0.01) < 0.002))
    True
    """
    if int(num_resamples) < 2:
        raise ValueError(
            f"`num_resamples` must be >= 2, got {num_resamples}."
        )
    holdout = _paired_differences(
        holdout_start, holdout_end, "holdout_start", "holdout_end"
    )
    train = _paired_differences(
        train_start, train_end, "train_start", "train_end"
    )
    if holdout.shape[0] != train.shape[0]:
        raise ValueError(
            f"The holdout has {holdout.shape[0]} heads but the train subset "
            f"has {train.shape[0]}."
        )
    rng = np.random.default_rng(seed)

    def resampled_means(differences):
        # Rows in a canonical order (sorted by their values): the errors
        # do not depend on the order the examples were read in.
        differences = differences[:, np.lexsort(differences[::-1])]
        count = differences.shape[1]
        # Counts of each row in each resample: (resamples, count).
        draws = rng.multinomial(
            count, np.full(count, 1.0 / count), size=int(num_resamples)
        )
        return draws @ differences.T / count  # (resamples, heads)

    gain = resampled_means(holdout)  # ΔG per resample
    delta_o = resampled_means(train) - gain  # ΔO = mean_T'(d) - mean_V(d)
    return gain.std(axis=0, ddof=1), delta_o.std(axis=0, ddof=1)
