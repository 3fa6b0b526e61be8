"""Does OGM-GE fit this data? A check of its premise.

OGM-GE slows the modality that dominates the fused model so that the others
can catch up. That pays when the others are *under-optimized*: trained on
their own they would do well. When a slowed modality is the only
informative one, it only loses (weak-visual AV-digits: OGM-GE 79.0 against
naive fusion's 88.0, audio held at 0.33–0.60 of its gradient all run).

`ModalityImbalanceMonitor` measures the premise once, midway: it trains
each modality's encoder and head *alone*, from the model's current
weights, for as many epochs as the model has trained so far, on a
stratified half of the training data (the uni-modal clone of a G-Blend
estimate), and compares what each reaches on the holdout with the
modality OGM-GE slows. (A short check misleads: under OGM-GE the slowed
modality's rival is by design under-trained, and two epochs on a quarter
of the data left clean AV-digits' audio at 17.5 %.) In terms of
informativeness, `(accuracy - chance) / (1 - chance)`: when every other
modality reaches, alone, less than `threshold` (default 0.5) of the slowed
modality's informativeness, the slowed modality is effectively the only
informative one and the monitor warns. The same figures and the trend of
each discrepancy ratio are kept in `diagnosis` for a run's summary.
"""

import dataclasses
from typing import Any, Dict, List, Optional

DEFAULT_THRESHOLD = 0.5


def informativeness(accuracy: float, num_classes: int) -> float:
    """`(accuracy - 1/K) / (1 - 1/K)`, floored at 0: 0 at chance, 1 when
    perfect.

    Example:

    >>> round(informativeness(0.55, 10), 6)
    0.5
    """
    chance = 1.0 / num_classes
    return max(0.0, (accuracy - chance) / (1.0 - chance))


MODULATE = "modulate"
DO_NOT = "do not modulate"
# An encoder is under-trained by fusion when its linear probe in the fused
# model is this far (accuracy) below its probe trained alone.
DEFAULT_MARGIN = 0.05


