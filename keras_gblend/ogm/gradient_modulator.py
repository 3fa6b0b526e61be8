"""`GradientModulator`: OGM-GE's step for one `BlendedModel`, between the
backward pass and the optimizer update."""

from typing import Dict, List, Optional

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_gblend.model import head_graph, keras_compat
from keras_gblend.ogm.transforms import (
    add_gradient_noise,
    discrepancy_ratios,
    draw_standard_normals,
    modality_scores,
    modulation_coefficients,
    scale_gradients,
)


def modulated_variable_groups(model, config) -> List[List]:
    """Per modality (in `model.modalities` order), the encoder variables
    OGM-GE modulates.

    Args:
        model: a `BlendedModel`.
        config: the `OGMGE` settings.

    Returns:
        A list of k lists of variables.
    """
    if config.encoder_layers is not None:
        missing = [m for m in model.modalities if m not in config.encoder_layers]
        if missing:
            raise ValueError(
                f"`encoder_layers` names no layers for modality(ies) {missing}."
            )
        groups = []
        for modality in model.modalities:
            variables = []
            for name in config.encoder_layers[modality]:
                variables.extend(model.get_layer(name).trainable_variables)
            groups.append(variables)
    else:
        per_head = head_graph.head_trainable_variables(model)
        joint_ids = {id(v) for v in per_head[model.joint_output]}
        groups = [
            [v for v in per_head[m] if id(v) in joint_ids]
            for m in model.modalities
        ]
    if config.params == "kernels":
        groups = [[v for v in g if len(v.shape) >= 2] for g in groups]
    elif config.params == "conv":
        groups = [[v for v in g if len(v.shape) == 4] for g in groups]
    empty = [m for m, g in zip(model.modalities, groups) if not g]
    if empty:
        raise ValueError(
            f"OGM-GE found no encoder variables with params={config.params!r} "
            f"for modality(ies) {empty}; name them with "
            "`OGMGE(encoder_layers=...)`, or use params='kernels' (Dense "
            "kernels too) or 'all' if the encoder has no such variables."
        )
    return groups


def all_reduce_sum(value):
    """Sums `value` over the replicas of the current tf.distribute strategy."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)


def is_first_replica():
    """1.0 on replica 0 of the current strategy, else 0.0."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return tf.constant(1.0)
    return tf.cast(
        tf.equal(context.replica_id_in_sync_group, 0), tf.float32
    )


