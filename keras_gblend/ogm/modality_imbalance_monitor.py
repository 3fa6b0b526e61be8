"""`ModalityImbalanceMonitor`: OGM-GE's premise check during `fit` (see
`keras_gblend.ogm.modality_imbalance` for what it measures and why)."""

import warnings
from typing import Any, Dict, List, Optional

import keras

from keras_gblend.gblend import stratified_subset
from keras_gblend.gblend.blend_estimator import BlendEstimator
from keras_gblend.inputs.input_checks import check_integer, check_range
from keras_gblend.evaluation import linear_probe
from keras_gblend.ogm.modality_imbalance import (
    DEFAULT_MARGIN,
    DEFAULT_THRESHOLD,
    DO_NOT,
    MODULATE,
    ImbalanceDiagnosis,
    diagnose,
)


class ModalityImbalanceMonitor(keras.callbacks.Callback):
    """Checks OGM-GE's premise once, midway, and says whether to modulate.

    After `check_epoch` epochs it trains each modality alone for `epochs`
    epochs (default: `check_epoch`, as long as the model has trained) on
    `fraction` of the training data (a clone; the model is not changed),
    and measures on the holdout what each reaches alone and, with a linear
    probe on frozen features (`kg.evaluation.linear_probe`), how much each
    encoder has learned in the fused model and in the clone trained alone.
    `diagnose` then gives the verdict: `"modulate"` when a modality OGM-GE
    does not slow is informative and left under-trained by fusion (its
    fused probe `margin` below its probe alone), else `"do not
    modulate"` (a `UserWarning`; a stronger one when the slowed modality is
    the only informative one).

    The diagnosis is kept in `diagnosis` and logged from then on:
    `ogm/alone_accuracy/<m>`, `ogm/probe_accuracy/<m>`,
    `ogm/alone_probe_accuracy/<m>`, `ogm/premise_fails` (1 for "do not").

    Args:
        holdout: held-out data `(x, y)` or a dataset, as for G-Blend.
        train: training data; default: the data of the `fit` call.
        check_epoch: epochs to train before checking (>= 1). The checked
            epoch must lie in the model's OGM-GE window (`fit` refuses
            it otherwise, before training); a `fit` that ends before it
            warns.
        epochs: epochs each modality trains alone (default `check_epoch`).
        fraction: fraction of the training data they train on (the probes
            too).
        threshold: see `diagnose`.
        margin: see `diagnose`.
        probe: measure the linear probes (False: the verdict rests on
            what each modality reaches alone, as before probes).
        batch_size: batch size for array data.
        seed: subset and shuffle seed.
        recalibrate_batch_norm: recompute the clones' BatchNormalization
            statistics before measuring them (see `kg.BlendEstimator`).

    Example:

    ```python
    monitor = kg.ModalityImbalanceMonitor((x_val, y_val), check_epoch=10)
    model.fit(x, y, epochs=30, callbacks=[monitor])
    monitor.diagnosis.verdict  # "modulate" or "do not modulate"
    ```
    """

    # `BlendedModel.fit` runs it before the callbacks that read the logs.
    writes_epoch_logs = True

    def __init__(self, holdout, train=None, check_epoch: int = 1,
                 epochs: Optional[int] = None, fraction: float = 0.5,
                 threshold: float = DEFAULT_THRESHOLD,
                 batch_size: Optional[int] = None, seed: Optional[int] = 0,
                 margin: float = DEFAULT_MARGIN, probe: bool = True,
                 recalibrate_batch_norm: bool = True):
        super().__init__()
        self.check_epoch = check_integer("check_epoch", check_epoch, 1)
        self.epochs = check_integer("epochs", epochs, 1, optional=True)
        stratified_subset.check_fraction(fraction, "fraction")
        check_range("threshold", threshold, 0, 1, low_open=True)
        check_range("margin", margin, 0, 1)
        self.holdout = holdout
        self.train = train
        self.fraction = float(fraction)
        self.threshold = float(threshold)
        self.margin = float(margin)
        self.probe = bool(probe)
        self.recalibrate_batch_norm = bool(recalibrate_batch_norm)
        self.batch_size = batch_size
        self.seed = seed
        self.diagnosis: Optional[ImbalanceDiagnosis] = None
        self._ratios: Dict[str, List[float]] = {}

    def get_config(self) -> Dict[str, Any]:
        return {"check_epoch": self.check_epoch, "epochs": self.epochs,
                "fraction": self.fraction, "threshold": self.threshold,
                "batch_size": self.batch_size, "seed": self.seed,
                "margin": self.margin, "probe": self.probe,
                "recalibrate_batch_norm": self.recalibrate_batch_norm}

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
        self._check_the_check_epoch(model.modulation)
        self._ratios = {m: [] for m in model.modalities}

    def _check_the_check_epoch(self, modulation):
        """Refuses a check that cannot see OGM-GE: outside the modulation
        window every coefficient is 1, and the check would read "slowed
        no modality". Warns if this `fit` ends before the check (a later
        `fit` that continues the run may still reach it)."""
        epochs = (self.params or {}).get("epochs")
        if (epochs is not None and self.check_epoch > epochs
                and self.diagnosis is None):
            warnings.warn(
                f"ModalityImbalanceMonitor: `check_epoch={self.check_epoch}` "
                f"is after the last of the {epochs} epochs this `fit` "
                f"trains: this `fit` will not check the premise.",
                stacklevel=2)
        epoch = self.check_epoch - 1  # the 0-based epoch the check ends
        if (not hasattr(modulation, "in_window")
                or bool(modulation.in_window(epoch))):
            return
        start, end = modulation.start_epoch, modulation.end_epoch
        window = f"{start} to {end}" if end is not None else f"{start} on"
        raise ValueError(
            f"ModalityImbalanceMonitor: `check_epoch={self.check_epoch}` "
            f"checks after epoch index {epoch}, outside the model's OGM-GE "
            f"window (`start_epoch`/`end_epoch`: epochs {window}), where "
            f"no modality is slowed. Pick `check_epoch` between "
            f"{start + 1} and "
            f"{end + 1 if end is not None else 'the last epoch'}.")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        model = self.model
        for m in model.modalities:
            value = logs.get(f"ogm/ratio/{m}")
            if value is not None:
                self._ratios[m].append(float(value))
        if epoch + 1 == self.check_epoch and self.diagnosis is None:
            coefficient = {m: float(logs.get(f"ogm/coefficient/{m}", 1.0))
                           for m in model.modalities}
            slowed_share = {m: float(logs[f"ogm/slowed/{m}"])
                            for m in model.modalities
                            if f"ogm/slowed/{m}" in logs}
            self.diagnosis = self._diagnose(coefficient, slowed_share,
                                            epoch + 1)
            if self.diagnosis.warning:
                warnings.warn(self.diagnosis.warning, stacklevel=2)
            elif self.diagnosis.verdict == DO_NOT:
                warnings.warn(
                    f"OGM-GE premise check after epoch {epoch + 1}: do not "
                    f"modulate: {self.diagnosis.reason}", stacklevel=2)
        if self.diagnosis is not None:
            for name in ("alone_accuracy", "probe_accuracy",
                         "alone_probe_accuracy"):
                for m, value in getattr(self.diagnosis, name).items():
                    logs[f"ogm/{name}/{m}"] = value
            logs["ogm/premise_fails"] = float(
                self.diagnosis.verdict != MODULATE)

    def _diagnose(self, coefficient, slowed_share,
                  epoch) -> ImbalanceDiagnosis:
        """Trains the modalities alone, probes the encoders, diagnoses."""
        model = self.model
        estimator = BlendEstimator(
            model,
            self.train if self.train is not None
            else model.current_training_rows("ModalityImbalanceMonitor"),
            self.holdout,
            estimation_fraction=self.fraction, metric="accuracy",
            batch_size=self.batch_size or (
                model.current_fit_data and model.current_fit_data.batch_size),
            seed=self.seed, keep_clones=False,
            recalibrate_batch_norm=self.recalibrate_batch_norm,
        )
        probes, alone_probes = {}, {}

        def probe_clone(clone, modalities):
            alone_probes.update(self._probes(clone, modalities, estimator))

        errors = estimator.unimodal_holdout_values(
            self.epochs or self.check_epoch,
            inspect=probe_clone if self.probe else None)
        if self.probe:
            probes = self._probes(model, model.modalities, estimator)
        estimator.release()
        return diagnose(
            {m: 1.0 - errors[m] for m in model.modalities}, coefficient,
            model.num_classes, self.threshold, ratio_trend=self._ratios,
            epoch=epoch, probe_accuracy=probes,
            alone_probe_accuracy=alone_probes, margin=self.margin,
            slowed_share=slowed_share)

    def _probes(self, model, modalities, estimator) -> Dict[str, float]:
        """Linear probes of `model`'s encoders of `modalities`, trained on
        the estimator's subset, scored on the holdout."""
        return linear_probe.probe_every_encoder(
            model, modalities, estimator.subset, self.holdout,
            self.model.num_classes, batch_size=estimator.batch_size,
            seed=self.seed or 0)
