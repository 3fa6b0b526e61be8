"""`BlendedModel`: a functional model that blends its heads' losses.

A late-fusion network has one uni-modal head per modality plus one joint
head. Its training loss is `sum_i w_i * L_i`. The weights `w_i` are
non-trainable variables of the model itself, read inside `compute_loss`, so a
callback can change them between epochs without recompiling and without
retracing the compiled train function; they are saved and restored with the
model (`.keras`, `save_weights`, `tf.train.Checkpoint`).
"""

import copy
import dataclasses
import inspect
from typing import Any, Dict, Mapping, Optional, Sequence, Union

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_gblend import head_graph, input_checks, input_data, ogm
from keras_gblend import head_losses as head_losses_module

WeightsLike = Union[Mapping[str, float], Sequence[float]]
BLEND_SCOPES = ("all", "shared")
LOSS_WEIGHTINGS = ("blend", "uncertainty")


@dataclasses.dataclass
class FitData:
    """The training data of the `fit` call in progress (see `BlendedModel`)."""

    x: Any
    y: Any = None
    sample_weight: Any = None
    batch_size: Optional[int] = None
    validation_split: float = 0.0
    # What callbacks of this fit have taken charge of (e.g. the blend
    # weights), so that two of them do not fight over it.
    claims: Dict[str, Any] = dataclasses.field(default_factory=dict)


@keras.saving.register_keras_serializable(package="keras_gblend")
class _ReducedFunctionLoss(keras.losses.Loss):
    """Turns a per-sample loss function into a reduced `keras.losses.Loss`
    that saves and loads with its function (so estimation clones and
    `.keras` files of a model compiled with `loss="..."` rebuild it)."""

    def __init__(self, fn, name=None, **kwargs):
        super().__init__(name=name or getattr(fn, "__name__", "loss"),
                         **kwargs)
        self.fn = fn

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred)

    def get_config(self):
        config = super().get_config()
        config["fn"] = keras.saving.serialize_keras_object(self.fn)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["fn"] = keras.saving.deserialize_keras_object(config["fn"])
        return cls(**config)


def unscale_loss_for_replicas(value):
    """Undo Keras's `1 / num_replicas` loss scaling under a tf.distribute strategy.

    Keras `Loss` objects divide their result by the number of replicas so that
    summing gradients across replicas gives the global-batch mean. A value
    that is *logged* must be multiplied back.
    """
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if replicas > 1:
        value = value * ops.cast(replicas, value.dtype)
    return value


def _fresh_metric(metric):
    """A metric with no shared state: strings and functions as they are,
    `keras.metrics.Metric` objects re-created from their config."""
    if isinstance(metric, keras.metrics.Metric):
        return metric.__class__.from_config(metric.get_config())
    return metric


