"""`OGRMonitor`: per-head overfitting and generalization, every epoch."""

from typing import Any, Dict, Optional

import keras
import numpy as np

from keras_gblend.inputs import input_data
from keras_gblend.gblend import ogr
from keras_gblend.model.blended_model import BlendedModel
from keras_gblend.inputs.holdout import validate_holdout


@keras.saving.register_keras_serializable(package="keras_gblend")
class OGRMonitor(keras.callbacks.Callback):
    """Logs each head's overfitting, generalization and OGR every epoch,
    without changing training.

    At the end of every epoch it measures each head's loss on the holdout
    `V` and on a fixed train subset `T'`, and adds to `logs` (so History,
    CSVLogger and TensorBoard record them; put it before those):
    `ogr_monitor/overfitting/<head>` (`L^V - L^T'`),
    `ogr_monitor/delta_o/<head>` and `ogr_monitor/delta_g/<head>` (change
    since the previous epoch) and `ogr_monitor/ogr/<head>` (`|ΔO/ΔG|`; NaN
    at the first epoch).

    Args:
        holdout: holdout data (`(x, y)` arrays or a dataset).
        train_subset: the train subset `T'` (same forms).
        batch_size: batch size for array data.

    Example:

    ```python
    model.fit(x, y, epochs=20, callbacks=[
        kg.OGRMonitor(holdout, train_subset=(x[:256], y[:256]))])
    ```
    """

    # `BlendedModel.fit` runs it before the callbacks that read the logs.
    writes_epoch_logs = True

    def __init__(self, holdout, train_subset, batch_size: Optional[int] = None):
        super().__init__()
        validate_holdout(holdout)
        validate_holdout(train_subset)
        self.holdout = holdout
        self.train_subset = train_subset
        self.batch_size = batch_size
        self._previous = None

    def get_config(self) -> Dict[str, Any]:
        """`batch_size` only: pass the data again to `from_config`."""
        return {"batch_size": self.batch_size}

    def on_train_begin(self, logs=None):
        if not isinstance(self.model, BlendedModel):
            raise TypeError(
                f"OGRMonitor needs a kg.BlendedModel, got {type(self.model).__name__}."
            )
        self.model.check_data(self.holdout, "The holdout")
        self.model.check_data(self.train_subset, "The train subset")
        self._holdout = input_data.dataset_factory(self.holdout, self.batch_size)()
        self._subset = input_data.dataset_factory(
            self.train_subset, self.batch_size
        )()
        self._previous = None

    def _head_losses(self, dataset) -> np.ndarray:
        results = self.model.evaluate(dataset, return_dict=True, verbose=0)
        return np.asarray(
            [results[f"{h}_loss"] for h in self.model.head_names], np.float64
        )

    def on_epoch_end(self, epoch, logs=None):
        holdout_loss = self._head_losses(self._holdout)
        train_loss = self._head_losses(self._subset)
        overfitting = ogr.overfitting(holdout_loss, train_loss)
        if self._previous is None:
            delta_o = delta_g = np.full_like(overfitting, np.nan)
        else:
            previous_holdout, previous_overfitting = self._previous
            delta_o = overfitting - previous_overfitting
            delta_g = ogr.delta_generalization(previous_holdout, holdout_loss)
        ratio = np.where(
            np.isnan(delta_g), np.nan,
            ogr.overfitting_to_generalization_ratio(delta_o, delta_g),
        )
        self._previous = (holdout_loss, overfitting)
        if logs is None:
            return
        for i, head in enumerate(self.model.head_names):
            logs[f"ogr_monitor/overfitting/{head}"] = float(overfitting[i])
            logs[f"ogr_monitor/delta_o/{head}"] = float(delta_o[i])
            logs[f"ogr_monitor/delta_g/{head}"] = float(delta_g[i])
            logs[f"ogr_monitor/ogr/{head}"] = float(ratio[i])
