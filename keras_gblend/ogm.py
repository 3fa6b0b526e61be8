"""OGM-GE: On-the-fly Gradient Modulation with Generalization Enhancement.

Peng et al., "Balanced Multimodal Learning via On-the-fly Gradient
Modulation" (CVPR 2022), matching the public reference code:

- per-modality confidence on a batch: `score_m = sum_batch softmax(out_m)[y]`
  where `out_m` is modality m's share of the joint logits (concat fusion:
  `f_m · W[rows of m] + b/k`; sum fusion: `f_m · W_m + b_m`) or, for fusions
  that do not split, modality m's uni-modal head;
- discrepancy ratio `rho_m = score_m / score_other` (k = 2). For k > 2 it
  is the mean of the pairwise ratios `score_m / score_j`, j != m (the
  reference authors' advice for more modalities);
- coefficient `k_m = 1 - tanh(alpha * relu(rho_m))` for every modality with
  `rho_m > 1`, else 1. When no ratio exceeds 1 (equal scores), the first
  modality is slowed, exactly as the reference's `if ratio_v > 1 ... else`
  does. At k = 2 this is the reference formula;
- during the window `start_epoch <= epoch <= end_epoch`, each modulated
  encoder gradient becomes `g * k_m + N(0, std(g) + 1e-8)`, with `std` the
  (unbiased) standard deviation of the *unmodulated* gradient tensor and
  fresh noise every step.

The two gradient changes are separate transforms (`scale_gradients`,
`add_gradient_noise`), so OGM alone (`noise=False`) and GE alone
(`modulation=False`) are one flag each.
"""

import math
from typing import Any, Dict, List, Optional, Sequence

import keras
import tensorflow as tf
from keras import ops

from keras_gblend import head_graph
from keras_gblend.input_checks import check_integer

PARAMS = ("kernels", "conv", "all")
SCORE_SOURCES = ("auto", "fusion", "heads")
NOISE_EPSILON = 1e-8


def modality_scores(per_modality_logits, labels, multi_label: bool = False):
    """Batch confidence of each modality in the true class.

    Args:
        per_modality_logits: a sequence of k `(batch, classes)` logits, or a
            `(batch, k, classes)` tensor.
        labels: sparse `(batch,)` / `(batch, 1)` class ids or one-hot
            `(batch, classes)`; multi-hot `(batch, classes)` with
            `multi_label=True`.
        multi_label: sigmoid outputs, one per label. The multi-label form
            of the confidence is the mean sigmoid probability of an
            example's true labels (0 for an example without any): the
            softmax score's "probability of the truth", label by label.

    Returns:
        float32 tensor `(k,)`: `sum_batch softmax(logits_m)[label]`
        (multi-label: `sum_batch mean_{c true} sigmoid(logits_m)[c]`).

    Example:

    >>> modality_scores([[[0.0, 0.0]], [[2.0, 0.0]]], [0]).numpy().round(3)
    array([0.5  , 0.881], dtype=float32)
    """
    if isinstance(per_modality_logits, (list, tuple)):
        per_modality_logits = ops.stack(
            [ops.convert_to_tensor(l) for l in per_modality_logits], axis=1
        )
    logits = ops.cast(per_modality_logits, "float32")
    labels = ops.convert_to_tensor(labels)
    if multi_label:
        truth = ops.cast(labels, "float32")[:, None, :]  # (batch, 1, classes)
        true_mass = ops.sum(ops.sigmoid(logits) * truth, axis=-1)
        count = ops.maximum(ops.sum(truth, axis=-1), 1.0)
        return ops.sum(true_mass / count, axis=0)
    probabilities = ops.softmax(logits, axis=-1)  # (batch, k, classes)
    num_classes = ops.shape(logits)[-1]
    if len(labels.shape) == 2 and labels.shape[-1] not in (1, None):
        one_hot = ops.cast(labels, "float32")
    else:
        class_ids = ops.reshape(ops.cast(labels, "int32"), (-1,))
        one_hot = ops.one_hot(class_ids, num_classes)
    true_class = ops.sum(probabilities * one_hot[:, None, :], axis=-1)
    return ops.sum(true_class, axis=0)


