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

    >>> informativeness(0.55, 10)
    0.5
    """
    chance = 1.0 / num_classes
    return max(0.0, (accuracy - chance) / (1.0 - chance))


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
    """

    epoch: int
    slowed: Optional[str]
    alone_accuracy: Dict[str, float]
    informativeness: Dict[str, float]
    coefficient: Dict[str, float]
    ratio_trend: Dict[str, List[float]]
    warning: Optional[str]

    def as_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def diagnose(alone_accuracy: Dict[str, float], coefficient: Dict[str, float],
             num_classes: int, threshold: float = DEFAULT_THRESHOLD,
             ratio_trend: Optional[Dict[str, List[float]]] = None,
             epoch: int = 0) -> ImbalanceDiagnosis:
    """Judges OGM-GE's premise from what each modality reaches alone.

    Args:
        alone_accuracy: `{modality: holdout accuracy trained alone}`.
        coefficient: `{modality: mean OGM coefficient}` (1 = not slowed).
        num_classes: classes of the task.
        threshold: the slowed modality counts as the only informative one
            when every other modality's informativeness is below
            `threshold` times its own.
        ratio_trend: optional `{modality: epoch-mean ratios}`, kept.
        epoch: kept.

    Returns:
        An `ImbalanceDiagnosis`.

    Example:

    >>> diagnose({"audio": 0.88, "visual": 0.3}, {"audio": 0.5,
    ...           "visual": 1.0}, num_classes=10).warning is not None
    True
    """
    info = {m: informativeness(a, num_classes) for m, a in alone_accuracy.items()}
    slowed = min(coefficient, key=coefficient.get)
    if coefficient[slowed] >= 1.0:
        slowed = None
    warning = None
    others = [m for m in info if m != slowed]
    if slowed is not None and info[slowed] > 0 and all(
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
    return ImbalanceDiagnosis(
        epoch=epoch, slowed=slowed, alone_accuracy=dict(alone_accuracy),
        informativeness=info, coefficient=dict(coefficient),
        ratio_trend=dict(ratio_trend or {}), warning=warning,
    )


def __getattr__(name):
    # `kg.modality_imbalance.ModalityImbalanceMonitor`, as before the
    # callback got a module of its own.
    if name == "ModalityImbalanceMonitor":
        from keras_gblend.ogm.modality_imbalance_monitor import (
            ModalityImbalanceMonitor)
        return ModalityImbalanceMonitor
    raise AttributeError(name)
