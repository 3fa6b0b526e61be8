"""Gradient-Blending weight estimation (Algorithm 1, `GB_Estimate`).

For each head, a clone of the model initialised from its current weights is
trained for `epochs` on that head's loss alone, with a fresh optimizer of the
same configuration (a learning rate schedule continues from the model's
step). Each head's loss (or error) on every example of the holdout `V`
and of a train subset `T'` is measured before and after; from their means
`delta_o`, `delta_g`, OGR and the blend `w_i = delta_g_i / delta_o_i**2 / Z`
follow, and from the per-example values a paired bootstrap gives the
standard error of every `delta_g` and `delta_o` (no extra training), which
the blend uses to tell a real gain from measurement noise.

Uni-modal heads of a late-fusion network depend on disjoint variables, so
training the *sum* of their losses trains each one exactly as if alone: all
uni-modal heads share one clone run and the joint head gets a second. The
real model and its optimizer are only read.

The clones may train on a fixed share of the training data
(`estimation_fraction`, Supplementary A of the paper), and a
`BlendEstimator` keeps them compiled between the estimates of one `fit`,
so an online estimate costs the clones' training and little else.
"""

import gc
import math
import time
from typing import Callable, Dict, Optional, Sequence, Union

import keras
import numpy as np
import tensorflow as tf

from keras_gblend.callbacks.raise_on_non_finite_loss import RaiseOnNonFiniteLoss
from keras_gblend.gblend import batch_norm_statistics, clones, measurements
from keras_gblend.gblend import measurement_noise, ogr, stratified_subset
from keras_gblend.gblend import presets as gblend_presets
from keras_gblend.gblend.blend_estimate import (
    SECONDS,
    BlendEstimate,
    blend_estimate,
)
from keras_gblend.gblend.presets import PRESET
from keras_gblend.inputs import input_checks, input_data
from keras_gblend.inputs.holdout import validate_holdout
from keras_gblend.model import head_graph
from keras_gblend.model.blended_model import BlendedModel

METRICS = ("loss", "accuracy")
# Share of the training data the clones train on: the smallest subset of the
# paper's Supplementary A (measured: docs/gblend.md, "Estimation on a
# subset").
DEFAULT_ESTIMATION_FRACTION = gblend_presets.preset_values("default")[
    "estimation_fraction"]
# Repeat r of an estimate's clones shuffles with `seed + r * this`.
REPEAT_SEED_STEP = 100_003


def estimation_groups(model: BlendedModel, fused: Optional[bool]):
    """Heads trained together in one clone run.

    `fused=None` fuses the uni-modal heads when they share no variable;
    `fused=True` requires it; `fused=False` trains every head alone.
    """
    if fused is None:
        fused = head_graph.heads_are_disjoint(model, model.modalities)
    elif fused and not head_graph.heads_are_disjoint(model, model.modalities):
        raise ValueError(
            "`fused=True` needs uni-modal heads with disjoint variables, but "
            f"heads {list(model.modalities)} share variables."
        )
    if fused:
        return [tuple(model.modalities), (model.joint_output,)], True
    return [(head,) for head in model.head_names], False


