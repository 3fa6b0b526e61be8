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

import dataclasses
import gc
import math
import time
from typing import Dict, Optional, Sequence, Tuple, Union

import keras
import numpy as np
import tensorflow as tf

from keras_gblend import (
    gblend_presets,
    head_graph,
    input_checks,
    input_data,
    measurement_noise,
    ogr,
    stratified_subset,
)
from keras_gblend.blended_model import BlendedModel
from keras_gblend.gblend_presets import PRESET
from keras_gblend.holdout import validate_holdout
from keras_gblend.non_finite_guard import RaiseOnNonFiniteLoss

METRICS = ("loss", "accuracy")
# `BlendEstimate` fields logged as `gblend/<field>/<head>`.
LOGGED_FIGURES = ("delta_o", "delta_g", "ogr", "delta_g_se", "delta_o_se")
# Where an estimate's time goes (`BlendEstimate.seconds`): building or
# reloading clones, training them, the per-example measurements on `V` and
# `T'`, and the bootstrap and blend.
SECONDS = ("clones", "training", "measuring", "bootstrap")
# Share of the training data the clones train on: the smallest subset of the
# paper's Supplementary A (see README, "Estimation on a subset", for the
# measurements behind it).
DEFAULT_ESTIMATION_FRACTION = gblend_presets.preset_values("default")[
    "estimation_fraction"]
# Measurement passes predict on batches this many times the training batch
# (prediction keeps no activations for a backward pass).
MEASUREMENT_BATCHES = 4
# Repeat r of an estimate's clones shuffles with `seed + r * this`.
REPEAT_SEED_STEP = 100_003
# Clones run this many steps per call into TensorFlow (same steps, same
# order, same weights; fewer Python round trips: half the clones' time on
# small models). Without a distribution strategy only.
CLONE_STEPS_PER_EXECUTION = 16


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


@keras.saving.register_keras_serializable(package="keras_gblend")
class _ContinuedSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`schedule(step + offset)`: a schedule picked up at step `offset`
    (a variable, so a reused clone continues from a new step without
    retracing)."""

    def __init__(self, schedule, offset: int):
        if isinstance(schedule, _ContinuedSchedule):  # continued twice
            schedule, offset = schedule.schedule, schedule.start + offset
        self.schedule = schedule
        self.offset = tf.Variable(
            int(offset), dtype=tf.int64, trainable=False, name="lr_offset"
        )

    @property
    def start(self) -> int:
        """The step the schedule continues from."""
        return int(self.offset.numpy())

    def __call__(self, step):
        step = tf.convert_to_tensor(step)
        return self.schedule(step + tf.cast(self.offset, step.dtype))

    def get_config(self):
        return {
            "schedule": keras.optimizers.schedules.serialize(self.schedule),
            "offset": self.start,
        }

    @classmethod
    def from_config(cls, config):
        schedule = keras.optimizers.schedules.deserialize(config["schedule"])
        return cls(schedule, config["offset"])


def fresh_optimizer(optimizer) -> keras.optimizers.Optimizer:
    """A new optimizer with the same configuration and no state (no
    moments, step 0). A learning rate schedule continues from `optimizer`'s
    current step: a clone trains at the rate the model would train at now,
    not at the schedule's initial rate."""
    fresh = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    # A LossScaleOptimizer (mixed precision) schedules its inner optimizer.
    inner = getattr(fresh, "inner_optimizer", fresh)
    rate = inner.get_config()["learning_rate"]
    if isinstance(rate, dict):  # a serialized LearningRateSchedule
        step = int(keras.ops.convert_to_numpy(optimizer.iterations))
        inner.learning_rate = _ContinuedSchedule(
            keras.optimizers.schedules.deserialize(rate), step
        )
    return fresh


def _layers_recursively(layer):
    yield layer
    for child in getattr(layer, "layers", ()):
        yield from _layers_recursively(child)