@keras.saving.register_keras_serializable(package="keras_gblend")
class BlendedModel(keras.Model):
    """Functional model with named uni-modal heads, a joint head and blend
    weights that scale each head's loss.

    Build it like a functional model whose `outputs` is a dict: one entry per
    modality, named after that modality's input, plus the joint output. The
    joint output is the model's answer; `predict` returns every head.

    Labels are given once, as for any classifier: `y` (or the `y` of an
    `(x, y)` dataset) is applied to every head. A dict `{head: labels}` is
    accepted too. The loss is `sum_i w_i * L_i` with `w_i` read from
    `blend_weights_variable`; `compile(loss_weights=...)` sets their
    starting values (default 1.0 each, as in Keras). The per-head losses are
    logged unweighted as `<head>_loss`.

    With `modulation=kg.OGMGE(...)`, `train_step` applies OGM-GE to the
    modality encoders' gradients (see `keras_gblend.ogm`); G-Blend weights
    and OGM-GE combine.

    Args:
        inputs: a dict `{modality: keras.Input}` (or any functional inputs).
        outputs: a dict `{head_name: tensor}` with one uni-modal head per
            modality and the joint head (plus, optionally, the output named
            by `modality_logits_output`).
        joint_output: name of the joint head. Defaults to `"joint"`.
        modality_logits_output: optional name of an output `(batch, k,
            classes)` holding each modality's additive share of the joint
            logits (as `ConcatFusion`/`SumFusion` return); it gets no loss
            and is what OGM-GE scores by default.
        modulation: an `OGMGE` (or its config dict), or `None`.
        blend_scope: what the blend weights scale. `"shared"` (default):
            variables that several heads share (the encoders) get the
            gradient of `sum_i w_i * L_i`; each head's own variables (its
            classifier) learn from its own loss `L_i` at full rate. So no
            head, the joint answer included, is left untrained by a small
            weight, and a head with weight 0 is a probe of its encoder's
            features that never changes them. `"all"`: the paper's literal
            loss and Keras's `loss_weights` semantics: every variable gets
            the gradient of `sum_i w_i * L_i`, so a head with a small weight
            also learns slowly.
        loss_weighting: `"blend"` (default): the loss is `sum_i w_i * L_i`.
            `"uncertainty"`: learned loss weights (Kendall, Gal & Cipolla,
            2018), a baseline of the G-Blend paper: the loss is
            `sum_i w_i * (exp(-s_i) * L_i + s_i)` with one trainable
            log-variance `s_i` per head (`log_variances`, starting at 0);
            the learned weights are `exp(-s_i)` (`learned_loss_weights`).
        multi_label: each head's logits are independent labels (sigmoid;
            compile with `BinaryCrossentropy(from_logits=True)` and
            multi-hot labels `(batch, classes)`). OGM-GE then scores the
            mean sigmoid probability of the true labels, and G-Blend's
            `metric="accuracy"` is the per-label (Hamming) accuracy.
        name: model name.

    Example:

    ```python
    a, v = keras.Input((8,), name="audio"), keras.Input((4,), name="video")
    fa = keras.layers.Dense(16, activation="relu")(a)
    fv = keras.layers.Dense(16, activation="relu")(v)
    model = kg.BlendedModel(
        inputs={"audio": a, "video": v},
        outputs={
            "audio": keras.layers.Dense(3, name="audio_head")(fa),
            "video": keras.layers.Dense(3, name="video_head")(fv),
            "joint": keras.layers.Dense(3, name="joint")(
                keras.layers.Concatenate()([fa, fv])),
        })
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True), loss_weights={"audio": .2, "video": .3,
                                         "joint": .5})
    ```
    """

    # Not mutated by benchmarks/mutation.py: mutmut's wrapper would hide
    # `self` from the signature Keras's `Operation.__new__` inspects.
    def __init__(self, *args, **kwargs):  # pragma: no mutate block
        # The (*args, **kwargs) signature keeps Keras's functional
        # serialization path (`get_config`/`from_config`) for this subclass.
        joint_output = kwargs.pop("joint_output", "joint")
        modality_logits_output = kwargs.pop("modality_logits_output", None)
        modulation = kwargs.pop("modulation", None)
        blend_scope = kwargs.pop("blend_scope", "shared")
        loss_weighting = kwargs.pop("loss_weighting", "blend")
        multi_label = bool(kwargs.pop("multi_label", False))
        if loss_weighting not in LOSS_WEIGHTINGS:
            raise ValueError(
                f"`loss_weighting` must be one of {LOSS_WEIGHTINGS}, got "
                f"{loss_weighting!r}."
            )
        if blend_scope not in BLEND_SCOPES:
            raise ValueError(
                f"`blend_scope` must be one of {BLEND_SCOPES}, got "
                f"{blend_scope!r}."
            )
        if isinstance(modulation, dict):
            modulation = keras.saving.deserialize_keras_object(modulation)
        if modulation is not None and not isinstance(modulation, ogm.OGMGE):
            raise TypeError(
                f"`modulation` must be a kg.OGMGE or None, got {modulation!r}."
            )
        super().__init__(*args, **kwargs)
        outputs = self.output
        if not isinstance(outputs, dict):
            raise TypeError(
                "BlendedModel needs `outputs` to be a dict "
                "{head_name: tensor}; got "
                f"{type(outputs).__name__}. Use `kg.as_blended_model` to "
                "convert a functional model with named outputs."
            )
        if joint_output not in outputs:
            raise ValueError(
                f"The model has no joint output {joint_output!r}; its outputs "
                f"are {list(outputs)}. Pass `joint_output=` with the name of "
                "the head that sees every modality."
            )
        if (
            modality_logits_output is not None
            and modality_logits_output not in outputs
        ):
            raise ValueError(
                f"`modality_logits_output` {modality_logits_output!r} is not "
                f"an output; outputs are {list(outputs)}."
            )
        modalities = tuple(
            name
            for name in outputs
            if name not in (joint_output, modality_logits_output)
        )
        if not modalities:
            raise ValueError(
                "BlendedModel needs at least one uni-modal output besides "
                f"the joint output {joint_output!r}."
            )
        if isinstance(self.input, dict):
            unmatched = [m for m in modalities if m not in self.input]
            if unmatched:
                raise ValueError(
                    f"Output(s) {unmatched} match no modality: the model's "
                    f"modalities (its input names) are {list(self.input)}. "
                    "Name each uni-modal output after its modality's input."
                )
            input_layer_names = {
                name: tensor._keras_history.operation.name
                for name, tensor in self.input.items()
            }
            for modality in modalities:
                reads = head_graph.input_names(outputs[modality])
                if reads != [input_layer_names[modality]]:
                    raise ValueError(
                        f"Uni-modal output {modality!r} must read its own "
                        f"modality's input {modality!r} and no other, but it "
                        f"is computed from input(s) {reads}. Wire each "
                        "uni-modal head to its own modality's encoder."
                    )
        if modality_logits_output is not None:
            shape = tuple(outputs[modality_logits_output].shape)
            if len(shape) != 3 or shape[1] != len(modalities):
                raise ValueError(
                    f"Output {modality_logits_output!r} has shape {shape}; "
                    f"expected (batch, {len(modalities)}, classes), one row "
                    f"per modality {list(modalities)}."
                )
        self.joint_output = joint_output
        self.modality_logits_output = modality_logits_output
        self.modulation = modulation
        self.blend_scope = blend_scope
        self._private_ids = None
        self.modalities = modalities
        self.head_names = modalities + (joint_output,)
        num_heads = len(self.head_names)
        self.blend_weights_variable = self.add_weight(
            shape=(num_heads,),
            initializer="ones",
            dtype="float32",
            trainable=False,
            name="blend_weights",
        )
        # The latest G-Blend estimate, kept on the model so that it is saved,
        # restored and logged after a resume.
        self.blend_estimation_epoch = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(-1),
            dtype="int64",
            trainable=False,
            name="blend_estimation_epoch",
        )
        # Its figures per head (NaN until the first estimate).
        for figure in ("delta_o", "delta_g", "delta_g_se", "delta_o_se"):
            setattr(self, f"blend_{figure}", self.add_weight(
                shape=(num_heads,),
                initializer=keras.initializers.Constant(np.nan),
                dtype="float32",
                trainable=False,
                name=f"blend_{figure}",
            ))
        self.head_loss_trackers = [
            keras.metrics.Mean(name=f"{head}_loss") for head in self.head_names
        ]
        self.loss_weighting = loss_weighting
        self.multi_label = multi_label
        self.log_variances = None
        if loss_weighting == "uncertainty":
            # Kendall et al. (2018): one learned log-variance per head.
            self.log_variances = self.add_weight(
                shape=(num_heads,), initializer="zeros", trainable=True,
                name="log_variances",
            )
        # OGM-GE state; always present so that every BlendedModel has the
        # same variables (estimation clones train without modulation).
        self.modulation_epoch = self.add_weight(
            shape=(),
            initializer="zeros",
            dtype="int64",
            trainable=False,
            name="modulation_epoch",
        )
        self.modulation_seed_generator = keras.random.SeedGenerator(
            None if modulation is None else modulation.seed,
            name="modulation_seed_generator",
        )
        # Tracked as the model's own (non-trainable) variable, so that the
        # GE noise stream is saved and restored with every checkpoint.
        self.modulation_seed_state = self.modulation_seed_generator.state
        self.modulator = None
        if modulation is not None:
            self.modulator = ogm.GradientModulator(self)
            # Assigned to the model so that Keras resets and logs them.
            self.modulation_trackers = self.modulator.trackers
        self._head_losses = None
        self._user_loss = None
        self._user_loss_weights = None
        self._fit_data = None
        # The XLA-compiled body of the train step when the GE noise is
        # drawn outside XLA (`make_train_function`), else None.
        self._xla_step = None

    # ----------------------------------------------------------------- config
    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config["joint_output"] = self.joint_output
        config["modality_logits_output"] = self.modality_logits_output
        config["blend_scope"] = self.blend_scope
        config["loss_weighting"] = self.loss_weighting
        config["multi_label"] = self.multi_label
        config["modulation"] = (
            None
            if self.modulation is None
            else keras.saving.serialize_keras_object(self.modulation)
        )
        return config

    def get_compile_config(self) -> Dict[str, Any]:
        config = super().get_compile_config()
        if config:
            # Keras recorded loss=None (the blend is ours); restore the
            # user's arguments so that `load_model` recompiles faithfully.
            config["loss"] = keras.saving.serialize_keras_object(
                self._user_loss
            )
            config["loss_weights"] = keras.saving.serialize_keras_object(
                self._user_loss_weights
            )
        return config

    @property
    def learned_loss_weights(self) -> Optional[Dict[str, float]]:
        """`{head: exp(-s_head)}` under `loss_weighting="uncertainty"`,
        else `None`."""
        if self.log_variances is None:
            return None
        values = np.exp(-keras.ops.convert_to_numpy(self.log_variances))
        return {h: float(w) for h, w in zip(self.head_names, values)}

    @property
    def head_losses(self) -> Optional[Dict[str, keras.losses.Loss]]:
        """`{head: loss object}` after `compile` (each head its own)."""
        return self._head_losses

    @property
    def loss_argument(self):
        """The `loss` argument given to `compile` (before per-head copies)."""
        return self._user_loss

    def compile_from_config(self, config: Dict[str, Any]) -> None:
        """Recompiles from `get_compile_config()` (used by `load_model`)."""
        config = keras.saving.deserialize_keras_object(config)
        # The blend weights are restored with the variables; recompiling must
        # not reset them to the starting `loss_weights`.
        current = keras.ops.convert_to_numpy(self.blend_weights_variable)
        self.compile(**config)
        self.blend_weights_variable.assign(current)
        if self.built and self.optimizer is not None:
            self.optimizer.build(self.trainable_variables)

    # ---------------------------------------------------------- blend weights
    @property
    def blend_weights(self) -> Dict[str, float]:
        """Current blend weights as `{head_name: float}`."""
        values = keras.ops.convert_to_numpy(self.blend_weights_variable)
        return {h: float(w) for h, w in zip(self.head_names, values)}

    def set_blend_weights(self, weights: WeightsLike) -> None:
        """Assigns new blend weights (no recompile, no retrace).

        Args:
            weights: `{head_name: weight}` covering every head, or a sequence
                in `head_names` order. Weights must be finite and >= 0.
        """
        vector = self._weights_vector(weights, "blend weights")
        self.blend_weights_variable.assign(vector)

    def _weights_vector(self, weights: WeightsLike, what: str) -> np.ndarray:
        if isinstance(weights, Mapping):
            unknown = sorted(set(weights) - set(self.head_names))
            missing = [h for h in self.head_names if h not in weights]
            if unknown or missing:
                raise ValueError(
                    f"{what} must name every head {list(self.head_names)}; "
                    f"missing {missing}, unknown {unknown}."
                )
            vector = [weights[h] for h in self.head_names]
        else:
            vector = list(weights)
            if len(vector) != len(self.head_names):
                raise ValueError(
                    f"{what} has {len(vector)} values but the model has "
                    f"{len(self.head_names)} heads {list(self.head_names)}."
                )
        vector = np.asarray(vector, dtype=np.float32)
        if not np.all(np.isfinite(vector)) or np.any(vector < 0):
            raise ValueError(
                f"{what} must be finite and non-negative, got "
                f"{dict(zip(self.head_names, vector.tolist()))}."
            )
        return vector

    # ---------------------------------------------------------------- compile
    def compile(
        self,
        optimizer="rmsprop",
        loss=None,
        loss_weights: Optional[WeightsLike] = None,
        metrics=None,
        weighted_metrics=None,
        **kwargs,
    ):
        """Configures training like `keras.Model.compile`.

        Args:
            optimizer: any Keras optimizer or its name.
            loss: one loss for every head, a dict `{head: loss}` or a list in
                `head_names` order.
            loss_weights: starting blend weights (dict or list); `None` keeps
                the current values (1.0 each on a new model).
            metrics: a list applied to every head (each head gets its own
                metric objects), or a dict `{head: [metrics]}`.
            weighted_metrics: as `metrics`.
            **kwargs: forwarded to `keras.Model.compile` (`jit_compile`,
                `steps_per_execution`, `run_eagerly`, ...).
        """
        if loss is None:
            raise ValueError(
                "BlendedModel.compile needs a `loss` (one for every head or a "
                f"dict over {list(self.head_names)})."
            )
        head_losses = self._losses_per_head(loss)
        starting_weights = (
            None
            if loss_weights is None
            else self._weights_vector(loss_weights, "`loss_weights`")
        )
        super().compile(
            optimizer=optimizer,
            loss=None,
            metrics=self._metrics_per_head(metrics),
            weighted_metrics=self._metrics_per_head(weighted_metrics),
            **kwargs,
        )
        head_losses_module.check_losses_read_heads(head_losses, self.output)
        self._head_losses = head_losses
        self._user_loss = loss
        self._user_loss_weights = loss_weights
        if starting_weights is not None:
            self.blend_weights_variable.assign(starting_weights)

    def _losses_per_head(self, loss) -> Dict[str, keras.losses.Loss]:
        if isinstance(loss, Mapping):
            missing = [h for h in self.head_names if h not in loss]
            unknown = sorted(set(loss) - set(self.head_names))
            if missing or unknown:
                raise ValueError(
                    f"`loss` dict must name every head {list(self.head_names)};"
                    f" missing {missing}, unknown {unknown}."
                )
            per_head = {h: loss[h] for h in self.head_names}
        elif isinstance(loss, (list, tuple)):
            if len(loss) != len(self.head_names):
                raise ValueError(
                    f"`loss` list has {len(loss)} entries but the model has "
                    f"{len(self.head_names)} heads {list(self.head_names)}."
                )
            per_head = dict(zip(self.head_names, loss))
        else:
            per_head = {h: loss for h in self.head_names}
        resolved = {}
        for head, head_loss in per_head.items():
            if isinstance(head_loss, keras.losses.Loss):
                # Each head gets its own object: a loss may carry state.
                head_loss = head_loss.__class__.from_config(
                    head_loss.get_config()
                )
            else:
                head_loss = keras.losses.get(head_loss)
                if not isinstance(head_loss, keras.losses.Loss):
                    head_loss = _ReducedFunctionLoss(head_loss)
            resolved[head] = head_loss
        return resolved

    def _metrics_per_head(self, metrics):
        if metrics is None or isinstance(metrics, Mapping):
            return metrics
        if not isinstance(metrics, (list, tuple)):
            metrics = [metrics]
        return {h: [_fresh_metric(m) for m in metrics] for h in self.head_names}

    # ------------------------------------------------------------ loss/metrics
    def labels_per_head(self, y) -> Dict[str, Any]:
        """Maps the labels of a batch onto every head.

        Args:
            y: one label tensor for all heads, or a dict `{head: labels}`.

        Returns:
            dict `{head_name: labels}`.
        """
        if y is None:
            raise ValueError(
                "BlendedModel needs labels: pass `y` (or `(x, y)` batches)."
            )
        if isinstance(y, Mapping):
            missing = [h for h in self.head_names if h not in y]
            if missing:
                raise ValueError(
                    f"Labels dict has no entry for head(s) {missing}; it has "
                    f"{list(y)}. Pass one label tensor for all heads or a "
                    "dict covering every head."
                )
            return {h: y[h] for h in self.head_names}
        return {h: y for h in self.head_names}

    def compute_head_losses(self, y, y_pred, sample_weight=None):
        """Unweighted per-head losses, each as Keras returns it.

        Under a tf.distribute strategy each value carries Keras's
        `1 / num_replicas` factor; see `unscale_loss_for_replicas`.

        Returns:
            list of float32 scalars in `head_names` order.
        """
        if self._head_losses is None:
            raise RuntimeError("Compile the model before computing losses.")
        labels = self.labels_per_head(y)
        values = []
        for head in self.head_names:
            head_weight = (
                sample_weight.get(head)
                if isinstance(sample_weight, Mapping)
                else sample_weight
            )
            value = self._head_losses[head](
                labels[head], y_pred[head], head_weight
            )
            values.append(ops.cast(value, "float32"))
        return values

    def per_example_losses(self, y, y_pred, sample_weight=None):
        """Each head's loss on every example, unreduced.

        Their means over the examples equal the `<head>_loss` that
        `evaluate` reports: the same loss objects, with sample weights, as
        Keras's `"sum_over_batch_size"` reduction weighs them.

        Args:
            y: labels (one array for all heads, or `{head: labels}`).
            y_pred: `{head: predictions}` (e.g. from `predict`).
            sample_weight: optional per-example weights (or a dict per head).

        Returns:
            `{head: float32 numpy array (examples,)}`.
        """
        if self._head_losses is None:
            raise RuntimeError("Compile the model before computing losses.")
        labels = self.labels_per_head(y)
        values = {}
        for head in self.head_names:
            loss = copy.copy(self._head_losses[head])
            loss.reduction = None
            weight = (
                sample_weight.get(head)
                if isinstance(sample_weight, Mapping)
                else sample_weight
            )
            per_example = ops.cast(
                loss(labels[head], y_pred[head], weight), "float32"
            )
            rank = len(per_example.shape)
            if rank > 1:  # e.g. per-timestep losses: mean per example
                per_example = ops.mean(per_example, axis=tuple(range(1, rank)))
            values[head] = ops.convert_to_numpy(per_example)
        return values

    def per_example_errors(self, y, y_pred, sample_weight=None):
        """Each head's error `1 - accuracy` on every example (argmax of the
        prediction against the class id of sparse or one-hot labels; with
        `multi_label`, the share of the example's labels predicted wrong).

        With sample weights, each error is scaled by `w * n / sum(w)`, so the
        mean over examples is the weighted error, as Keras's weighted
        accuracy reports it.

        Returns:
            `{head: float32 numpy array (examples,)}`.
        """
        labels = self.labels_per_head(y)
        values = {}
        for head in self.head_names:
            if self.multi_label:
                # Share of labels wrong at probability 0.5 (logit 0).
                predicted = np.asarray(y_pred[head]) > 0
                truth = np.asarray(labels[head]) > 0.5
                errors = (predicted != truth).mean(axis=-1).astype(np.float32)
            else:
                predicted = np.asarray(y_pred[head]).argmax(axis=-1)
                truth = input_data.class_ids(np.asarray(labels[head]))
                errors = (predicted.reshape(len(truth)) != truth).astype(
                    np.float32)
            weight = (
                sample_weight.get(head)
                if isinstance(sample_weight, Mapping)
                else sample_weight
            )
            if weight is not None:
                weight = np.asarray(weight, np.float32).reshape(len(errors))
                errors = errors * weight * len(weight) / weight.sum()
            values[head] = errors
        return values

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        """`sum_i w_i * L_i` plus regularization losses.

        Records each unweighted `L_i` in its `<head>_loss` tracker.
        """
        del x, training
        return self._blended_and_plain_losses(y, y_pred, sample_weight)[0]

    def _blended_and_plain_losses(self, y, y_pred, sample_weight):
        """`(sum_i w_i L_i + reg, sum_i L_i + reg)`; updates the per-head
        loss trackers."""
        head_losses = self.compute_head_losses(y, y_pred, sample_weight)
        batch_size = ops.shape(next(iter(y_pred.values())))[0]
        for tracker, value in zip(self.head_loss_trackers, head_losses):
            tracker.update_state(
                unscale_loss_for_replicas(value), sample_weight=batch_size
            )
        weights = ops.convert_to_tensor(self.blend_weights_variable)
        stacked = ops.stack(head_losses)
        blended_terms = stacked
        if self.log_variances is not None:
            # exp(-s_i) * L_i + s_i: a head whose loss stays high learns a
            # large variance s_i and so a small weight exp(-s_i).
            log_variances = ops.convert_to_tensor(self.log_variances)
            blended_terms = ops.exp(-log_variances) * stacked + log_variances
        regularization = 0.0
        for extra in self.losses:
            # As Keras's own `compute_loss`: summed, cast, and scaled by
            # 1/replicas under a tf.distribute strategy.
            regularization = regularization + ops.cast(
                self._aggregate_additional_loss(extra), "float32"
            )
        return (
            ops.sum(blended_terms * weights) + regularization,
            ops.sum(stacked) + regularization,
        )

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        heads_only = {h: y_pred[h] for h in self.head_names}
        return super().compute_metrics(
            x, self.labels_per_head(y), heads_only, sample_weight=sample_weight
        )

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras 3.15 (TF backend) builds metrics from a batch it reduces in
        # one `strategy.reduce` call, which MultiWorkerMirroredStrategy
        # rejects for nested inputs (tensorflow/tensorflow#72388). Only
        # shapes and dtypes matter there, so hand Keras one replica's local
        # batch instead.
        if iterator is not None and self._is_multi_worker():
            for _, _, it in iterator:
                batch = next(it)
                data_batch = tf.nest.map_structure(
                    lambda v: self.distribute_strategy.experimental_local_results(v)[0]
                    if isinstance(v, tf.distribute.DistributedValues)
                    else v,
                    batch,
                )
                break
            iterator = None
        return super()._maybe_symbolic_build(
            iterator=iterator, data_batch=data_batch
        )

    def _is_multi_worker(self) -> bool:
        # Keras reduces across workers only in multi-worker mode (a cluster
        # in TF_CONFIG); a MultiWorkerMirroredStrategy without one runs as
        # one worker, whose logs must stay scalars (TensorBoard).
        strategy = self.distribute_strategy
        return isinstance(
            strategy, tf.distribute.MultiWorkerMirroredStrategy
        ) and strategy.extended._in_multi_worker_mode()

    def _for_multi_worker_reduce(self, logs):
        # Keras 3.15 reduces step logs across a MultiWorkerMirroredStrategy
        # with `strategy.reduce("MEAN", v, axis=0)`, which fails on scalars
        # (tensorflow/tensorflow#72388). Shape (1,) values reduce to the same
        # scalar.
        if not self._is_multi_worker():
            return logs
        return tf.nest.map_structure(lambda v: tf.reshape(v, [1]), logs)

    def test_step(self, data):
        logs = super().test_step(data)
        # OGM-GE's trackers measure training steps; evaluation has none to
        # report (Keras would log them as `val_ogm/...` zeros).
        trackers = getattr(self, "modulation_trackers", [])
        training_only = {tracker.name for tracker in trackers}
        logs = {k: v for k, v in logs.items() if k not in training_only}
        return self._for_multi_worker_reduce(logs)

    def predict_step(self, data):
        """Every head's output by name (the joint head is the answer)."""
        y_pred = super().predict_step(data)
        return {h: y_pred[h] for h in self.head_names}

    # ------------------------------------------------------------ train step
    def make_train_function(self, force=False):
        """Keras's train function; with `jit_compile` and GE noise on one
        replica, XLA compiles the step but not the noise draw.

        Drawn inside XLA (its CPU normal sampler), GE noise made an XLA
        ResNet-18 step 1.27x its plain step; drawn in graph mode
        (`ogm.standard_normal`) and handed to the compiled step, 1.10x.
        The numbers are those a graph-mode step draws. With several
        replicas the whole step stays compiled (its noise then comes from
        `stateless_normal`).
        """
        if self.train_function is not None and not force:
            return self.train_function
        self._xla_step = None
        noise = self.modulation is not None and self.modulation.noise
        if not (self.jit_compile and noise
                and self.distribute_strategy.num_replicas_in_sync == 1):
            return super().make_train_function(force)
        self._xla_step = tf.function(
            self._train_step, jit_compile=True, reduce_retracing=True)
        jit_compile, self._jit_compile = self._jit_compile, False
        try:
            return super().make_train_function(force)
        finally:
            self._jit_compile = jit_compile

    def train_step(self, data):
        """Keras's train step, with OGM-GE between gradients and update."""
        if self._xla_step is None:
            return self._for_multi_worker_reduce(self._train_step(data))
        draws = self.modulator.draw_noise(self.trainable_weights)
        return self._for_multi_worker_reduce(self._xla_step(data, draws))

    def _train_step(self, data, noise_draws=None):
        shared_scope = self.blend_scope == "shared"
        if self.modulation is None and not shared_scope:
            return super().train_step(data)
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape(persistent=shared_scope) as tape:
            y_pred = self(x, training=True)
            loss, plain_loss = self._blended_and_plain_losses(
                y, y_pred, sample_weight
            )
            self._loss_tracker.update_state(
                unscale_loss_for_replicas(loss),
                sample_weight=tf.shape(tf.nest.flatten(x)[0])[0],
            )
            scaled_loss = self.optimizer.scale_loss(loss)
            scaled_plain_loss = self.optimizer.scale_loss(plain_loss)
        variables = self.trainable_weights
        gradients = tape.gradient(scaled_loss, variables)
        if shared_scope:
            # Each head's own variables get the gradient of its own loss.
            private = self.private_variable_ids()
            rows = [i for i, v in enumerate(variables) if id(v) in private]
            own = tape.gradient(
                scaled_plain_loss, [variables[i] for i in rows]
            )
            for i, gradient in zip(rows, own):
                gradients[i] = gradient
            del tape
        if self.modulation is not None:
            gradients = self.modulate_gradients(
                gradients, variables, y, y_pred, noise_draws)
        self.optimizer.apply_gradients(zip(gradients, variables))
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def private_variable_ids(self):
        """Ids of the trainable variables that exactly one head depends on
        (read from the functional graph)."""
        if self._private_ids is None:
            exclusive = head_graph.exclusive_trainable_variables(
                self, self.head_names
            )
            self._private_ids = {
                id(v) for variables in exclusive.values() for v in variables
            }
        return self._private_ids

    def modulate_gradients(self, gradients, variables, y, y_pred,
                           noise_draws=None):
        """OGM-GE on one step's gradients (`ogm.GradientModulator.modulate`)."""
        labels = self.labels_per_head(y)[self.joint_output]
        return self.modulator.modulate(
            gradients, variables, labels, y_pred, noise_draws)

    # -------------------------------------------------------------------- fit
    @property
    def current_fit_data(self) -> Optional[FitData]:
        """The training data of the `fit` call in progress, else `None`.

        `GBlendCallback` and `ModalityImbalanceMonitor` train their clones
        on it (`current_training_rows`).
        """
        return self._fit_data

    def current_training_rows(self, who: str):
        """The rows the `fit` in progress trains on, for a callback that
        trains clones on them: its dataset, or `(x, y[, sample_weight])`
        arrays without the `validation_split` rows Keras validates on.

        Args:
            who: the callback's name, for the error messages.

        Raises:
            ValueError: no `fit` in progress, or inputs other than arrays
                with `y` or a `tf.data.Dataset`.
        """
        fit_data = self._fit_data
        if fit_data is None:
            raise ValueError(
                f"{who} found no training data: call `model.fit` on "
                "the BlendedModel itself, or pass `train=`."
            )
        if isinstance(fit_data.x, tf.data.Dataset):
            return fit_data.x
        if fit_data.y is None:
            raise ValueError(
                f"{who} can estimate from `fit(x, y)` arrays or a "
                "tf.data.Dataset; for other inputs (generators, PyDataset) "
                "pass `train=`."
            )
        data = (fit_data.x, fit_data.y)
        if fit_data.sample_weight is not None:
            data += (fit_data.sample_weight,)
        if fit_data.validation_split:
            # Keras validates on the last rows; train clones on the rest only.
            size = input_data.num_examples(fit_data.x)
            keep = np.arange(int(size * (1.0 - fit_data.validation_split)))
            data = tuple(input_data.take_rows(part, keep) for part in data)
        return data

    @property
    def num_classes(self) -> Optional[int]:
        """Classes of the joint head (its last dimension; None if unknown
        or a single unit)."""
        units = self.output[self.joint_output].shape[-1]
        return int(units) if units and units > 1 else None

    def check_data(self, data, what: str, allow_unbatched: bool = True
                   ) -> None:
        """Raises `ValueError` for data the model cannot train on, naming
        `what`: inputs that do not fit the model's (a missing modality, a
        wrong feature shape, an unbatched dataset unless
        `allow_unbatched`), non-finite features, modalities with different
        numbers of rows, labels outside `[0, num_classes)` or in the wrong
        form for the loss (one-hot under a sparse loss)."""
        if isinstance(self.input, dict):
            input_checks.check_inputs(data, self.input, what, allow_unbatched)
        input_checks.check_arrays(data, what, self.num_classes)
        if self._head_losses is None:
            return
        if isinstance(data, tf.data.Dataset):
            spec = data.element_spec
            if isinstance(spec, tuple) and len(spec) > 1:
                head_losses_module.check_label_form(
                    spec[1], self._head_losses, self.num_classes, what,
                    batched=input_data.is_batched(data))
        elif isinstance(data, (tuple, list)) and len(data) > 1:
            head_losses_module.check_label_form(
                data[1], self._head_losses, self.num_classes, what)

    def fit(self, *args, **kwargs):
        bound = inspect.signature(keras.Model.fit).bind(self, *args, **kwargs)
        arguments = bound.arguments
        x, y = arguments.get("x"), arguments.get("y")
        if isinstance(x, tf.data.Dataset):
            self.check_data(x, "The training dataset", allow_unbatched=False)
        elif y is not None:
            self.check_data((x, y), "fit data")
        validation = arguments.get("validation_data")
        if isinstance(validation, (tuple, list)) and len(validation) in (2, 3):
            self.check_data(tuple(validation), "validation_data")
        elif isinstance(validation, tf.data.Dataset):
            self.check_data(validation, "validation_data",
                            allow_unbatched=False)
        self._fit_data = FitData(
            x=arguments.get("x"),
            y=arguments.get("y"),
            sample_weight=arguments.get("sample_weight"),
            batch_size=arguments.get("batch_size"),
            validation_split=arguments.get("validation_split") or 0.0,
        )
        # Callbacks that add to the epoch logs run before the others, so
        # that TensorBoard, CSVLogger or EarlyStopping see what they add
        # wherever the user listed them.
        callbacks = sorted(arguments.get("callbacks") or [], key=lambda c: (
            not getattr(c, "writes_epoch_logs", False)))
        if self.modulation is not None:
            callbacks = [ogm.ModulationEpochCounter()] + callbacks
        arguments["callbacks"] = callbacks
        try:
            return super().fit(*bound.args[1:], **bound.kwargs)
        finally:
            self._fit_data = None


