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
import warnings
from typing import Any, Dict, List, Optional

import keras

from keras_gblend import stratified_subset
from keras_gblend.input_checks import check_integer, check_range
from keras_gblend.estimation import BlendEstimator

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


class ModalityImbalanceMonitor(keras.callbacks.Callback):
    """Warns when OGM-GE slows the only informative modality.

    After `check_epoch` epochs it trains each modality alone for `epochs`
    epochs (default: `check_epoch`, as long as the model has trained) on
    `fraction` of the training data (a clone; the model is not changed), measures each one's holdout accuracy and calls `diagnose`
    with the OGM coefficients of that epoch. The diagnosis is logged as
    `ogm/alone_accuracy/<modality>` and `ogm/premise_fails` (1 or 0) from
    then on, kept in `diagnosis`, and a failed premise is a `UserWarning`.

    Args:
        holdout: held-out data `(x, y)` or a dataset, as for G-Blend.
        train: training data; default: the data of the `fit` call.
        check_epoch: epochs to train before checking (>= 1).
        epochs: epochs each modality trains alone (default `check_epoch`).
        fraction: fraction of the training data they train on.
        threshold: see `diagnose`.
        batch_size: batch size for array data.
        seed: subset and shuffle seed.

    Example:

    ```python
    model.fit(x, y, epochs=30, callbacks=[
        kg.ModalityImbalanceMonitor((x_val, y_val))])
    ```
    """

    # `BlendedModel.fit` runs it before the callbacks that read the logs.
    writes_epoch_logs = True

    def __init__(self, holdout, train=None, check_epoch: int = 1,
                 epochs: Optional[int] = None, fraction: float = 0.5,
                 threshold: float = DEFAULT_THRESHOLD,
                 batch_size: Optional[int] = None, seed: Optional[int] = 0):
        super().__init__()
        self.check_epoch = check_integer("check_epoch", check_epoch, 1)
        self.epochs = check_integer("epochs", epochs, 1, optional=True)
        stratified_subset.check_fraction(fraction, "fraction")
        check_range("threshold", threshold, 0, 1, low_open=True)
        self.holdout = holdout
        self.train = train
        self.fraction = float(fraction)
        self.threshold = float(threshold)
        self.batch_size = batch_size
        self.seed = seed
        self.diagnosis: Optional[ImbalanceDiagnosis] = None
        self._ratios: Dict[str, List[float]] = {}

    def get_config(self) -> Dict[str, Any]:
        return {"check_epoch": self.check_epoch, "epochs": self.epochs,
                "fraction": self.fraction, "threshold": self.threshold,
                "batch_size": self.batch_size, "seed": self.seed}

    def on_train_begin(self, logs=None):
        model = self.model
        if getattr(model, "modulator", None) is None:
            raise ValueError(
                "ModalityImbalanceMonitor checks OGM-GE's premise: the model "
                "has no `modulation=kg.OGMGE(...)`."
            )
        if model.num_classes is None:
            raise ValueError(
                "ModalityImbalanceMonitor needs a multi-class joint head "
                "(its accuracy against chance)."
            )
        self._ratios = {m: [] for m in model.modalities}

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        model = self.model
        for m in model.modalities:
            value = logs.get(f"ogm/ratio/{m}")
            if value is not None:
                self._ratios[m].append(float(value))
        if epoch + 1 == self.check_epoch and self.diagnosis is None:
            estimator = BlendEstimator(
                model,
                self.train if self.train is not None
                else model.current_training_rows("ModalityImbalanceMonitor"),
                self.holdout,
                estimation_fraction=self.fraction, metric="accuracy",
                batch_size=self.batch_size or (
                    model.current_fit_data and model.current_fit_data.batch_size),
                seed=self.seed, keep_clones=False,
            )
            errors = estimator.unimodal_holdout_values(
                self.epochs or self.check_epoch)
            estimator.release()
            coefficient = {
                m: float(logs.get(f"ogm/coefficient/{m}", 1.0))
                for m in model.modalities
            }
            self.diagnosis = diagnose(
                {m: 1.0 - errors[m] for m in model.modalities}, coefficient,
                model.num_classes, self.threshold,
                ratio_trend=self._ratios, epoch=epoch + 1,
            )
            if self.diagnosis.warning:
                warnings.warn(self.diagnosis.warning, stacklevel=2)
        if self.diagnosis is not None:
            for m, value in self.diagnosis.alone_accuracy.items():
                logs[f"ogm/alone_accuracy/{m}"] = value
            logs["ogm/premise_fails"] = float(self.diagnosis.warning is not None)