def discrepancy_ratios(scores):
    """`rho_m = mean_{j != m} score_m / score_j` (k = 2: `score_m / score_j`).

    Args:
        scores: `(k,)` per-modality batch scores, k >= 2.

    Returns:
        float32 tensor `(k,)`.
    """
    scores = ops.cast(ops.convert_to_tensor(scores), "float32")
    k = scores.shape[0]
    if k is None or k < 2:
        raise ValueError("OGM-GE needs two or more modalities.")
    pairwise = scores[:, None] / scores[None, :]  # (k, k), diagonal = 1
    return (ops.sum(pairwise, axis=1) - 1.0) / (k - 1)


def modulation_coefficients(scores, alpha: float):
    """OGM coefficients `k_m` from per-modality scores (see module docs).

    Args:
        scores: sequence or tensor of k per-modality batch score sums.
        alpha: modulation strength.

    Returns:
        float32 tensor `(k,)`; 1 for modalities that are not slowed.

    Example:

    >>> modulation_coefficients([10.0, 20.0], alpha=0.5).numpy().round(4)
    array([1.    , 0.2384], dtype=float32)
    """
    ratios = discrepancy_ratios(scores)
    dominant = ratios > 1.0
    first_max = ops.one_hot(ops.argmax(ratios), ratios.shape[0]) > 0
    slowed = ops.logical_or(
        dominant, ops.logical_and(ops.logical_not(ops.any(dominant)), first_max)
    )
    slowed_value = 1.0 - ops.tanh(alpha * ops.relu(ratios))
    return ops.where(slowed, slowed_value, ops.ones_like(ratios))


def scale_gradients(gradients: List, groups: Sequence[Sequence[int]],
                    coefficients) -> List:
    """Transform 1: multiply the gradients of group m by `coefficients[m]`.

    Args:
        gradients: list of gradient tensors (None allowed).
        groups: per modality, indices into `gradients`.
        coefficients: `(k,)` tensor.

    Returns:
        A new list.
    """
    updates = list(gradients)
    for m, indices in enumerate(groups):
        for i in indices:
            if updates[i] is not None:
                updates[i] = updates[i] * ops.cast(
                    coefficients[m], updates[i].dtype
                )
    return updates


def gradient_std(gradient):
    """Unbiased standard deviation of all entries of a tensor (as
    `torch.Tensor.std()`), in one pass over it (sum and sum of squares)."""
    values = ops.reshape(ops.cast(gradient, "float32"), (-1,))
    count = ops.cast(ops.size(values), "float32")
    total = ops.sum(values)
    squares = ops.sum(values * values)
    variance = (squares - total * total / count) / ops.maximum(count - 1.0, 1.0)
    return ops.sqrt(ops.maximum(variance, 0.0))


def standard_normal(shape, seed) -> tf.Tensor:
    """Standard normal float32 numbers of `shape`, from a stateless seed.

    The Box-Muller transform written out over Philox uniforms: the same
    distribution as `tf.random.stateless_normal`, drawn 1.5x faster on
    CPU (11 M numbers: 43 ms against 66 ms on 2 cores; PyTorch's `normal_`
    takes 40 ms), which is most of what GE noise costs a step.

    Args:
        shape: the output shape (a list or a 1-D int tensor).
        seed: a stateless seed, shape `(2,)` (as `tf.random.stateless_*`).

    Returns:
        A float32 tensor of `shape`.

    Example:

    >>> z = standard_normal([100_000], seed=[1, 2])
    >>> bool(abs(float(tf.math.reduce_std(z)) - 1.0) < 0.01)
    True
    """
    size = tf.reduce_prod(tf.cast(shape, tf.int32))
    half = (size + 1) // 2
    uniform = tf.random.stateless_uniform(tf.stack([2, half]), seed=seed,
                                          alg="philox")
    # 1 - u is in (0, 1]: the logarithm stays finite.
    radius = tf.sqrt(-2.0 * tf.math.log1p(-uniform[0]))
    angle = (2.0 * math.pi) * uniform[1]
    normal = tf.concat([radius * tf.cos(angle), radius * tf.sin(angle)], 0)
    return tf.reshape(normal[:size], shape)


