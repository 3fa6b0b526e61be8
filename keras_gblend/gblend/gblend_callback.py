"""`GBlendCallback`: offline and online Gradient-Blending during `fit`."""

import warnings
from typing import Any, Dict, Optional, Union

import keras
import numpy as np

from keras_gblend.gblend import ogr
from keras_gblend.gblend import presets as gblend_presets
from keras_gblend.gblend.blend_estimator import METRICS, BlendEstimator
from keras_gblend.gblend.presets import AUTO, PRESET, SPAN, UPDATE_RULES
from keras_gblend.gblend.schedule import MODES, Schedule
from keras_gblend.gblend.stratified_subset import check_fraction
from keras_gblend.inputs.holdout import validate_holdout
from keras_gblend.inputs.input_checks import check_integer, check_range
from keras_gblend.model import blend_state
from keras_gblend.model.blended_model import BlendedModel

@keras.saving.register_keras_serializable(package="keras_gblend")
class GBlendCallback(keras.callbacks.Callback):
    """Re-estimates a `BlendedModel`'s blend weights during `fit`.

    - `mode="offline"` (Algorithm 2): estimate once, from the model as it is
      when training starts, and keep the weights for the whole run.
    - `mode="online"` (Algorithm 3): estimate at the start of epoch
      `warmup_epochs` (0: from the initial model, as the paper), train
      `first_super_epoch` epochs with those weights, then re-estimate from
      the current weights every `super_epoch` epochs. The paper's schedule
      (first super-epoch 10, then 5) is the default: estimates at epochs
      0, 10, 15, 20, ... With `warmup_epochs > 0` the model first trains
      that many epochs with its compiled `loss_weights`.

    Estimation trains clones on `estimation_fraction` of the `fit` training
    data (or of `train=`): a stratified, seeded subset, the same at every
    estimate and after a resume (`kg.estimation_subset`), and measures each
    head on every example of `holdout` and of a train subset `T'` drawn
    from the clones' subset; see `kg.estimate_blend_weights`. One clone is
    built and compiled per `fit` and reloaded at each estimate
    (`keep_clones`). The model's own weights and optimizer are untouched
    except for the blend weights. `timings` lists, per estimate, where its
    wall time went.

    `preset="default"` keeps eight measured deviations from the paper;
    `preset="paper"` runs Algorithms 2 and 3 as published (the table:
    `kg.gblend_presets.DEVIATIONS`, docs/deviations.md). An argument left at
    `"preset"` takes its preset's value; one given explicitly wins.

    Measurement noise (`update_rule="noise_aware"`,
    `ogr.updated_blend_weights`): a head whose holdout gain `ΔG` is within
    `noise_z` bootstrap standard errors keeps its weight, a head whose
    holdout loss clearly rose gets 0, and the heads that clearly generalize
    share the rest by `ΔG / ΔO²`, with `|ΔO|` never taken below its
    standard error; if no head's gain is clear, the previous weights are
    kept (with a warning), less those of heads that clearly got worse.
    `update_rule="fresh"`: each estimate's weights are Proposition 1 of its
    own measurements (`ogr.blend_weights`). `smoothing` mixes each new
    estimate with the weights in use: `w <- (1 - smoothing) * w_new +
    smoothing * w_old`. Last, the joint head's weight is raised to at least
    `joint_weight_floor` (the others scaled down in proportion): it is the
    model's answer, and at weight 0 its features stop being trained for it
    (`ogr.with_weight_floor`).

    The bootstrap standard errors cover which examples were measured (the
    holdout `V` and `T'` as samples of their populations); they do not
    cover how the clones happened to train (their shuffle order: two
    full-data estimates with different shuffle seeds differ by 0.03–0.27
    in weight). `clone_repeats=r` trains the clones `r` times with
    different shuffle seeds and adds the spread of their results to the
    errors, at `r` times the estimation cost.

    Every epoch it adds to `logs` (so History, CSVLogger and TensorBoard
    record them; put this callback before those in the list):
    `blend_weight/<head>`, `gblend/delta_o/<head>`, `gblend/delta_g/<head>`,
    `gblend/ogr/<head>`, `gblend/delta_g_se/<head>`,
    `gblend/delta_o_se/<head>` (latest estimate, NaN before the first) and
    `gblend/estimation_epoch`.

    The estimation state is kept on the model (saved with it), so a resumed
    run (`initial_epoch`, `BackupAndRestore`) keeps its schedule position:
    offline runs don't re-estimate, online runs re-estimate only at
    scheduled epochs not done yet.

    Args:
        holdout: holdout data `V` (`(x, y)` arrays or a dataset).
        mode: `"offline"` or `"online"`.
        warmup_epochs: online only: epochs trained with the compiled weights
            before the first estimate (the paper: 0).
        first_super_epoch: online only: epochs trained with the first
            estimate (the paper: 10).
        super_epoch: online only: epochs between later estimates (the
            paper: 5).
        estimation_epochs: epochs each estimation clone trains (`n` of
            Algorithm 1): an integer; `"auto"` (default preset): offline
            the run's `epochs` (Algorithm 2, `GB_Estimate(φ⁰, N)`), online
            `super_epoch` at every estimate, the first included (measured
            better than training the first clones over the longer first
            super-epoch, and cheaper); `"span"` (paper preset): the epochs
            the estimate's weights are used for (online: the first
            super-epoch, then `super_epoch`; offline: the run).
        metric: `"loss"` or `"accuracy"` (OGR from error).
        estimation_fraction: share of the training data, per class, the
            clones train on, in (0, 1] (default preset 0.25, paper 1).
        train_subset_fraction: size of the train subset `T'` as a share of
            the training data, in (0, 1] (capped at the clones' subset).
        train: training data for the clones; defaults to the `fit` data.
        batch_size: batch size for array data; defaults to `fit`'s.
        fused: fuse uni-modal heads in one clone run (`None`: when they
            share no variable).
        seed: base seed for estimation shuffles and the bootstrap.
        min_delta_o: `|ΔO|` floor, > 0 (default preset 0.01, paper
            1e-12; see `keras_gblend.ogr`).
        noise_z: standard errors a gain must exceed to count (default
            preset 2); `None` (paper preset) ignores measurement noise.
        update_rule: `"noise_aware"` (default preset) or `"fresh"` (paper
            preset), see above.
        smoothing: in [0, 1): weight of the previous blend in each update.
        joint_weight_floor: in [0, 1): least weight of the joint head after
            an estimate (default preset 0.2; 0, the paper preset:
            Proposition 1's weights as they come).
        preset: `"default"` or `"paper"`: the values of the arguments left
            at `"preset"`. The paper preset also needs a model built with
            `blend_scope="all"` (checked when `fit` starts).
        clone_repeats: times the clones of each estimate train, with
            different shuffle seeds (>= 1; each repeat costs one more
            estimate's training).
        keep_clones: keep one compiled clone for the whole `fit` (one copy
            of the model, serving every estimation group); `False` builds
            clones at each estimate and frees them after.
        recalibrate_batch_norm: recompute each clone's BatchNormalization
            statistics at its weights before measuring it (see
            `kg.BlendEstimator`); `False`: the moving averages as training
            left them (this library before the option).
        verbose: 1 prints each estimate.

    Example:

    ```python
    train, holdout = kg.split_holdout((x, y), fraction=0.08, seed=0)
    model.fit(*train, epochs=40, callbacks=[
        kg.GBlendCallback(holdout, mode="online"),  # estimates at 0, 10, 15, ...
        keras.callbacks.TensorBoard("logs")])
    ```
    """

    # `BlendedModel.fit` runs it before the callbacks that read the logs.
    writes_epoch_logs = True

    def __init__(
        self,
        holdout,
        mode: str = "online",
        warmup_epochs: int = 0,
        first_super_epoch: int = 10,
        super_epoch: int = 5,
        estimation_epochs: Union[int, str, None] = PRESET,
        metric: str = "loss",
        estimation_fraction: Union[float, str] = PRESET,
        train_subset_fraction: float = 0.25,
        train=None,
        batch_size: Optional[int] = None,
        fused: Optional[bool] = None,
        seed: int = 0,
        min_delta_o: Union[float, str] = PRESET,
        noise_z: Union[float, str, None] = PRESET,
        smoothing: float = 0.0,
        joint_weight_floor: Union[float, str] = PRESET,
        keep_clones: bool = True,
        verbose: int = 1,
        update_rule: str = PRESET,
        preset: str = "default",
        clone_repeats: int = 1,
        recalibrate_batch_norm: bool = True,
    ):
        super().__init__()
        settings = _checked_settings(
            preset, mode=mode, metric=metric, warmup_epochs=warmup_epochs,
            first_super_epoch=first_super_epoch, super_epoch=super_epoch,
            estimation_epochs=estimation_epochs,
            estimation_fraction=estimation_fraction,
            train_subset_fraction=train_subset_fraction,
            min_delta_o=min_delta_o, noise_z=noise_z, smoothing=smoothing,
            joint_weight_floor=joint_weight_floor, update_rule=update_rule,
            clone_repeats=clone_repeats)
        validate_holdout(holdout)
        self.holdout = holdout
        self.preset = preset
        for name, value in settings.items():
            setattr(self, name, value)
        self.train = train
        self.batch_size = batch_size
        self.fused = fused
        self.seed = seed
        self.keep_clones = bool(keep_clones)
        self.recalibrate_batch_norm = bool(recalibrate_batch_norm)
        self.verbose = verbose
        self.last_estimate = None
        self.timings = []
        self._estimator = None

    def get_config(self) -> Dict[str, Any]:
        """Hyperparameters; the data (`holdout`, `train`) is not serialized:
        pass it again to `from_config` as `{**config, "holdout": holdout}`."""
        names = ("mode", "warmup_epochs", "first_super_epoch", "super_epoch",
                 "estimation_epochs", "metric", "estimation_fraction",
                 "train_subset_fraction", "batch_size", "fused", "seed",
                 "min_delta_o", "noise_z", "smoothing", "joint_weight_floor",
                 "keep_clones", "verbose", "update_rule", "preset",
                 "clone_repeats", "recalibrate_batch_norm")
        return {name: getattr(self, name) for name in names}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # -------------------------------------------------------------- schedule
    @property
    def schedule(self) -> Schedule:
        """When this callback estimates (`kg.gblend.schedule.Schedule`)."""
        return Schedule(self.mode, self.warmup_epochs, self.first_super_epoch,
                        self.super_epoch, self.estimation_epochs)

    def is_estimation_epoch(self, epoch: int) -> bool:
        """Whether the online schedule estimates at the start of `epoch`."""
        return self.schedule.is_estimation_epoch(epoch)

    def weights_used_for(self, epoch: int, total_epochs: int) -> int:
        """Epochs an estimate made at the start of `epoch` is used for."""
        return self.schedule.weights_used_for(epoch, total_epochs)

    def clone_epochs(self, epoch: int, total_epochs: int) -> int:
        """Epochs the clones of an estimate made at the start of `epoch`
        train (`Schedule.clone_epochs`)."""
        return self.schedule.clone_epochs(epoch, total_epochs)

    def _estimation_due(self, epoch: int) -> bool:
        done_at = blend_state.estimation_epoch(self.model)
        if self.mode == "offline":
            return done_at < 0
        return self.is_estimation_epoch(epoch) and done_at != epoch

    # ----------------------------------------------------------------- hooks
    def on_train_begin(self, logs=None):
        self._check_model()
        # Fail now, not at the first estimation (fit checks its own data).
        training_data = self._training_data()
        if self.train is not None:
            self.model.check_data(training_data, "`train` data")
        self.model.check_data(self.holdout, "The holdout")
        epochs = (self.params or {}).get("epochs")
        if (
            self.mode == "online"
            and epochs is not None
            and not any(self.is_estimation_epoch(e) for e in range(epochs))
        ):
            warnings.warn(
                f"Online G-Blend will never estimate in this fit: its first "
                f"estimate is at epoch {self.warmup_epochs + 1} (after "
                f"warmup_epochs={self.warmup_epochs}) "
                f"but fit runs {epochs} epochs, so the compiled loss weights "
                f"{self.model.blend_weights} are used throughout."
            )

    def _check_model(self) -> None:
        """Raises for a model G-Blend cannot run on here; warns for one it
        has nothing to balance in."""
        if not isinstance(self.model, BlendedModel):
            raise TypeError(
                "GBlendCallback needs a `kg.BlendedModel` (from "
                "`kg.late_fusion_model` or `kg.as_blended_model`), got "
                f"{type(self.model).__name__}.")
        fit_data = self.model.current_fit_data
        if fit_data is not None:
            owner = fit_data.claims.setdefault("blend_weights", self)
            if owner is not self:
                raise ValueError(
                    "Two GBlendCallbacks in one fit: each would overwrite "
                    "the other's blend weights. Pass one.")
        if self.preset == "paper" and self.model.blend_scope != "all":
            raise ValueError(
                "GBlendCallback(preset='paper') trains with the paper's "
                "literal loss, but the model was built with blend_scope="
                f"{self.model.blend_scope!r}: build it with "
                "blend_scope='all' (or use preset='default').")
        if len(self.model.modalities) < 2:
            warnings.warn(
                "G-Blend on a model with one modality "
                f"{list(self.model.modalities)}: it blends that modality's "
                "head with the joint head, which reads the same input; "
                "there is no modality to balance.")

    def _training_data(self):
        if self.train is not None:
            return self.train
        return self.model.current_training_rows("GBlendCallback")

    def _blend_estimator(self) -> BlendEstimator:
        """This fit's estimator: subset drawn and clones built at the first
        estimate, reused at the next ones."""
        if self._estimator is None:
            fit_data = self.model.current_fit_data
            self._estimator = BlendEstimator(
                self.model,
                self._training_data(),
                self.holdout,
                estimation_fraction=self.estimation_fraction,
                metric=self.metric,
                train_subset_fraction=self.train_subset_fraction,
                batch_size=self.batch_size or (fit_data and fit_data.batch_size),
                fused=self.fused,
                seed=self.seed,
                keep_clones=self.keep_clones,
                recalibrate_batch_norm=self.recalibrate_batch_norm,
            )
        return self._estimator

    def on_train_end(self, logs=None):
        if self._estimator is not None:
            self._estimator.release()
        self._estimator = None

    def on_epoch_begin(self, epoch, logs=None):
        if not self._estimation_due(epoch):
            return
        drawn_now = self._estimator is None  # the subset is drawn once
        estimator = self._blend_estimator()
        total_epochs = (self.params or {}).get("epochs") or epoch + 1
        estimate = estimator.estimate(
            epochs=self.clone_epochs(epoch, total_epochs),
            seed=self.seed + epoch,
            min_delta_o=self.min_delta_o,
            noise_z=self.noise_z,
            on_no_generalization="keep",
            update_rule=self.update_rule,
            repeats=self.clone_repeats,
        )
        self.timings.append(
            {"epoch": epoch,
             "subset": estimator.subset_seconds if drawn_now else 0.0,
             **estimate.seconds})
        self._use(estimate, epoch)
        blend_state.store_estimate(self.model, epoch, vars(estimate))
        self.last_estimate = estimate
        if self.verbose:
            print(f"G-Blend ({self.mode}) epoch {epoch + 1}: weights "
                  + ", ".join(f"{h}={w:.3f}"
                              for h, w in self.model.blend_weights.items()))

    def _use(self, estimate, epoch: int) -> None:
        """Sets the model's blend weights from `estimate` (smoothed, the
        joint head floored); warns when no head clearly improved."""
        unclear = (f"G-Blend estimation at epoch {epoch + 1}: no head "
                   "clearly improved on the holdout (delta_g "
                   f"{estimate.delta_g.tolist()}, standard errors "
                   f"{_as_list(estimate.delta_g_se)}); ")
        if estimate.weights is None:
            warnings.warn(unclear + "keeping the previous blend weights "
                          f"{self.model.blend_weights}.")
            return
        if not np.any(estimate.generalizing):
            worse = [h for h, w, before in zip(
                estimate.head_names, estimate.weights,
                estimate.previous_weights) if w == 0 < before]
            warnings.warn(unclear + f"head(s) {worse} clearly got worse and "
                          "lose their weight; the others keep their "
                          "proportions.")
        previous = keras.ops.convert_to_numpy(
            self.model.blend_weights_variable).astype(np.float64)
        weights = estimate.weights
        if self.smoothing and previous.sum() > 0:
            weights = ((1.0 - self.smoothing) * weights
                       + self.smoothing * previous / previous.sum())
        # The joint head is the last head.
        self.model.set_blend_weights(ogr.with_weight_floor(
            weights, index=-1, floor=self.joint_weight_floor))

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        model = self.model
        figures = blend_state.stored_figures(model)
        ratio = ogr.overfitting_to_generalization_ratio(
            figures["delta_o"], figures["delta_g"])
        figures["ogr"] = np.where(np.isnan(figures["delta_g"]), np.nan, ratio)
        for head, weight in model.blend_weights.items():
            logs[f"blend_weight/{head}"] = weight
        for name in blend_state.LOGGED_FIGURES:
            for i, head in enumerate(model.head_names):
                logs[f"gblend/{name}/{head}"] = float(figures[name][i])
        logs["gblend/estimation_epoch"] = float(
            blend_state.estimation_epoch(model))