def clone_blended_model(model: BlendedModel, custom_objects=None):
    """A new `BlendedModel` with the same graph and a copy of the weights,
    built in the model's distribution strategy scope.

    The clone trains without OGM-GE and with `blend_scope="all"`:
    Algorithm 1 measures how each head overfits under plain training on its
    own loss, and nothing else trains.
    """
    config = model.get_config()
    config["modulation"] = None
    config["blend_scope"] = "all"
    with model.distribute_strategy.scope():
        with keras.saving.custom_object_scope(custom_objects or {}):
            clone = model.__class__.from_config(config)
        clone.set_weights(model.get_weights())
    _refresh_cached_state(clone)
    return clone


def _compile_clone(model, clone, train_heads):
    mask = {h: float(h in train_heads) for h in model.head_names}
    with model.distribute_strategy.scope():
        clone.compile(
            optimizer=fresh_optimizer(model.optimizer),
            loss=model.loss_argument,
            loss_weights=mask,
            jit_compile=model.jit_compile,
            run_eagerly=model.run_eagerly,
            steps_per_execution=_clone_steps_per_execution(model),
        )


def _clone_steps_per_execution(model) -> int:
    """Steps per call for a clone: `CLONE_STEPS_PER_EXECUTION` without a
    distribution strategy (Keras's multi-step loop does not run under
    tf.distribute strategies here), else the model's own."""
    if model.run_eagerly or not _is_default_strategy(model.distribute_strategy):
        return model.steps_per_execution
    return max(CLONE_STEPS_PER_EXECUTION, model.steps_per_execution)


def _is_default_strategy(strategy) -> bool:
    return type(strategy).__name__ == "_DefaultDistributionStrategy"


def per_example_values(
    model, dataset, heads, metric, targets=None
) -> np.ndarray:
    """Each head's loss (or error, `metric="accuracy"`) on every example of
    a batched `dataset`, in its order: one `predict` pass for all heads.

    The mean over examples is what `evaluate` reports as `<head>_loss`
    (sample weights included, regularization excluded).

    Args:
        model: a compiled `BlendedModel`.
        dataset: a batched dataset in a fixed order.
        heads: heads to report.
        metric: `"loss"` or `"accuracy"`.
        targets: `input_data.targets_of(dataset)` if already known (saves a
            pass over the dataset).

    Returns:
        float64 array `(len(heads), examples)`.

    Raises:
        FloatingPointError: a non-finite value, naming the heads.
    """
    predictions = model.predict(dataset, verbose=0)
    y, sample_weight = targets or input_data.targets_of(dataset)
    if metric == "loss":
        per_head = model.per_example_losses(y, predictions, sample_weight)
    else:
        per_head = model.per_example_errors(y, predictions, sample_weight)
    values = np.stack([per_head[head] for head in heads]).astype(np.float64)
    bad = [h for h, row in zip(heads, values) if not np.all(np.isfinite(row))]
    if bad:
        raise FloatingPointError(
            f"Non-finite {metric} for head(s) {bad} while estimating blend "
            "weights. The model and its weights are unchanged."
        )
    return values