def draw_standard_normals(shapes: Dict[int, Any], seed_generator,
                          box_muller: bool = True) -> Dict[int, tf.Tensor]:
    """One step's standard normal draws, one per tensor.

    One seed is drawn from `seed_generator`; each tensor's numbers are a
    stateless draw from it and the tensor's index (Philox named
    explicitly: XLA's CPU default "auto_select" drew 11 M normals in 3.3 s
    against 0.12 s), so the draws do not wait on each other (one generator
    update per step instead of one per tensor).

    Args:
        shapes: `{index: shape}` of the tensors to draw for.
        seed_generator: a `keras.random.SeedGenerator` (new numbers each
            call).
        box_muller: draw with `standard_normal`; False:
            `tf.random.stateless_normal`.

    Returns:
        `{index: draw}`, float32.
    """
    step_seed = tf.cast(seed_generator.next(), tf.int64)
    draws = {}
    for i, shape in shapes.items():
        seed = step_seed + [i + 1, 0]
        draws[i] = (standard_normal(shape, seed) if box_muller else
                    tf.random.stateless_normal(shape, seed, alg="philox"))
    return draws


def add_gradient_noise(updates: List, reference_gradients: List,
                       groups: Sequence[Sequence[int]], seed_generator,
                       scale=1.0, box_muller: bool = True,
                       draws: Optional[Dict[int, tf.Tensor]] = None) -> List:
    """Transform 2: add `N(0, std(reference) + 1e-8) * scale` to group members.

    Args:
        updates: list of (possibly scaled) gradients.
        reference_gradients: the unmodulated gradients whose std sets the
            noise level.
        groups: per modality, indices into `updates`.
        seed_generator: a `keras.random.SeedGenerator` (new noise each
            call; `draw_standard_normals`).
        scale: multiplier of the noise (0 switches it off in-graph).
        box_muller: draw with `standard_normal`; False:
            `tf.random.stateless_normal`.
        draws: standard normal draws already made, by index into `updates`
            (`GradientModulator.draw_noise`): used instead of drawing, and
            `seed_generator` is left alone.

    Returns:
        A new list.
    """
    updates = list(updates)
    present = [i for indices in groups for i in indices
               if updates[i] is not None]
    if draws is None:
        draws = draw_standard_normals(
            {i: tf.shape(updates[i]) for i in present}, seed_generator,
            box_muller)
    for i in present:
        std = gradient_std(reference_gradients[i]) + NOISE_EPSILON
        updates[i] = updates[i] + ops.cast(
            draws[i] * (std * scale), updates[i].dtype
        )
    return updates