def _checked_settings(preset: str, **arguments) -> Dict[str, Any]:
    """The callback's settings, each left at `"preset"` resolved through
    `preset`, checked and converted; raises `ValueError` naming the first
    bad one."""
    if arguments["mode"] not in MODES:
        raise ValueError(
            f"`mode` must be one of {MODES}, got {arguments['mode']!r}.")
    if arguments["metric"] not in METRICS:
        raise ValueError(
            f"`metric` must be one of {METRICS}, got {arguments['metric']!r}.")
    settings = {**arguments, **gblend_presets.resolve(preset, **{
        name: arguments[name] for name in (
            "estimation_epochs", "estimation_fraction", "min_delta_o",
            "noise_z", "joint_weight_floor", "update_rule")})}
    if settings["estimation_epochs"] is None:  # the earlier spelling of auto
        settings["estimation_epochs"] = AUTO
    for name, low in (("warmup_epochs", 0), ("first_super_epoch", 1),
                      ("super_epoch", 1), ("clone_repeats", 1)):
        settings[name] = check_integer(name, settings[name], low)
    if settings["estimation_epochs"] not in (AUTO, SPAN):
        settings["estimation_epochs"] = check_integer(
            "estimation_epochs", settings["estimation_epochs"], 1)
    if settings["update_rule"] not in UPDATE_RULES:
        raise ValueError(
            f"`update_rule` must be one of {UPDATE_RULES}, got "
            f"{settings['update_rule']!r}.")
    settings["estimation_fraction"] = check_fraction(
        settings["estimation_fraction"])
    for name, low, high, low_open, high_open in (
            ("train_subset_fraction", 0, 1, True, False),
            ("min_delta_o", 0, np.inf, True, True),
            ("noise_z", 0, np.inf, False, True),
            ("smoothing", 0, 1, False, True),
            ("joint_weight_floor", 0, 1, False, True)):
        if name == "noise_z" and settings[name] is None:
            continue
        check_range(name, settings[name], low, high, low_open=low_open,
                    high_open=high_open)
        settings[name] = float(settings[name])
    return settings


def _as_list(values):
    return None if values is None else np.asarray(values).tolist()