def as_blended_model(
    model: keras.Model,
    joint_output: str = "joint",
    output_modalities: Optional[Mapping[str, str]] = None,
    modality_logits_output: Optional[str] = None,
    modulation: Optional[ogm.OGMGE] = None,
    blend_scope: str = "shared",
) -> BlendedModel:
    """Wraps a functional model with named outputs into a `BlendedModel`.

    The new model shares the original's layers and variables.

    Args:
        model: functional model whose outputs are named per modality (a dict
            of outputs, or output layers named after the modalities) plus a
            joint output.
        joint_output: name of the joint output.
        output_modalities: optional `{output_name: modality}` renaming, for
            models whose output layers cannot share their modality input's
            name (Keras needs unique layer names).
        modality_logits_output: see `BlendedModel`.
        modulation: optional `kg.OGMGE`.
        blend_scope: `"all"` or `"shared"` (see `BlendedModel`).

    Returns:
        A `BlendedModel` over the same graph.

    Example:

    ```python
    blended = kg.as_blended_model(
        my_functional_model, joint_output="fused",
        output_modalities={"audio_logits": "audio", "video_logits": "video"})
    ```
    """
    if isinstance(model, BlendedModel):
        return model
    outputs = model.output
    if not isinstance(outputs, dict):
        outputs = dict(zip(model.output_names, model.outputs))
    if output_modalities:
        unknown = sorted(set(output_modalities) - set(outputs))
        if unknown:
            raise ValueError(
                f"`output_modalities` names unknown output(s) {unknown}; the "
                f"model's outputs are {list(outputs)}."
            )
        outputs = {output_modalities.get(k, k): v for k, v in outputs.items()}
    return BlendedModel(
        inputs=model.input,
        outputs=outputs,
        joint_output=joint_output,
        modality_logits_output=modality_logits_output,
        modulation=modulation,
        blend_scope=blend_scope,
        name=model.name,
    )