@keras.saving.register_keras_serializable(package="keras_gblend")
class OGMGE:
    """Configuration of OGM-GE for a `BlendedModel`.

    Args:
        alpha: modulation strength (the reference uses 0.1-0.8).
        start_epoch: first epoch (0-based, inclusive) of the window.
        end_epoch: last epoch (inclusive); `None`: no end. Reference: 50.
        modulation: apply the OGM coefficient (False: GE noise only).
        noise: add GE noise (False: OGM only).
        params: which encoder variables are modulated: `"kernels"`: every
            kernel (rank >= 2: convolution and Dense kernels); `"conv"`:
            exactly the reference's set, 4-D variables only (Conv2D
            kernels; an MLP encoder has none); `"all"`: every variable.
        score_source: `"fusion"`: split the joint logits (concat/sum fusion);
            `"heads"`: the uni-modal heads' logits; `"auto"`: fusion when the
            model exposes its per-modality logits, else heads.
        encoder_layers: optional `{modality: [layer names]}` naming each
            modality's encoder. Default: read from the graph, as the
            variables shared by modality m's head and the joint head.
        seed: seed of the GE noise.

    Example:

    ```python
    model = kg.late_fusion_model(
        encoders, num_classes=6, fusion="concat",
        modulation=kg.OGMGE(alpha=0.8, start_epoch=0, end_epoch=50))
    ```
    """

    def __init__(
        self,
        alpha: float = 0.1,
        start_epoch: int = 0,
        end_epoch: Optional[int] = 50,
        modulation: bool = True,
        noise: bool = True,
        params: str = "kernels",
        score_source: str = "auto",
        encoder_layers: Optional[Dict[str, Sequence[str]]] = None,
        seed: Optional[int] = None,
    ):
        if params not in PARAMS:
            raise ValueError(f"`params` must be one of {PARAMS}, got {params!r}.")
        if score_source not in SCORE_SOURCES:
            raise ValueError(
                f"`score_source` must be one of {SCORE_SOURCES}, got "
                f"{score_source!r}."
            )
        if not 0 <= alpha < math.inf:
            raise ValueError(f"`alpha` must be finite and >= 0, got {alpha}.")
        for name, value in (("start_epoch", start_epoch),
                            ("end_epoch", end_epoch)):
            check_integer(name, value, 0, optional=True)
        if end_epoch is not None and end_epoch < start_epoch:
            raise ValueError(
                f"`end_epoch` ({end_epoch}) is before `start_epoch` "
                f"({start_epoch})."
            )
        if not (modulation or noise):
            raise ValueError(
                "OGMGE with modulation=False and noise=False does nothing; "
                "pass `modulation=None` to the model instead."
            )
        self.alpha = float(alpha)
        self.start_epoch = int(start_epoch)
        self.end_epoch = None if end_epoch is None else int(end_epoch)
        self.modulation = bool(modulation)
        self.noise = bool(noise)
        self.params = params
        self.score_source = score_source
        self.encoder_layers = (
            None
            if encoder_layers is None
            else {m: list(names) for m, names in encoder_layers.items()}
        )
        self.seed = seed

    def get_config(self) -> Dict[str, Any]:
        return {
            "alpha": self.alpha,
            "start_epoch": self.start_epoch,
            "end_epoch": self.end_epoch,
            "modulation": self.modulation,
            "noise": self.noise,
            "params": self.params,
            "score_source": self.score_source,
            "encoder_layers": self.encoder_layers,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def in_window(self, epoch):
        """Boolean tensor: is `epoch` inside the modulation window?"""
        inside = epoch >= self.start_epoch
        if self.end_epoch is not None:
            inside = ops.logical_and(inside, epoch <= self.end_epoch)
        return inside


def modulated_variable_groups(model, config: OGMGE) -> List[List]:
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
    per-epoch trackers of the coefficients and discrepancy ratios. The
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
        self.trackers = [
            keras.metrics.Mean(name=f"ogm/{kind}/{m}")
            for kind in ("coefficient", "ratio")
            for m in model.modalities
        ]

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

        `BlendedModel` draws them outside an XLA-compiled step: GE noise
        drawn inside XLA made an XLA ResNet-18 step 1.27x its plain step,
        drawn this way 1.10x (`benchmarks/results/speed_resnet18_reference.md`).

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
                modulation_coefficients(scores, config.alpha),
                ops.ones_like(scores),
            )
        else:
            coefficients = ops.ones_like(scores)
        k = len(model.modalities)
        for m in range(k):
            self.trackers[m].update_state(coefficients[m])
            self.trackers[k + m].update_state(ratios[m])

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

    def on_epoch_begin(self, epoch, logs=None):
        self.model.modulation_epoch.assign(epoch)