class BlendEstimator:
    """Repeated G-Blend estimation for one model and one training set.

    What does not change between estimates is prepared once: the
    estimation subset (`estimation_fraction` of the training data,
    stratified and seeded: `kg.estimation_subset`), the train subset `T'`
    drawn from it, the holdout pipeline, and, with `keep_clones=True`, one
    compiled clone, whose training and prediction functions are traced
    once: it serves every estimation group (a group is only its loss mask,
    a variable) and every estimate, reloaded each time with the model's
    current weights and a reset optimizer, so it measures exactly what a
    freshly built clone would.

    Args:
        model: a compiled `BlendedModel`; only read.
        train: training data `T`: `(x, y)` arrays or a batched dataset.
        holdout: holdout `V`, same forms as `train`.
        estimation_fraction: share of `T` (per class) the clones train on,
            in (0, 1].
        metric: `"loss"` or `"accuracy"` (then OGR uses error `1 - acc`).
        train_subset: an explicit `T'`; default: `train_subset_fraction`
            of `T`, drawn from the estimation subset (all of it when the
            subset is smaller), fixed for every estimate.
        train_subset_fraction: size of the default `T'` as a share of `T`.
        batch_size: batch size of the clones' training (default: a batched
            dataset's own, else 32).
        fused: see `estimation_groups`.
        seed: seed of the estimation subset and of `T'`.
        keep_clones: keep one compiled clone for every group and estimate
            (faster; holds one copy of the model). `False` builds a clone
            per group at every estimate and frees each after use.
        custom_objects: custom layers needed to clone the model.
        recalibrate_batch_norm: before each measurement, recompute the
            clone's BatchNormalization statistics over its training subset
            at its current weights (`batch_norm_statistics`); `False`
            measures with the moving averages training left (before
            this option: noisier, see that module).

    Example:

    ```python
    estimator = kg.BlendEstimator(model, (x, y), holdout,
                                  estimation_fraction=0.25)
    first = estimator.estimate(epochs=5)
    ```
    """

    def __init__(
        self,
        model: BlendedModel,
        train,
        holdout,
        estimation_fraction: float = DEFAULT_ESTIMATION_FRACTION,
        metric: str = "loss",
        train_subset=None,
        train_subset_fraction: float = 0.25,
        batch_size: Optional[int] = None,
        fused: Optional[bool] = None,
        seed: Optional[int] = 0,
        keep_clones: bool = True,
        custom_objects=None,
        recalibrate_batch_norm: bool = True,
    ):
        if not isinstance(model, BlendedModel):
            raise TypeError(
                "G-Blend estimation needs a `kg.BlendedModel`; wrap a "
                "functional model with `kg.as_blended_model`."
            )
        if not model.compiled or model.optimizer is None:
            raise ValueError(
                "Compile the model before estimating blend weights."
            )
        if metric not in METRICS:
            raise ValueError(
                f"`metric` must be one of {METRICS}, got {metric!r}."
            )
        self.estimation_fraction = stratified_subset.check_fraction(
            estimation_fraction
        )
        train_subset_fraction = stratified_subset.check_fraction(
            train_subset_fraction, "train_subset_fraction"
        )
        _check_data(model, train, holdout)
        self.model = model
        self.metric = metric
        if batch_size is None and isinstance(train, tf.data.Dataset) and (
                input_data.is_batched(train)):
            batch_size = input_data.batch_size_of(train)  # the user's own
        self.batch_size = batch_size or input_data.DEFAULT_BATCH_SIZE
        self.seed = seed
        self.keep_clones = bool(keep_clones)
        self.recalibrate_batch_norm = bool(recalibrate_batch_norm)
        self.custom_objects = custom_objects
        self.groups, self.fused = estimation_groups(model, fused)
        started = time.perf_counter()
        self.subset = subset = self._draw_subset(train)
        self._holdout = input_data.fixed_order(holdout, batch_size)
        self._train_subset = measurements.train_subset_dataset(
            subset, train_subset,
            min(1.0, train_subset_fraction / self.estimation_fraction),
            batch_size, seed,
        )
        self._measured, self._train_subset_size = measurements.measurement_passes(
            self._train_subset, self._holdout,
            measurements.MEASUREMENT_BATCHES * self.batch_size,
        )
        self._clones = {}
        self.subset_seconds = time.perf_counter() - started

    def _draw_subset(self, train):
        """The estimation subset, batched; a dataset's is read once and
        cached (`_cached_examples`: its examples and their number), so
        that it is fixed from here on."""
        subset = stratified_subset.estimation_subset(
            train, self.estimation_fraction, self.seed, self.model.num_classes)
        self._cached_examples = None
        if isinstance(subset, tf.data.Dataset) and subset is not train:
            size = stratified_subset.subset_size(subset)  # fills the cache
            if size == 0:
                raise ValueError(
                    "The estimation subset holds no example: the training "
                    "dataset is empty or `estimation_fraction` "
                    f"{self.estimation_fraction:g} is too small for it.")
            subset = subset.apply(tf.data.experimental.assert_cardinality(size))
            self._cached_examples = (subset, size)
            subset = subset.batch(self.batch_size)
        return subset

    def _clone(self, group) -> BlendedModel:
        """A compiled clone that trains `group`, holding the model's current
        weights and a reset optimizer.

        With `keep_clones`, one clone serves every group and every estimate:
        the group is only its loss mask, a variable, so switching groups
        retraces nothing."""
        model = self.model
        if not self._clones:
            clone = clones.clone_blended_model(model, self.custom_objects)
            clones.compile_clone(model, clone, group)
            with model.distribute_strategy.scope():
                clone.optimizer.build(clone.trainable_variables)
            if self.keep_clones:
                initial_state = [keras.ops.convert_to_numpy(v)
                                 for v in clone.optimizer.variables]
                self._clones["all groups"] = (clone, initial_state)
            return clone
        clone, initial_state = self._clones["all groups"]
        clone.set_weights(model.get_weights())
        clones.refresh_cached_state(clone)
        clone.set_blend_weights(
            {h: float(h in group) for h in model.head_names}
        )
        for variable, value in zip(clone.optimizer.variables, initial_state):
            variable.assign(value)
        clones.continue_learning_rate(model.optimizer, clone.optimizer)
        return clone

    def estimate(
        self,
        epochs: int = 5,
        seed: Optional[int] = None,
        min_delta_o: float = ogr.DEFAULT_MIN_DELTA_O,
        noise_z: Optional[float] = ogr.DEFAULT_NOISE_Z,
        bootstrap_resamples: int = measurement_noise.DEFAULT_RESAMPLES,
        previous_weights=None,
        on_no_generalization: str = "raise",
        verbose: int = 0,
        update_rule: str = "noise_aware",
        repeats: int = 1,
    ) -> BlendEstimate:
        """Estimates blend weights from the model's current weights.

        Args:
            epochs: epochs `n` each clone trains.
            seed: shuffle seed of array inputs and bootstrap seed (default:
                the estimator's seed); `None` there keeps the array order.
            min_delta_o, noise_z, bootstrap_resamples, previous_weights,
                on_no_generalization, verbose, update_rule, repeats: see
                `estimate_blend_weights`.

        Returns:
            A `BlendEstimate`; its `seconds` say where the time went.
        """
        if on_no_generalization not in ("raise", "keep"):
            raise ValueError(
                "`on_no_generalization` must be 'raise' or 'keep', got "
                f"{on_no_generalization!r}."
            )
        input_checks.check_integer("epochs", epochs, 1)
        input_checks.check_integer("repeats", repeats, 1)
        if noise_z is not None and not (0 <= noise_z < math.inf):
            raise ValueError(
                f"`noise_z` must be >= 0 and finite, got {noise_z}."
            )
        seed = self.seed if seed is None else seed
        if repeats > 1 and seed is None:
            raise ValueError(
                "`repeats` > 1 needs a `seed`: without one the clones train "
                "on the data in its order, the same every repeat.")
        model = self.model
        seconds = dict.fromkeys(SECONDS, 0.0)
        heads = list(model.head_names)
        end_train = [{} for _ in range(repeats)]
        end_holdout = [{} for _ in range(repeats)]
        start_train = start_holdout = None
        for group in self.groups:
            for repeat in range(repeats):
                started = time.perf_counter()
                clone = self._clone(group)
                seconds["clones"] += time.perf_counter() - started
                if start_train is None:
                    started = time.perf_counter()
                    start_train, start_holdout = self._measure(clone, heads)
                    seconds["measuring"] += time.perf_counter() - started
                started = time.perf_counter()
                self._train_clone(
                    clone, group, epochs,
                    seed + REPEAT_SEED_STEP * repeat if repeat else seed,
                    verbose)
                seconds["training"] += time.perf_counter() - started
                started = time.perf_counter()
                on_train, on_holdout = self._measure(clone, group)
                end_train[repeat].update(zip(group, on_train))
                end_holdout[repeat].update(zip(group, on_holdout))
                seconds["measuring"] += time.perf_counter() - started
                del clone
                if not self.keep_clones:
                    gc.collect()  # at most one clone alive at a time

        started = time.perf_counter()
        if previous_weights is None:
            previous_weights = [model.blend_weights[h] for h in heads]
        estimate = blend_estimate(
            heads, start_holdout, start_train,
            np.stack([[end[h] for h in heads] for end in end_holdout]),
            np.stack([[end[h] for h in heads] for end in end_train]),
            metric=self.metric, fused=self.fused, min_delta_o=min_delta_o,
            noise_z=noise_z, bootstrap_resamples=bootstrap_resamples,
            seed=seed, previous_weights=previous_weights,
            on_no_generalization=on_no_generalization,
            update_rule=update_rule,
        )
        seconds["bootstrap"] = time.perf_counter() - started
        estimate.seconds = seconds
        return estimate

    def unimodal_holdout_values(
        self, epochs: int, seed: Optional[int] = None,
        inspect: Optional[Callable[[BlendedModel, Sequence[str]], None]] = None,
    ) -> Dict[str, float]:
        """Trains the uni-modal clone(s) alone from the model's current
        weights (no joint head) and returns each modality head's mean value
        on the holdout: its loss, or its error `1 - accuracy` with
        `metric="accuracy"`. What each modality reaches on its own.

        Args:
            epochs: epochs the clones train.
            seed: shuffle seed (default: the estimator's).
            inspect: called as `inspect(clone, modalities)` with each
                trained clone before it is freed (e.g. to probe its
                encoders).

        Returns:
            `{modality: mean holdout value}`.
        """
        seed = self.seed if seed is None else seed
        values = {}
        for group in self.groups:
            if self.model.joint_output in group:
                continue
            clone = self._clone(group)
            self._train_clone(clone, group, epochs, seed)
            _, on_holdout = self._measure(clone, group)
            values.update(zip(group, on_holdout.mean(axis=1).tolist()))
            if inspect is not None:
                inspect(clone, group)
            del clone
        return values

    def _train_clone(self, clone, group, epochs, seed, verbose=0) -> None:
        """Trains `clone` (compiled for `group`) `epochs` epochs on the
        subset; a non-finite loss raises, the model untouched."""
        clone.fit(
            self._train_batches(seed),
            epochs=int(epochs),
            shuffle=False,  # arrays are shuffled, seeded, in the dataset
            verbose=verbose,
            callbacks=[RaiseOnNonFiniteLoss(
                f"the estimation clone of head(s) {list(group)} (the "
                "model and its weights are unchanged)")],
        )

    def _measure(self, clone, heads):
        """`(on T', on V)`: per-example values of `heads`, the clone's
        BatchNormalization statistics first recomputed at its weights
        (`recalibrate_batch_norm`)."""
        if self.recalibrate_batch_norm:
            batch_norm_statistics.recalibrate_batch_norm(
                clone, self._train_batches(0 if self.seed is None
                                           else self.seed))
        values = np.concatenate([
            measurements.per_example_values(clone, dataset, heads, self.metric, targets)
            for dataset, targets in self._measured
        ], axis=1)
        size = self._train_subset_size
        return values[:, :size], values[:, size:]

    def _train_batches(self, seed):
        """The subset in batches, shuffled each epoch with `seed` (the
        same order for every group of an estimate); a dataset given in
        full is used as it is."""
        if self._cached_examples is not None:
            examples, size = self._cached_examples
            return examples.shuffle(
                size, seed=seed, reshuffle_each_iteration=True
            ).batch(self.batch_size)
        return input_data.dataset_factory(
            self.subset, self.batch_size, seed
        )()

    def release(self) -> None:
        """Frees the kept clone."""
        self._clones.clear()


