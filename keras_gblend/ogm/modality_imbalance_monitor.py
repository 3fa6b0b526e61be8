"""`ModalityImbalanceMonitor`: OGM-GE's premise check during `fit` (see
`keras_gblend.ogm.modality_imbalance` for what it measures and why)."""

import warnings
from typing import Any, Dict, List, Optional

import keras

from keras_gblend.gblend import stratified_subset
from keras_gblend.gblend.blend_estimator import BlendEstimator
from keras_gblend.inputs.input_checks import check_integer, check_range
from keras_gblend.ogm.modality_imbalance import (
    DEFAULT_THRESHOLD,
    ImbalanceDiagnosis,
    diagnose,
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
