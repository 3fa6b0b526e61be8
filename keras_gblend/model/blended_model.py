"""`BlendedModel`: a functional model that blends its heads' losses.

A late-fusion network has one uni-modal head per modality plus one joint
head. Its training loss is `sum_i w_i * L_i`. The weights `w_i` are
non-trainable variables of the model itself (`blend_state`), read inside
`compute_loss`, so a callback can change them between epochs without
recompiling and without retracing the compiled train function; they are
saved and restored with the model (`.keras`, `save_weights`,
`tf.train.Checkpoint`). A training method plugs in through those weights
(G-Blend) or through a gradient transform (OGM-GE, `gradient_transform`);
this module imports neither.
"""

import inspect
from typing import Any, Dict, Optional

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_gblend.inputs import input_checks, input_data
from keras_gblend.model import blend_state, gradient_transform, head_graph
from keras_gblend.model import head_losses as head_losses_lib
from keras_gblend.model import keras_compat
from keras_gblend.model.blend_state import WeightsLike
from keras_gblend.model.fit_data import FitData

BLEND_SCOPES = ("all", "shared")
LOSS_WEIGHTINGS = ("blend", "uncertainty")


@keras.saving.register_keras_serializable(package="keras_gblend")
class BlendedModel(keras.Model):
    """Functional model with named uni-modal heads, a joint head and blend
    weights that scale each head's loss.

    Build it like a functional model whose `outputs` is a dict: one entry per
    modality, keyed by that modality's input name (the output layer needs a
    name of its own), plus the joint output. The
    joint output is the model's answer; `predict` returns every head.

    Labels are given once, as for any classifier: `y` (or the `y` of an
    `(x, y)` dataset) is applied to every head. A dict `{head: labels}` is
    accepted too. The loss is `sum_i w_i * L_i` with `w_i` read from
    `blend_weights_variable`; `compile(loss_weights=...)` sets their
    starting values (default 1.0 each, as in Keras). The per-head losses are
    logged unweighted as `<head>_loss`.

    With `modulation=kg.OGMGE(...)` (any `GradientTransform`), `train_step`
    hands the transform the gradients between the backward pass and the
    update (OGM-GE: `keras_gblend.ogm`); G-Blend weights and OGM-GE combine.

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
        modulation: a gradient transform such as `kg.OGMGE` (or its config
            dict), or `None`.
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
        modulation = gradient_transform.checked(kwargs.pop("modulation", None))
        blend_scope = kwargs.pop("blend_scope", "shared")
        loss_weighting = kwargs.pop("loss_weighting", "blend")
        multi_label = bool(kwargs.pop("multi_label", False))
        for name, value, allowed in (
                ("loss_weighting", loss_weighting, LOSS_WEIGHTINGS),
                ("blend_scope", blend_scope, BLEND_SCOPES)):
            if value not in allowed:
                raise ValueError(
                    f"`{name}` must be one of {allowed}, got {value!r}.")
        super().__init__(*args, **kwargs)
        self.modalities = head_graph.check_heads(
            self, joint_output, modality_logits_output)
        self.joint_output = joint_output
        self.modality_logits_output = modality_logits_output
        self.modulation = modulation
        self.blend_scope = blend_scope
        self.loss_weighting = loss_weighting
        self.multi_label = multi_label
        self.head_names = self.modalities + (joint_output,)
        self._private_ids = None
        # The order of the variables made here is the order they are saved
        # in: keep it (tests/fixtures/before_regroup).
        blend_state.add_blend_state(self, len(self.head_names))
        self.head_loss_trackers = [
            keras.metrics.Mean(name=f"{head}_loss") for head in self.head_names
        ]
        self.log_variances = None
        if loss_weighting == "uncertainty":
            # Kendall et al. (2018): one learned log-variance per head.
            self.log_variances = self.add_weight(
                shape=(len(self.head_names),), initializer="zeros",
                trainable=True, name="log_variances")
        gradient_transform.add_transform_state(self, modulation)
        self.modulator = None
        if modulation is not None:
            self.modulator = modulation.bind(self)
            # Assigned to the model so that Keras resets and logs them.
            self.modulation_trackers = self.modulator.trackers
        self._head_losses = None
        self._user_loss = None
        self._user_loss_weights = None
        self._fit_data = None
        # The XLA-compiled body of the train step when its random draws are
        # made outside XLA (`make_train_function`), else None.
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
            None if self.modulation is None
            else keras.saving.serialize_keras_object(self.modulation))
        return config

    def get_compile_config(self) -> Dict[str, Any]:
        config = super().get_compile_config()
        if config:
            # Keras recorded loss=None (the blend is ours); restore the
            # user's arguments so that `load_model` recompiles faithfully.
            config["loss"] = keras.saving.serialize_keras_object(
                self._user_loss)
            config["loss_weights"] = keras.saving.serialize_keras_object(
                self._user_loss_weights)
        return config

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
        self.blend_weights_variable.assign(blend_state.weights_vector(
            self.head_names, weights, "blend weights"))

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
                `head_names` order. A cross-entropy must read what its head
                outputs (`from_logits=True` for logits): checked here.
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
                f"dict over {list(self.head_names)}).")
        head_losses = head_losses_lib.losses_per_head(loss, self.head_names)
        head_losses_lib.check_losses_read_heads(head_losses, self.output)
        starting_weights = None if loss_weights is None else (
            blend_state.weights_vector(self.head_names, loss_weights,
                                       "`loss_weights`"))
        super().compile(
            optimizer=optimizer,
            loss=None,
            metrics=head_losses_lib.metrics_per_head(metrics, self.head_names),
            weighted_metrics=head_losses_lib.metrics_per_head(
                weighted_metrics, self.head_names),
            **kwargs,
        )
        self._head_losses = head_losses
        self._user_loss = loss
        self._user_loss_weights = loss_weights
        if starting_weights is not None:
            self.blend_weights_variable.assign(starting_weights)

    # ------------------------------------------------------------ loss/metrics
    def labels_per_head(self, y) -> Dict[str, Any]:
        """Maps the labels of a batch (one tensor for every head, or a dict
        `{head: labels}`) onto every head."""
        return head_losses_lib.labels_per_head(y, self.head_names)

    def _compiled_losses(self) -> Dict[str, keras.losses.Loss]:
        if self._head_losses is None:
            raise RuntimeError("Compile the model before computing losses.")
        return self._head_losses

    def compute_head_losses(self, y, y_pred, sample_weight=None):
        """Unweighted per-head losses, each as Keras returns it (float32
        scalars in `head_names` order; under a tf.distribute strategy each
        carries Keras's `1 / num_replicas` factor)."""
        return head_losses_lib.batch_losses(
            self._compiled_losses(), self.labels_per_head(y), y_pred,
            sample_weight)

    def per_example_losses(self, y, y_pred, sample_weight=None):
        """Each head's loss on every example, unreduced: `{head: float32
        numpy array (examples,)}`, whose means are the `<head>_loss` that
        `evaluate` reports."""
        return head_losses_lib.per_example_losses(
            self._compiled_losses(), self.labels_per_head(y), y_pred,
            sample_weight)

    def per_example_errors(self, y, y_pred, sample_weight=None):
        """Each head's error `1 - accuracy` on every example (see
        `head_losses.per_example_errors`)."""
        return head_losses_lib.per_example_errors(
            self.head_names, self.labels_per_head(y), y_pred, sample_weight,
            self.multi_label)

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
                head_losses_lib.unscale_loss_for_replicas(value),
                sample_weight=batch_size)
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
                keras_compat.aggregate_additional_loss(self, extra), "float32")
        return (ops.sum(blended_terms * weights) + regularization,
                ops.sum(stacked) + regularization)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        heads_only = {h: y_pred[h] for h in self.head_names}
        return super().compute_metrics(
            x, self.labels_per_head(y), heads_only, sample_weight=sample_weight)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras 3.15 (TF backend) builds metrics from a batch it reduces in
        # one `strategy.reduce` call, which MultiWorkerMirroredStrategy
        # rejects for nested inputs (tensorflow/tensorflow#72388). Only
        # shapes and dtypes matter there: hand Keras one replica's batch.
        if iterator is not None and self._is_multi_worker():
            data_batch = keras_compat.local_batch(
                self.distribute_strategy, iterator)
            iterator = None
        return super()._maybe_symbolic_build(
            iterator=iterator, data_batch=data_batch)

    def _is_multi_worker(self) -> bool:
        return keras_compat.in_multi_worker_mode(self.distribute_strategy)

    def _for_multi_worker_reduce(self, logs):
        if not self._is_multi_worker():
            return logs
        return keras_compat.reshaped_for_multi_worker_reduce(logs)

    def test_step(self, data):
        logs = super().test_step(data)
        # A transform's trackers measure training steps; evaluation has none
        # to report (Keras would log them as `val_...` zeros).
        training_only = {t.name for t in getattr(
            self, "modulation_trackers", [])}
        logs = {k: v for k, v in logs.items() if k not in training_only}
        return self._for_multi_worker_reduce(logs)

    def predict_step(self, data):
        """Every head's output by name (the joint head is the answer)."""
        y_pred = super().predict_step(data)
        return {h: y_pred[h] for h in self.head_names}

    # ------------------------------------------------------------ train step
    def make_train_function(self, force=False):
        """Keras's train function; with `jit_compile`, one replica and a
        transform that draws random numbers, XLA compiles the step and the
        draws are made outside it, in graph mode, and handed in (measured
        faster than drawing inside XLA: benchmarks/results). With several
        replicas the whole step stays compiled."""
        if self.train_function is not None and not force:
            return self.train_function
        self._xla_step = None
        noise = self.modulation is not None and self.modulation.noise
        if not (self.jit_compile and noise
                and self.distribute_strategy.num_replicas_in_sync == 1):
            return super().make_train_function(force)
        self._xla_step = tf.function(
            self._train_step, jit_compile=True, reduce_retracing=True)
        with keras_compat.jit_compile_off(self):
            return super().make_train_function(force)

    def train_step(self, data):
        """Keras's train step, with the gradient transform between
        gradients and update."""
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
                y, y_pred, sample_weight)
            keras_compat.loss_tracker(self).update_state(
                head_losses_lib.unscale_loss_for_replicas(loss),
                sample_weight=tf.shape(tf.nest.flatten(x)[0])[0])
            scaled_loss = self.optimizer.scale_loss(loss)
            scaled_plain_loss = self.optimizer.scale_loss(plain_loss)
        variables = self.trainable_weights
        gradients = tape.gradient(scaled_loss, variables)
        if shared_scope:
            # Each head's own variables get the gradient of its own loss.
            private = self.private_variable_ids()
            rows = [i for i, v in enumerate(variables) if id(v) in private]
            own = tape.gradient(scaled_plain_loss,
                                [variables[i] for i in rows])
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
                self, self.head_names)
            self._private_ids = {
                id(v) for variables in exclusive.values() for v in variables}
        return self._private_ids

    def modulate_gradients(self, gradients, variables, y, y_pred,
                           noise_draws=None):
        """The gradient transform on one step's gradients (its
        `modulate`, given the joint head's labels)."""
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
        """The rows the `fit` in progress trains on (`FitData.
        training_rows`), for a callback named `who` that trains clones on
        them; raises `ValueError` when no `fit` is in progress."""
        if self._fit_data is None:
            raise ValueError(
                f"{who} found no training data: call `model.fit` on the "
                "BlendedModel itself, or pass `train=`.")
        return self._fit_data.training_rows(who)

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
                head_losses_lib.check_label_form(
                    spec[1], self._head_losses, self.num_classes, what,
                    batched=input_data.is_batched(data))
        elif isinstance(data, (tuple, list)) and len(data) > 1:
            head_losses_lib.check_label_form(
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
        # wherever the user listed them; the transform's run first of all.
        callbacks = sorted(arguments.get("callbacks") or [], key=lambda c: (
            not getattr(c, "writes_epoch_logs", False)))
        arguments["callbacks"] = (
            gradient_transform.fit_callbacks(self.modulator) + callbacks)
        try:
            return super().fit(*bound.args[1:], **bound.kwargs)
        finally:
            self._fit_data = None