@dataclasses.dataclass
class ImbalanceDiagnosis:
    """What `ModalityImbalanceMonitor` found.

    Attributes:
        epoch: the epoch (1-based count) after which it was measured.
        slowed: the modality OGM-GE slowed most (lowest mean coefficient),
            or `None` if it slowed none.
        alone_accuracy: per modality, holdout accuracy trained alone.
        informativeness: per modality, from `alone_accuracy`.
        coefficient: per modality, mean OGM coefficient of that epoch.
        ratio_trend: per modality, the epoch-mean discrepancy ratios so far.
        warning: the message, or `None` when the premise holds.
        probe_accuracy: per modality, a linear probe of the fused model's
            encoder (empty when not measured).
        alone_probe_accuracy: per modality, a linear probe of the same
            encoder trained alone (empty when not measured).
        under_training: per modality, `alone_probe_accuracy -
            probe_accuracy`: what fusion left unlearned.
        slowed_share: per modality, the share of that epoch's steps on
            which OGM-GE slowed it (empty when not logged). Near 1 for one
            modality: it dominates consistently; shared: the dominant one
            changes from batch to batch.
        verdict: `"modulate"` (another modality is informative and left
            under-trained: OGM-GE's regime) or `"do not modulate"`.
        reason: why, in one sentence.
    """

    epoch: int
    slowed: Optional[str]
    alone_accuracy: Dict[str, float]
    informativeness: Dict[str, float]
    coefficient: Dict[str, float]
    ratio_trend: Dict[str, List[float]]
    warning: Optional[str]
    probe_accuracy: Dict[str, float] = dataclasses.field(default_factory=dict)
    alone_probe_accuracy: Dict[str, float] = dataclasses.field(
        default_factory=dict)
    under_training: Dict[str, float] = dataclasses.field(default_factory=dict)
    slowed_share: Dict[str, float] = dataclasses.field(default_factory=dict)
    verdict: str = DO_NOT
    reason: str = ""

    def as_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def diagnose(alone_accuracy: Dict[str, float], coefficient: Dict[str, float],
             num_classes: int, threshold: float = DEFAULT_THRESHOLD,
             ratio_trend: Optional[Dict[str, List[float]]] = None,
             epoch: int = 0,
             probe_accuracy: Optional[Dict[str, float]] = None,
             alone_probe_accuracy: Optional[Dict[str, float]] = None,
             margin: float = DEFAULT_MARGIN,
             slowed_share: Optional[Dict[str, float]] = None
             ) -> ImbalanceDiagnosis:
    """Judges OGM-GE's premise: a modality it does not slow is informative
    alone and left under-trained by fusion.

    Args:
        alone_accuracy: `{modality: holdout accuracy trained alone}`.
        coefficient: `{modality: mean OGM coefficient}` (1 = not slowed).
        num_classes: classes of the task.
        threshold: the slowed modality counts as the only informative one
            when every other modality's informativeness is below
            `threshold` times its own.
        ratio_trend: optional `{modality: epoch-mean ratios}`, kept.
        epoch: kept.
        probe_accuracy: `{modality: linear probe of the fused model's
            encoder}`; without it (and `alone_probe_accuracy`) the verdict
            rests on informativeness alone.
        alone_probe_accuracy: `{modality: linear probe of the encoder
            trained alone}`.
        margin: accuracy by which a probe must fall short of its trained-
            alone probe for the encoder to count as under-trained.
        slowed_share: optional `{modality: share of steps slowed}`, kept.

    Returns:
        An `ImbalanceDiagnosis`: `verdict` is `"do not modulate"` when OGM-GE
        slowed no modality, when the slowed one is the only informative
        one (then also `warning`), or when no other informative encoder
        is under-trained by `margin`; else `"modulate"`.

    Example:

    >>> diagnose({"audio": 0.88, "visual": 0.3}, {"audio": 0.5,
    ...           "visual": 1.0}, num_classes=10).warning is not None
    True
    >>> diagnose({"a": 0.9, "v": 0.8}, {"a": 0.3, "v": 1.0}, 10,
    ...          probe_accuracy={"a": 0.9, "v": 0.6},
    ...          alone_probe_accuracy={"a": 0.9, "v": 0.8}).verdict
    'modulate'
    """
    info = {m: informativeness(a, num_classes) for m, a in alone_accuracy.items()}
    slowed = min(coefficient, key=coefficient.get)
    if coefficient[slowed] >= 1.0:
        slowed = None
    probes, alone_probes = dict(probe_accuracy or {}), dict(
        alone_probe_accuracy or {})
    under = {m: alone_probes[m] - probes[m] for m in probes
             if m in alone_probes}
    warning = None
    others = [m for m in info if m != slowed]
    if slowed is None:
        verdict, reason = DO_NOT, "OGM-GE slowed no modality."
    elif info[slowed] > 0 and all(
            info[m] < threshold * info[slowed] for m in others):
        figures = ", ".join(f"{m} {alone_accuracy[m]:.3f}" for m in info)
        warning = (
            f"OGM-GE is slowing {slowed!r} (mean coefficient "
            f"{coefficient[slowed]:.2f}), but trained alone the other "
            f"modalities reach less than {threshold:g} of its gain over "
            f"chance (holdout accuracy alone: {figures}; chance "
            f"{1.0 / num_classes:.3f}). OGM-GE's premise, that the weaker "
            "modality is worth waiting for, does not hold: modulation is "
            "likely to cost accuracy here. Consider naive fusion, a smaller "
            "`alpha`, or G-Blend."
        )
        verdict, reason = DO_NOT, (
            f"{slowed!r}, the modality OGM-GE slows, is the only "
            "informative one.")
    else:
        gaps = ", ".join(f"{m} {g:+.3f}" for m, g in under.items()) or (
            "not measured")
        waiting = [m for m in others if under.get(m, margin) >= margin]
        if waiting:
            verdict, reason = MODULATE, (
                f"{waiting} informative alone and left under-trained by "
                f"fusion while {slowed!r} dominates (probe alone minus "
                f"probe fused: {gaps}).")
        else:
            verdict, reason = DO_NOT, (
                f"no encoder but {slowed!r}'s is left under-trained by "
                f"fusion (probe alone minus probe fused: {gaps}; margin "
                f"{margin:g}): modulation has nothing to recover.")
    return ImbalanceDiagnosis(
        epoch=epoch, slowed=slowed, alone_accuracy=dict(alone_accuracy),
        informativeness=info, coefficient=dict(coefficient),
        ratio_trend=dict(ratio_trend or {}), warning=warning,
        probe_accuracy=probes, alone_probe_accuracy=alone_probes,
        under_training=under, slowed_share=dict(slowed_share or {}),
        verdict=verdict, reason=reason,
    )


def __getattr__(name):
    # `kg.modality_imbalance.ModalityImbalanceMonitor`, as before the
    # callback got a module of its own.
    if name == "ModalityImbalanceMonitor":
        from keras_gblend.ogm.modality_imbalance_monitor import (
            ModalityImbalanceMonitor)
        return ModalityImbalanceMonitor
    raise AttributeError(name)
