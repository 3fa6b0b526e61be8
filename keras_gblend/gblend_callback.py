"""`GBlendCallback`: offline and online Gradient-Blending during `fit`."""

import warnings
from typing import Any, Dict, Optional

import keras
import numpy as np
import tensorflow as tf

from keras_gblend import input_data, ogr
from keras_gblend.blended_model import BlendedModel
from keras_gblend.estimation import METRICS, estimate_blend_weights
from keras_gblend.holdout import validate_holdout

MODES = ("offline", "online")


def _check_modalities_present(data, model: BlendedModel, what: str) -> None:
    """Raises if `data`'s inputs lack a modality the model needs."""
    if not isinstance(model.input, dict):
        return
    if isinstance(data, tf.data.Dataset):
        spec = data.element_spec
        x_keys = list(spec[0]) if isinstance(spec[0], dict) else None
    else:
        x = input_data.split_arrays(data)[0]
        x_keys = list(x) if isinstance(x, dict) else None
    if x_keys is None:
        return
    missing = [name for name in model.input if name not in x_keys]
    if missing:
        raise ValueError(
            f"The {what} has no input for modality(ies) {missing}; it has "
            f"{x_keys}."
        )


@keras.saving.register_keras_serializable(package="keras_gblend")
class GBlendCallback(keras.callbacks.Callback):
    """Re-estimates a `BlendedModel`'s blend weights during `fit`.

    - `mode="offline"` (Algorithm 2): estimate once, from the model as it is
      when training starts, and keep the weights for the whole run.
    - `mode="online"` (Algorithm 3): train `warmup_epochs` with the compiled
      `loss_weights`, then re-estimate at the start of epoch `warmup_epochs`
      and every `super_epoch` epochs after it, from the current weights.

    Estimation trains throw-away clones on the `fit` training data (or on
    `train=`) and measures each head on `holdout`; see
    `kg.estimate_blend_weights`. The model's own weights and optimizer are
    untouched except for the blend weights.

    Every epoch it adds to `logs` (so History, CSVLogger and TensorBoard
    record them; put this callback before those in the list):
    `blend_weight/<head>`, `gblend/delta_o/<head>`, `gblend/delta_g/<head>`,
    `gblend/ogr/<head>` (latest estimate, NaN before the first) and
    `gblend/estimation_epoch`.

    The estimation state is kept on the model (saved with it), so a resumed
    run (`initial_epoch`, `BackupAndRestore`) keeps its schedule position:
    offline runs don't re-estimate, online runs re-estimate only at
    scheduled epochs not done yet. If no head improves on the holdout, the
    previous weights are kept and a warning is issued.

    Args:
        holdout: holdout data `V` (`(x, y)` arrays or a dataset).
        mode: `"offline"` or `"online"`.
        warmup_epochs: online only: epochs before the first estimation.
        super_epoch: online only: epochs between estimations.
        estimation_epochs: epochs each estimation clone trains (`n` of
            Algorithm 1). Defaults to `super_epoch`.
        metric: `"loss"` or `"accuracy"` (OGR from error).
        train_subset_fraction: size of the train subset `T'`.
        train: training data for the clones; defaults to the `fit` data.
        batch_size: batch size for array data; defaults to `fit`'s.
        fused: fuse uni-modal heads in one clone run (`None`: when they
            share no variable).
        seed: base seed for estimation shuffles.
        min_delta_o: `delta_o` floor (see `keras_gblend.ogr`).
        verbose: 1 prints each estimate.

    Example:

    ```python
    train, holdout = kg.split_holdout((x, y), fraction=0.08, seed=0)
    model.fit(*train, epochs=40, callbacks=[
        kg.GBlendCallback(holdout, mode="online", warmup_epochs=10,
                          super_epoch=5),
        keras.callbacks.TensorBoard("logs")])
    ```
    """

    def __init__(
        self,
        holdout,
        mode: str = "online",
        warmup_epochs: int = 10,
        super_epoch: int = 5,
        estimation_epochs: Optional[int] = None,
        metric: str = "loss",
        train_subset_fraction: float = 0.25,
        train=None,
        batch_size: Optional[int] = None,
        fused: Optional[bool] = None,
        seed: int = 0,
        min_delta_o: float = ogr.DEFAULT_MIN_DELTA_O,
        verbose: int = 1,
    ):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"`mode` must be one of {MODES}, got {mode!r}.")
        if metric not in METRICS:
            raise ValueError(
                f"`metric` must be one of {METRICS}, got {metric!r}."
            )
        if int(warmup_epochs) < 0:
            raise ValueError(
                f"`warmup_epochs` must be >= 0, got {warmup_epochs}."
            )
        if int(super_epoch) < 1:
            raise ValueError(f"`super_epoch` must be >= 1, got {super_epoch}.")
        if estimation_epochs is not None and int(estimation_epochs) < 1:
            raise ValueError(
                f"`estimation_epochs` must be >= 1, got {estimation_epochs}."
            )
        validate_holdout(holdout)
        self.holdout = holdout
        self.mode = mode
        self.warmup_epochs = int(warmup_epochs)
        self.super_epoch = int(super_epoch)
        self.estimation_epochs = (
            int(estimation_epochs)
            if estimation_epochs is not None
            else self.super_epoch
        )
        self.metric = metric
        self.train_subset_fraction = train_subset_fraction
        self.train = train
        self.batch_size = batch_size
        self.fused = fused
        self.seed = seed
        self.min_delta_o = min_delta_o
        self.verbose = verbose
        self.last_estimate = None

    def get_config(self) -> Dict[str, Any]:
        """Hyperparameters; the data (`holdout`, `train`) is not serialized:
        pass it again to `from_config` as `{**config, "holdout": holdout}`."""
        return {
            "mode": self.mode,
            "warmup_epochs": self.warmup_epochs,
            "super_epoch": self.super_epoch,
            "estimation_epochs": self.estimation_epochs,
            "metric": self.metric,
            "train_subset_fraction": self.train_subset_fraction,
            "batch_size": self.batch_size,
            "fused": self.fused,
            "seed": self.seed,
            "min_delta_o": self.min_delta_o,
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # -------------------------------------------------------------- schedule
    def is_estimation_epoch(self, epoch: int) -> bool:
        """Whether the online schedule estimates at the start of `epoch`."""
        if self.mode == "offline":
            return False
        return (
            epoch >= self.warmup_epochs
            and (epoch - self.warmup_epochs) % self.super_epoch == 0
        )

    def _estimation_due(self, epoch: int) -> bool:
        done_at = int(keras.ops.convert_to_numpy(
            self.model.blend_estimation_epoch
        ))
        if self.mode == "offline":
            return done_at < 0
        return self.is_estimation_epoch(epoch) and done_at != epoch

    # ----------------------------------------------------------------- hooks
    def on_train_begin(self, logs=None):
        if not isinstance(self.model, BlendedModel):
            raise TypeError(
                "GBlendCallback needs a `kg.BlendedModel` (from "
                "`kg.late_fusion_model` or `kg.as_blended_model`), got "
                f"{type(self.model).__name__}."
            )
        self._training_data()  # Fail now, not at the first estimation.
        _check_modalities_present(self.holdout, self.model, "holdout")

    def _training_data(self):
        if self.train is not None:
            _check_modalities_present(self.train, self.model, "`train` data")
            return self.train
        fit_data = self.model.current_fit_data
        if fit_data is None:
            raise ValueError(
                "GBlendCallback found no training data: call `model.fit` on "
                "the BlendedModel itself, or pass `train=`."
            )
        if isinstance(fit_data.x, tf.data.Dataset):
            return fit_data.x
        if fit_data.y is None:
            raise ValueError(
                "GBlendCallback can estimate from `fit(x, y)` arrays or a "
                "tf.data.Dataset; for other inputs (generators, PyDataset) "
                "pass `train=`."
            )
        data = (fit_data.x, fit_data.y)
        if fit_data.sample_weight is not None:
            data += (fit_data.sample_weight,)
        if fit_data.validation_split:
            # Keras validates on the last rows; estimate on the rest only.
            size = input_data.num_examples(fit_data.x)
            keep = np.arange(int(size * (1.0 - fit_data.validation_split)))
            data = tuple(input_data.take_rows(part, keep) for part in data)
        return data

    def on_epoch_begin(self, epoch, logs=None):
        if not self._estimation_due(epoch):
            return
        fit_data = self.model.current_fit_data
        batch_size = self.batch_size or (fit_data and fit_data.batch_size)
        estimate = estimate_blend_weights(
            self.model,
            self._training_data(),
            self.holdout,
            epochs=self.estimation_epochs,
            metric=self.metric,
            train_subset_fraction=self.train_subset_fraction,
            batch_size=batch_size,
            fused=self.fused,
            seed=self.seed + epoch,
            min_delta_o=self.min_delta_o,
            on_no_generalization="keep",
        )
        if estimate.weights is None:
            warnings.warn(
                f"G-Blend estimation at epoch {epoch}: no head improved on "
                "the holdout; keeping the previous blend weights "
                f"{self.model.blend_weights}."
            )
        else:
            self.model.set_blend_weights(estimate.weights)
        self.model.blend_delta_o.assign(estimate.delta_o.astype(np.float32))
        self.model.blend_delta_g.assign(estimate.delta_g.astype(np.float32))
        self.model.blend_estimation_epoch.assign(epoch)
        self.last_estimate = estimate
        if self.verbose:
            print(
                f"G-Blend ({self.mode}) epoch {epoch + 1}: weights "
                + ", ".join(
                    f"{h}={w:.3f}"
                    for h, w in self.model.blend_weights.items()
                )
            )

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        model = self.model
        delta_o = keras.ops.convert_to_numpy(model.blend_delta_o)
        delta_g = keras.ops.convert_to_numpy(model.blend_delta_g)
        ratio = ogr.overfitting_to_generalization_ratio(delta_o, delta_g)
        ratio = np.where(np.isnan(delta_g), np.nan, ratio)
        for head, weight in model.blend_weights.items():
            logs[f"blend_weight/{head}"] = weight
        for i, head in enumerate(model.head_names):
            logs[f"gblend/delta_o/{head}"] = float(delta_o[i])
            logs[f"gblend/delta_g/{head}"] = float(delta_g[i])
            logs[f"gblend/ogr/{head}"] = float(ratio[i])
        logs["gblend/estimation_epoch"] = float(
            keras.ops.convert_to_numpy(model.blend_estimation_epoch)
        )