class GradientModulator:
    """OGM-GE's gradient step for one `BlendedModel`.

    Holds what the step needs besides the model's own variables: which
    trainable variables belong to which modality's encoder (by id), and the
    per-epoch trackers of the coefficients, the discrepancy ratios and the
    share of steps each modality is slowed. The
    epoch counter and the GE noise generator stay variables of the model,
    so that checkpoints save and restore them with it.

    Args:
        model: the `BlendedModel` (its `modulation` is the `OGMGE` config).

    Example:

    ```python
    modulator = GradientModulator(model)
    gradients = modulator.modulate(gradients, variables, labels, logits)
    ```
    """

    def __init__(self, model):
        self.model = model
        self.config = model.modulation
        if self.config.score_source == "fusion" and (
            model.modality_logits_output is None
        ):
            raise ValueError(
                "OGMGE(score_source='fusion') needs a model that outputs "
                "per-modality logits (`modality_logits_output`): concat "
                "fusion without hidden layers or sum fusion."
            )
        # Ids, not variables: a list of variables kept on a Keras layer
        # would be tracked as its own weights.
        self.variable_ids = [
            [id(v) for v in group]
            for group in modulated_variable_groups(model, self.config)
        ]
        # Epoch means per modality: the coefficient, the discrepancy ratio,
        # and the share of steps on which the modality was slowed (k < 1).
        self.trackers = [
            keras.metrics.Mean(name=f"ogm/{kind}/{m}")
            for kind in ("coefficient", "ratio", "slowed")
            for m in model.modalities
        ]
        # `apply_to="learning_rate"`: this step's coefficient per modality,
        # read by the optimizer's step (`install`). Every replica computes
        # the same coefficients (scores are summed over replicas first).
        self.learning_rate_scales = None
        if self.config.apply_to == "learning_rate":
            self.learning_rate_scales = keras.Variable(
                np.ones(len(model.modalities), "float32"), trainable=False,
                aggregation="only_first_replica",
                name="ogm_learning_rate_scales")

    def install(self, optimizer) -> None:
        """Under `apply_to="learning_rate"`, makes `optimizer` (the model's)
        scale each modulated encoder variable's learning rate by its
        modality's coefficient of the step; otherwise nothing. Idempotent.

        The optimizer's `update_step(gradient, variable, learning_rate)`,
        the step every Keras optimizer implements, is wrapped on this
        instance: variables outside the modulated groups get the learning
        rate as it is.
        """
        if self.learning_rate_scales is None:
            return
        inner = getattr(optimizer, "inner_optimizer", optimizer)
        if getattr(inner, "_ogm_learning_rate_modulator", None) is self:
            return
        if not inner.built:
            inner.build(self.model.trainable_variables)
        by_index = {}
        for variable in self.model.trainable_variables:
            for m, group in enumerate(self.variable_ids):
                if id(variable) in group:
                    by_index[keras_compat.variable_index(inner, variable)] = m
        step = inner.update_step
        scales = self.learning_rate_scales

        def update_step(gradient, variable, learning_rate):
            m = by_index.get(keras_compat.variable_index(inner, variable))
            if m is not None:
                learning_rate = learning_rate * ops.cast(
                    ops.convert_to_tensor(scales)[m], learning_rate.dtype)
            return step(gradient, variable, learning_rate)

        inner.update_step = update_step
        inner._ogm_learning_rate_modulator = self

    def fit_callbacks(self) -> List[keras.callbacks.Callback]:
        """What `BlendedModel.fit` runs first: the epoch counter that opens
        and closes the modulation window."""
        return [ModulationEpochCounter()]

    @property
    def score_source(self) -> str:
        """`"fusion"` or `"heads"`: what the scores are computed from."""
        source = self.config.score_source
        if source == "auto":
            source = "fusion" if self.model.modality_logits_output else "heads"
        return source

    def check_scored_heads_train(self) -> None:
        """Raises if the scores would come from uni-modal heads that never
        train (weight 0 under `blend_scope="all"`)."""
        model = self.model
        if self.score_source != "heads" or model.blend_scope == "shared":
            return
        untrained = [m for m in model.modalities if model.blend_weights[m] == 0]
        if untrained:
            raise ValueError(
                f"OGM-GE scores the uni-modal heads, but head(s) {untrained} "
                "have blend weight 0 under blend_scope='all', so they never "
                "train and their scores would be those of random "
                "projections. Use blend_scope='shared' (each head then "
                "trains on its encoder's features at full rate, without "
                "changing the encoder) or give those heads a weight."
            )

    def scored_logits(self, y_pred):
        """`(batch, k, classes)` logits the scores are computed from, per
        `score_source`."""
        model = self.model
        if self.score_source == "fusion":
            return y_pred[model.modality_logits_output]
        return ops.stack([y_pred[m] for m in model.modalities], axis=1)

    def draw_noise(self, variables: List) -> Dict[int, tf.Tensor]:
        """The standard normal draws of one step's GE noise, made ahead of
        the step: the same numbers `modulate` would draw (same seeds), by
        index into `variables`, for every modulated variable.

        `BlendedModel` draws them outside an XLA-compiled step, which is
        faster than drawing them inside it (measured: see
        `benchmarks/results/speed/speed_resnet18_reference.md`, and
        `benchmarks/results/speed/speed.md` for the draw inside XLA).

        Args:
            variables: the trainable variables, in the step's order.

        Returns:
            `{index: draw}`, each draw shaped as its variable.
        """
        return draw_standard_normals(
            {i: list(variables[i].shape)
             for group in self.index_groups(variables) for i in group},
            self.model.modulation_seed_generator)

    def index_groups(self, variables: List) -> List[List[int]]:
        """Per modality, the indices into `variables` of its modulated
        variables (those of the step)."""
        position = {id(v): i for i, v in enumerate(variables)}
        return [[position[i] for i in group if i in position]
                for group in self.variable_ids]

    def modulate(self, gradients: List, variables: List, labels, y_pred,
                 noise_draws: Optional[Dict[int, tf.Tensor]] = None) -> List:
        """Applies OGM-GE to the encoder gradients of one step.

        Under a tf.distribute strategy the scores are summed over replicas
        first, so every replica uses the same coefficients. With GE noise,
        each modulated gradient is summed over replicas too, so that the
        noise level is `std` of the global-batch gradient; every replica
        hands `k * g / replicas` to `apply_gradients` and replica 0 alone
        adds the noise, so the cross-replica sum equals the single-device
        update `k * g + N(0, std(g))`.

        Args:
            gradients: the step's gradients, aligned with `variables`.
            variables: the trainable variables being updated.
            labels: the joint head's labels of the batch.
            y_pred: the model's outputs by name.
            noise_draws: the step's noise drawn ahead (`draw_noise`);
                `None`: drawn here.

        Returns:
            The new list of gradients.
        """
        config, model = self.config, self.model
        scores = all_reduce_sum(modality_scores(
            self.scored_logits(y_pred), labels, model.multi_label))
        ratios = discrepancy_ratios(scores)
        active = config.in_window(model.modulation_epoch)
        if config.modulation:
            coefficients = ops.where(
                active,
                modulation_coefficients(scores, config.alpha,
                                        config.coefficient),
                ops.ones_like(scores),
            )
        else:
            coefficients = ops.ones_like(scores)
        k = len(model.modalities)
        for m in range(k):
            self.trackers[m].update_state(coefficients[m])
            self.trackers[k + m].update_state(ratios[m])
            self.trackers[2 * k + m].update_state(
                ops.cast(coefficients[m] < 1.0, "float32"))
        if self.learning_rate_scales is not None:
            # The optimizer's step scales the learning rate instead.
            self.learning_rate_scales.assign(
                ops.cast(coefficients, "float32"))
            coefficients = ops.ones_like(coefficients)

        groups = self.index_groups(variables)
        grouped = {i for group in groups for i in group}
        gradients = [
            tf.convert_to_tensor(g)
            if i in grouped and isinstance(g, tf.IndexedSlices)
            else g
            for i, g in enumerate(gradients)
        ]
        if not config.noise:
            return scale_gradients(gradients, groups, coefficients)

        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        indices = [i for group in groups for i in group if gradients[i] is not None]
        reference = list(gradients)
        if replicas > 1:
            summed = all_reduce_sum([gradients[i] for i in indices])
            for i, value in zip(indices, summed):
                reference[i] = value
        updates = scale_gradients(reference, groups, coefficients)
        if replicas > 1:
            for i in indices:
                updates[i] = updates[i] / replicas
        noise_scale = ops.cast(active, "float32") * is_first_replica()
        return add_gradient_noise(
            updates, reference, groups, model.modulation_seed_generator,
            scale=noise_scale, box_muller=not model.jit_compile,
            draws=noise_draws,
        )


class ModulationEpochCounter(keras.callbacks.Callback):
    """Tells the OGM-GE train step which epoch it is in, and checks that it
    scores trained heads (`BlendedModel.fit` adds it)."""

    def on_train_begin(self, logs=None):
        self.model.modulator.check_scored_heads_train()
        self.model.modulator.install(self.model.optimizer)

    def on_epoch_begin(self, epoch, logs=None):
        self.model.modulation_epoch.assign(epoch)