def _check_data(model, train, holdout) -> None:
    """Raises `ValueError` for a holdout or training data the estimator
    cannot use, before any training."""
    validate_holdout(holdout)
    model.check_data(holdout, "The holdout")
    model.check_data(train, "The training data")
    if isinstance(train, tf.data.Dataset) and (
            int(train.cardinality()) == int(tf.data.INFINITE_CARDINALITY)):
        raise ValueError(
            "The training data repeats forever, so an estimation clone "
            "cannot train `epochs` epochs on it; pass one epoch of data "
            "(e.g. GBlendCallback(train=...)).")


def estimate_blend_weights(
    model: BlendedModel,
    train,
    holdout,
    epochs: int = 5,
    metric: str = "loss",
    estimation_fraction: Union[float, str] = PRESET,
    train_subset=None,
    train_subset_fraction: float = 0.25,
    batch_size: Optional[int] = None,
    fused: Optional[bool] = None,
    seed: Optional[int] = 0,
    min_delta_o: Union[float, str] = PRESET,
    noise_z: Union[float, str, None] = PRESET,
    bootstrap_resamples: int = measurement_noise.DEFAULT_RESAMPLES,
    previous_weights=None,
    on_no_generalization: str = "raise",
    verbose: int = 0,
    custom_objects=None,
    update_rule: str = PRESET,
    preset: str = "default",
    repeats: int = 1,
    recalibrate_batch_norm: bool = True,
) -> BlendEstimate:
    """Estimates G-Blend weights from the model's current weights.

    Args:
        model: a compiled `BlendedModel`; only read.
        train: training data `T`: `(x, y)` arrays or a batched dataset.
        holdout: holdout `V`, same forms as `train` (a dataset is read once
            and cached in memory, so a shuffled one measures each example
            against its own label).
        epochs: epochs `n` each clone trains.
        metric: `"loss"` or `"accuracy"` (then OGR uses error `1 - acc`).
        estimation_fraction: share of `T` the clones train on: a fixed,
            stratified, seeded subset (`kg.estimation_subset`); 1 trains
            on all of `T` (default preset 0.25, paper 1).
        train_subset: the train subset `T'`; default: a random
            `train_subset_fraction` of `T` drawn from the estimation subset
            (the first batches of a dataset), fixed for both checkpoints.
        train_subset_fraction: size of the default `T'`, as a share of `T`.
        batch_size: batch size for array inputs (default 32).
        fused: see `estimation_groups`.
        seed: seed of the subsets, of the shuffles of array inputs (`None`:
            keep their order) and of the bootstrap.
        min_delta_o: floor for `|delta_o|` (see `keras_gblend.ogr`).
        noise_z: a head's gain counts only if `delta_g > noise_z *
            SE(delta_g)`, and `|delta_o|` is never taken below
            `SE(delta_o)` (paired bootstrap over the examples of `V` and
            `T'`). `None`: ignore measurement noise (any `delta_g > 0`
            counts; no standard errors are computed).
        bootstrap_resamples: resamples of the bootstrap.
        previous_weights: the weights in use (default: the model's current
            blend weights); under `update_rule="noise_aware"` a head whose
            gain is within its noise keeps its share
            (`ogr.updated_blend_weights`).
        on_no_generalization: when no head improved on the holdout:
            `"raise"` a `NoGeneralizationError`, or `"keep"`: return the
            measured figures with `weights=None`.
        verbose: verbosity of the clones' `fit`.
        custom_objects: custom layers needed to clone the model.
        update_rule: `"noise_aware"` (`ogr.updated_blend_weights`) or
            `"fresh"` (`ogr.blend_weights` of these measurements alone).
        preset: `"default"` or `"paper"`: the values of the arguments left
            at `"preset"` (`kg.gblend_presets`).
        repeats: times each clone trains, with shuffle seeds `seed + r *
            REPEAT_SEED_STEP`: the end values are averaged over the repeats
            and, with `noise_z`, the spread of the repeats' ΔG and ΔO (how
            the clones happened to train) is added to the bootstrap's
            standard errors (which examples were measured). Costs `repeats`
            times the clones' training.
        recalibrate_batch_norm: see `BlendEstimator`.

    Returns:
        A `BlendEstimate`.

    Raises:
        ValueError: bad arguments, an invalid holdout, or an uncompiled model;
            raised before any training.
        FloatingPointError: a non-finite loss during estimation.
        keras_gblend.ogr.NoGeneralizationError: no head improved on `V`
            (with `on_no_generalization="raise"`).

    Example:

    ```python
    estimate = kg.estimate_blend_weights(model, (x, y), holdout, epochs=3)
    model.set_blend_weights(estimate.weights_dict())
    ```
    """
    settings = gblend_presets.resolve(
        preset, estimation_fraction=estimation_fraction,
        min_delta_o=min_delta_o, noise_z=noise_z, update_rule=update_rule)
    estimation_fraction, min_delta_o, noise_z, update_rule = (
        settings[name] for name in ("estimation_fraction", "min_delta_o",
                                    "noise_z", "update_rule"))
    estimator = BlendEstimator(
        model, train, holdout, estimation_fraction=estimation_fraction,
        metric=metric, train_subset=train_subset,
        train_subset_fraction=train_subset_fraction, batch_size=batch_size,
        fused=fused, seed=seed, keep_clones=False,
        custom_objects=custom_objects,
        recalibrate_batch_norm=recalibrate_batch_norm,
    )
    estimate = estimator.estimate(
        epochs, seed=seed, min_delta_o=min_delta_o, noise_z=noise_z,
        bootstrap_resamples=bootstrap_resamples,
        previous_weights=previous_weights,
        on_no_generalization=on_no_generalization, verbose=verbose,
        update_rule=update_rule, repeats=repeats,
    )
    estimate.seconds["subset"] = estimator.subset_seconds
    return estimate


