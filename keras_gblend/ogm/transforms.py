"""OGM-GE's pure transforms: per-modality scores, discrepancy ratios,
modulation coefficients, gradient scaling and GE noise.

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
  does. At k = 2 this is the reference formula. It jumps at balance: a
  modality barely ahead (`rho_m` just above 1) is slowed to
  `1 - tanh(alpha)`. The `"excess"` form, `1 - tanh(alpha * (rho_m - 1))`,
  slows by the excess over balance only, and is 1 at balance (not the
  paper's);
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

import tensorflow as tf
from keras import ops

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


COEFFICIENT_FORMS = ("reference", "excess")


def modulation_coefficients(scores, alpha: float, form: str = "reference"):
    """OGM coefficients `k_m` from per-modality scores (see module docs).

    Args:
        scores: sequence or tensor of k per-modality batch score sums.
        alpha: modulation strength.
        form: `"reference"` (the paper and its code): `1 - tanh(alpha *
            rho_m)`; `"excess"`: `1 - tanh(alpha * (rho_m - 1))`, 1 at
            balance.

    Returns:
        float32 tensor `(k,)`; 1 for modalities that are not slowed.

    Example:

    >>> modulation_coefficients([10.0, 20.0], alpha=0.5).numpy().round(4)
    array([1.    , 0.2384], dtype=float32)
    >>> modulation_coefficients([10.0, 20.0], 0.5, "excess").numpy().round(4)
    array([1.    , 0.5379], dtype=float32)
    """
    if form not in COEFFICIENT_FORMS:
        raise ValueError(
            f"`form` must be one of {COEFFICIENT_FORMS}, got {form!r}.")
    ratios = discrepancy_ratios(scores)
    dominant = ratios > 1.0
    first_max = ops.one_hot(ops.argmax(ratios), ratios.shape[0]) > 0
    slowed = ops.logical_or(
        dominant, ops.logical_and(ops.logical_not(ops.any(dominant)), first_max)
    )
    excess = ratios - 1.0 if form == "excess" else ratios
    slowed_value = 1.0 - ops.tanh(alpha * ops.relu(excess))
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
    distribution as `tf.random.stateless_normal`, drawn faster on CPU,
    which is most of what GE noise costs a step (measured:
    benchmarks/results/speed).

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
