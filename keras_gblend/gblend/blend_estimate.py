"""`BlendEstimate`: one G-Blend estimate, and how it follows from the
per-example measurements before and after the clones trained (means, ΔO,
ΔG, OGR, their bootstrap standard errors, the weights)."""

import dataclasses
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from keras_gblend.gblend import measurement_noise, ogr
from keras_gblend.gblend import presets as gblend_presets
from keras_gblend.model.blend_state import LOGGED_FIGURES

# Where an estimate's time goes (`BlendEstimate.seconds`): building or
# reloading clones, training them, the per-example measurements on `V` and
# `T'`, and the bootstrap and blend.
SECONDS = ("clones", "training", "measuring", "bootstrap")


@dataclasses.dataclass
class BlendEstimate:
    """Result of one G-Blend estimation.

    Attributes:
        head_names: heads, in model order.
        weights: blend weights (sum to 1); `None` when no head improved on
            the holdout and the caller asked to keep its weights.
        delta_o: change in overfitting per head.
        delta_g: generalization gain per head.
        ogr: `|delta_o / delta_g|` per head.
        train_start, holdout_start, train_end, holdout_end: the measured
            mean losses (or errors) on `T'` and `V` before and after
            training.
        metric: `"loss"` or `"accuracy"` (measured as error `1 - acc`).
        fused: whether uni-modal heads were trained in one clone run.
        delta_g_se, delta_o_se: bootstrap standard errors of `delta_g` and
            `delta_o` (NaN when the noise was not estimated).
        generalizing: per head, whether its `delta_g` is clearly above its
            noise (`delta_g > noise_z * delta_g_se`).
        previous_weights: the weights in use before the estimate; heads
            whose gain is within noise keep theirs (see
            `ogr.updated_blend_weights`).
        seconds: wall time per phase (`SECONDS`, plus `"subset"` for a
            one-shot `estimate_blend_weights`).
    """

    head_names: Tuple[str, ...]
    weights: Optional[np.ndarray]
    delta_o: np.ndarray
    delta_g: np.ndarray
    ogr: np.ndarray
    train_start: np.ndarray
    holdout_start: np.ndarray
    train_end: np.ndarray
    holdout_end: np.ndarray
    metric: str
    fused: bool
    delta_g_se: Optional[np.ndarray] = None
    delta_o_se: Optional[np.ndarray] = None
    generalizing: Optional[np.ndarray] = None
    previous_weights: Optional[np.ndarray] = None
    seconds: Dict[str, float] = dataclasses.field(default_factory=dict)

    def weights_dict(self) -> Optional[Dict[str, float]]:
        """`{head: weight}`, or `None` (see `weights`)."""
        if self.weights is None:
            return None
        return dict(zip(self.head_names, self.weights.tolist()))

    def as_logs(self) -> Dict[str, float]:
        """Flat `{"gblend/<figure>/<head>": value}` for Keras logs."""
        logs = {}
        for figure in LOGGED_FIGURES:
            values = getattr(self, figure)
            if values is None:
                values = np.full(len(self.head_names), np.nan)
            for head, value in zip(self.head_names, values):
                logs[f"gblend/{figure}/{head}"] = float(value)
        return logs