def train_subset_dataset(
    train,
    train_subset=None,
    fraction: float = 0.25,
    batch_size: Optional[int] = None,
    seed: Optional[int] = 0,
) -> tf.data.Dataset:
    """The fixed train subset `T'` on which overfitting is measured.

    Args:
        train: training data: `(x, y)` arrays or a batched dataset.
        train_subset: an explicit `T'` (same forms); returned batched.
        fraction: otherwise, the share of `train` to take: random rows of
            arrays, or the first batches of a dataset (cached, so `T'` is
            the same set every time it is read).
        batch_size: batch size for arrays (default 32).
        seed: row sampling seed for arrays.

    Returns:
        A batched `tf.data.Dataset`.
    """
    if train_subset is not None:
        return input_data.fixed_order(train_subset, batch_size)
    if not 0.0 < fraction <= 1.0:
        raise ValueError(
            f"`train_subset_fraction` must be in (0, 1], got {fraction}."
        )
    if isinstance(train, tf.data.Dataset):
        batches = input_data.dataset_factory(train, batch_size)()
        count = int(batches.cardinality())
        if count < 0:
            raise ValueError(
                "The training dataset has unknown length; pass "
                "`train_subset=` (the train subset T') explicitly."
            )
        # Cached, so that T' is the same set at both checkpoints.
        return batches.take(max(1, int(round(fraction * count)))).cache()
    parts = input_data.split_arrays(train)
    size = input_data.num_examples(parts[0])
    rows = np.sort(
        np.random.default_rng(0 if seed is None else seed).permutation(size)[
            : max(1, int(round(fraction * size)))
        ]
    )
    # Labels (a dict per head too) and sample weights come along: T' is
    # measured as V is.
    subset = tuple(input_data.take_rows(part, rows)
                   for part in parts if part is not None)
    return input_data.dataset_factory(subset, batch_size)()


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
        validate_holdout(holdout)
        model.check_data(holdout, "The holdout")
        model.check_data(train, "The training data")
        if isinstance(train, tf.data.Dataset) and (
            int(train.cardinality()) == int(tf.data.INFINITE_CARDINALITY)
        ):
            raise ValueError(
                "The training data repeats forever, so an estimation clone "
                "cannot train `epochs` epochs on it; pass one epoch of data "
                "(e.g. GBlendCallback(train=...))."
            )
        self.model = model
        self.metric = metric
        if batch_size is None and isinstance(train, tf.data.Dataset) and (
                input_data.is_batched(train)):
            batch_size = input_data.batch_size_of(train)  # the user's own
        self.batch_size = batch_size or input_data.DEFAULT_BATCH_SIZE
        self.seed = seed
        self.keep_clones = bool(keep_clones)
        self.custom_objects = custom_objects
        self.groups, self.fused = estimation_groups(model, fused)
        started = time.perf_counter()
        subset = stratified_subset.estimation_subset(
            train, self.estimation_fraction, seed, model.num_classes
        )
        if isinstance(subset, tf.data.Dataset) and subset is not train:
            # Fills the cache: the subset is fixed from here on.
            size = stratified_subset.subset_size(subset)
            if size == 0:
                raise ValueError(
                    "The estimation subset holds no example: the training "
                    "dataset is empty or `estimation_fraction` "
                    f"{self.estimation_fraction:g} is too small for it."
                )
            subset = subset.apply(tf.data.experimental.assert_cardinality(size))
            self._cached_examples = (subset, size)
            subset = subset.batch(self.batch_size)
        else:
            self._cached_examples = None
        self.subset = subset
        self._holdout = input_data.fixed_order(holdout, batch_size)
        self._train_subset = train_subset_dataset(
            subset, train_subset,
            min(1.0, train_subset_fraction / self.estimation_fraction),
            batch_size, seed,
        )
        self._measured, self._train_subset_size = _measurement_passes(
            self._train_subset, self._holdout,
            MEASUREMENT_BATCHES * self.batch_size,
        )
        self._clones = {}
        self.subset_seconds = time.perf_counter() - started

    def _clone(self, group) -> BlendedModel:
        """A compiled clone that trains `group`, holding the model's current
        weights and a reset optimizer.

        With `keep_clones`, one clone serves every group and every estimate:
        the group is only its loss mask, a variable, so switching groups
        retraces nothing."""
        model = self.model
        if not self._clones:
            clone = clone_blended_model(model, self.custom_objects)
            _compile_clone(model, clone, group)
            with model.distribute_strategy.scope():
                clone.optimizer.build(clone.trainable_variables)
            if self.keep_clones:
                initial_state = [keras.ops.convert_to_numpy(v)
                                 for v in clone.optimizer.variables]
                self._clones["all groups"] = (clone, initial_state)
            return clone
        clone, initial_state = self._clones["all groups"]
        clone.set_weights(model.get_weights())
        _refresh_cached_state(clone)
        clone.set_blend_weights(
            {h: float(h in group) for h in model.head_names}
        )
        for variable, value in zip(clone.optimizer.variables, initial_state):
            variable.assign(value)
        _continue_learning_rate(model.optimizer, clone.optimizer)
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

    def unimodal_holdout_values(self, epochs: int, seed: Optional[int] = None
                                ) -> Dict[str, float]:
        """Trains the uni-modal clone(s) alone from the model's current
        weights (no joint head) and returns each modality head's mean value
        on the holdout: its loss, or its error `1 - accuracy` with
        `metric="accuracy"`. What each modality reaches on its own.

        Args:
            epochs: epochs the clones train.
            seed: shuffle seed (default: the estimator's).

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
        """`(on T', on V)`: per-example values of `heads`."""
        values = np.concatenate([
            per_example_values(clone, dataset, heads, self.metric, targets)
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


def _measurement_passes(train_subset, holdout, batch_size):
    """`([(dataset, targets)], examples in T')`: what to predict on for
    `T'` then `V`, in batches of `batch_size`, in one pass over both when
    their elements match, else one each."""
    def rebatched(dataset):
        dataset = dataset.unbatch().batch(batch_size)
        targets = input_data.targets_of(dataset)
        size = len(_first_labels(targets))
        return dataset.apply(tf.data.experimental.assert_cardinality(
            input_data.num_batches(size, batch_size))), targets

    (train_subset, train_targets), (holdout, holdout_targets) = (
        rebatched(d) for d in (train_subset, holdout))
    size = len(_first_labels(train_targets))
    if train_subset.element_spec != holdout.element_spec:
        return [(train_subset, train_targets), (holdout, holdout_targets)], size
    merged = train_subset.concatenate(holdout).apply(
        tf.data.experimental.assert_cardinality(
            int(train_subset.cardinality()) + int(holdout.cardinality())))
    y = tf.nest.map_structure(lambda a, b: np.concatenate([a, b]),
                              train_targets[0], holdout_targets[0])
    sample_weight = None if train_targets[1] is None else np.concatenate(
        [train_targets[1], holdout_targets[1]])
    return [(merged, (y, sample_weight))], size


def _first_labels(targets):
    """The labels of the first head in `(y, sample_weight)`."""
    return tf.nest.flatten(targets[0])[0]


def _refresh_cached_state(model) -> None:
    """Layers that cache tensors derived from their variables (e.g. an
    adapted `Normalization`) refresh them, as `load_model` does."""
    for layer in _layers_recursively(model):
        finalize_state = getattr(layer, "finalize_state", None)
        if finalize_state is not None:
            finalize_state()


def _continue_learning_rate(optimizer, clone_optimizer) -> None:
    """Sets a reused clone optimizer's learning rate to the model's current
    one (a schedule continues from the model's step)."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    clone_inner = getattr(clone_optimizer, "inner_optimizer", clone_optimizer)
    rate = clone_inner._learning_rate
    if isinstance(rate, _ContinuedSchedule):
        step = int(keras.ops.convert_to_numpy(optimizer.iterations))
        own = inner._learning_rate
        rate.offset.assign(
            step + (own.start if isinstance(own, _ContinuedSchedule) else 0)
        )
    else:
        clone_inner.learning_rate = float(
            keras.ops.convert_to_numpy(inner.learning_rate)
        )


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
        delta_g_se, delta_o_se = measurement_noise.bootstrap_standard_errors(
            holdout_start, holdout_end, train_start, train_end,
            num_resamples=bootstrap_resamples, seed=seed,
        )
        repeats = len(repeated_means[0])
        if repeats > 1:
            # How the clones happened to train: the spread of each
            # repeat's ΔG and ΔO, as the error of their mean.
            gains = means[0] - repeated_means[0]
            changes = ogr.delta_overfitting(
                means[0], means[1], repeated_means[0], repeated_means[1])
            delta_g_se = np.hypot(
                delta_g_se, gains.std(axis=0, ddof=1) / np.sqrt(repeats))
            delta_o_se = np.hypot(
                delta_o_se, changes.std(axis=0, ddof=1) / np.sqrt(repeats))
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