def blend_estimate(
    heads: Sequence[str],
    holdout_start,
    train_start,
    holdout_end,
    train_end,
    metric: str = "loss",
    fused: bool = False,
    min_delta_o: float = ogr.DEFAULT_MIN_DELTA_O,
    noise_z: Optional[float] = ogr.DEFAULT_NOISE_Z,
    bootstrap_resamples: int = measurement_noise.DEFAULT_RESAMPLES,
    seed: Optional[int] = 0,
    previous_weights=None,
    on_no_generalization: str = "raise",
    update_rule: str = "noise_aware",
) -> BlendEstimate:
    """The `BlendEstimate` of per-example measurements at `N` and `N + n`.

    Args:
        heads: head names.
        holdout_start, holdout_end: per-example values on `V`,
            `(heads, n_V)`, before and after the clones trained;
            `holdout_end` may be `(repeats, heads, n_V)`, one row per
            repeat of the clones' training.
        train_start, train_end: the same on `T'`, `(heads, n_T')`.
        metric, fused, min_delta_o, noise_z, bootstrap_resamples,
            on_no_generalization, update_rule: see `estimate_blend_weights`.
        seed: bootstrap seed.
        previous_weights: the weights in use; `None`: uniform (then the
            weights are Proposition 1's over the clearly generalizing
            heads).

    Returns:
        A `BlendEstimate` whose means, ΔO, ΔG, OGR and weights are `ogr`'s
        functions of these measurements (the end values averaged over the
        repeats).
    """
    if update_rule not in gblend_presets.UPDATE_RULES:
        raise ValueError(
            f"`update_rule` must be one of {gblend_presets.UPDATE_RULES}, "
            f"got {update_rule!r}.")
    holdout_start, holdout_end, train_start, train_end = (
        np.asarray(v, dtype=np.float64)
        for v in (holdout_start, holdout_end, train_start, train_end)
    )
    if holdout_end.ndim == 2:  # one training of the clones
        holdout_end, train_end = holdout_end[None], train_end[None]
    repeated_means = [v.mean(axis=-1) for v in (holdout_end, train_end)]
    holdout_end, train_end = holdout_end.mean(axis=0), train_end.mean(axis=0)
    means = [v.mean(axis=1) for v in
             (holdout_start, train_start, holdout_end, train_end)]
    delta_o = ogr.delta_overfitting(*means)
    delta_g = ogr.delta_generalization(means[0], means[2])
    delta_g_se = delta_o_se = None
    if noise_z is not None:
        delta_g_se, delta_o_se = _standard_errors(
            holdout_start, holdout_end, train_start, train_end,
            repeated_means, means, bootstrap_resamples, seed)
    if previous_weights is None:
        previous_weights = np.full(len(heads), 1.0 / len(heads))
    previous_weights = np.asarray(previous_weights, dtype=np.float64)
    rule = (ogr.updated_blend_weights if update_rule == "noise_aware"
            else lambda _, *args, **kwargs: ogr.blend_weights(*args, **kwargs))
    try:
        weights = rule(
            previous_weights, delta_g, delta_o, min_delta_o=min_delta_o,
            head_names=heads, delta_g_se=delta_g_se, delta_o_se=delta_o_se,
            noise_z=noise_z or 0.0,
        )
    except ogr.NoGeneralizationError:
        if on_no_generalization == "raise":
            raise
        weights = None
    return BlendEstimate(
        head_names=tuple(heads),
        weights=weights,
        delta_o=delta_o,
        delta_g=delta_g,
        ogr=ogr.overfitting_to_generalization_ratio(delta_o, delta_g),
        train_start=means[1],
        holdout_start=means[0],
        train_end=means[3],
        holdout_end=means[2],
        metric=metric,
        fused=fused,
        delta_g_se=delta_g_se,
        delta_o_se=delta_o_se,
        generalizing=ogr.generalizing_heads(
            delta_g, delta_g_se, noise_z or 0.0
        ),
        previous_weights=previous_weights,
    )


def _standard_errors(holdout_start, holdout_end, train_start, train_end,
                     repeated_means, means, bootstrap_resamples, seed):
    """`(SE(ΔG), SE(ΔO))`: the paired bootstrap's over the examples, plus,
    with repeats of the clones' training, the spread of each repeat's ΔG
    and ΔO as the error of their mean (how the clones happened to
    train)."""
    delta_g_se, delta_o_se = measurement_noise.bootstrap_standard_errors(
        holdout_start, holdout_end, train_start, train_end,
        num_resamples=bootstrap_resamples, seed=seed)
    repeats = len(repeated_means[0])
    if repeats > 1:
        gains = means[0] - repeated_means[0]
        changes = ogr.delta_overfitting(
            means[0], means[1], repeated_means[0], repeated_means[1])
        delta_g_se = np.hypot(
            delta_g_se, gains.std(axis=0, ddof=1) / np.sqrt(repeats))
        delta_o_se = np.hypot(
            delta_o_se, changes.std(axis=0, ddof=1) / np.sqrt(repeats))
    return delta_g_se, delta_o_se
