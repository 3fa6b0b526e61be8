"""Choosing a multi-head model's answer on the holdout.

A `BlendedModel` answers with its joint head by default. A head whose blend
weight was small, or a joint head that overfits a weak modality, can make
another head, or a mix of the heads' probabilities, the better answer.
`select_answer` finds it on the holdout `V` (training data the model never
trained on, never the test set): the mix `p = sum_h a_h * p_h` of head
probabilities with the lowest holdout log-loss, over mixing weights `a` on
the simplex. Every single head is a corner of the simplex, so the chosen
mix is never worse on the holdout's log-loss than the best head alone
(`best_mixture` compares its mix with every head and keeps the best).
"""

import dataclasses
from typing import Dict, Mapping, Optional, Sequence

import numpy as np

from keras_gblend.inputs import input_data
from keras_gblend.model.blended_model import BlendedModel
from keras_gblend.inputs.holdout import validate_holdout

CANDIDATES = ("mix", "heads")
_EPSILON = 1e-7


@dataclasses.dataclass
class Answer:
    """How a model answers: mixing weights over its heads' probabilities.

    Attributes:
        weights: `{head: a_h}`, non-negative, summing to 1 (one-hot for a
            single head).
        holdout_log_loss: the answer's log-loss on the holdout.
        holdout_accuracy: its accuracy on the holdout.
        head_log_loss, head_accuracy: every head's own holdout figures.
    """

    weights: Dict[str, float]
    holdout_log_loss: float
    holdout_accuracy: float
    head_log_loss: Dict[str, float]
    head_accuracy: Dict[str, float]

    @property
    def heads(self) -> Sequence[str]:
        """Heads with a non-zero mixing weight."""
        return [h for h, a in self.weights.items() if a > 0]

    def probabilities(self, predictions: Mapping[str, np.ndarray],
                      from_logits: Mapping[str, bool]) -> np.ndarray:
        """The answer's class probabilities from `{head: predictions}`."""
        return sum(
            a * head_probabilities(predictions[h], from_logits[h])
            for h, a in self.weights.items() if a > 0
        )

    def predict(self, model: BlendedModel, x, **predict_kwargs) -> np.ndarray:
        """Class probabilities of the answer for inputs `x`."""
        predictions = model.predict(x, **predict_kwargs)
        return self.probabilities(predictions, outputs_are_logits(model))

    def accuracy(self, model: BlendedModel, data,
                 batch_size: Optional[int] = None) -> float:
        """The answer's accuracy on labelled `data` (arrays or a dataset)."""
        dataset = input_data.fixed_order(data, batch_size)
        probabilities = self.predict(model, dataset, verbose=0)
        labels, _ = input_data.targets_of(dataset)
        if isinstance(labels, Mapping):
            labels = labels[model.joint_output]
        truth = input_data.class_ids(np.asarray(labels))
        return float((probabilities.argmax(axis=-1) == truth).mean())

    def get_config(self) -> Dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: Dict) -> "Answer":
        return cls(**config)


def head_probabilities(prediction, from_logits: bool) -> np.ndarray:
    """Class probabilities of one head's output (softmax of logits)."""
    values = np.asarray(prediction, dtype=np.float64)
    if not from_logits:
        return values
    values = values - values.max(axis=-1, keepdims=True)
    exponentials = np.exp(values)
    return exponentials / exponentials.sum(axis=-1, keepdims=True)


def outputs_are_logits(model: BlendedModel) -> Dict[str, bool]:
    """Per head, whether its loss reads logits (`from_logits=True`)."""
    if model.head_losses is None:
        raise ValueError("Compile the model before choosing its answer.")
    return {
        head: bool(getattr(loss, "get_config", dict)().get("from_logits", False))
        for head, loss in model.head_losses.items()
    }


def mean_log_loss(weights: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean log-loss of the mix `weights @ probabilities`.

    Args:
        weights: `(heads,)` mixing weights.
        probabilities: `(heads, examples)` probability of each example's
            true class under each head.
    """
    return float(-np.log(np.maximum(weights @ probabilities, _EPSILON)).mean())


def best_mixture(probabilities: np.ndarray, iterations: int = 500
                 ) -> np.ndarray:
    """Mixing weights on the simplex with the lowest mean log-loss of
    `sum_h a_h * probabilities[h]`, never worse than the best single head.

    Exponentiated gradient (the problem is convex) from the uniform mix;
    it stops after `iterations` steps, so near a corner it can end a little
    short of the best head. The answer is the best of its mix, the mix with
    weights below 1e-3 dropped, and every single head (a single head wins
    ties: the simpler answer).

    Args:
        probabilities: `(heads, examples)` probability of each example's
            true class under each head.
        iterations: steps of exponentiated gradient.

    Returns:
        float64 weights `(heads,)`, non-negative, summing to 1.
    """
    heads = probabilities.shape[0]
    weights = np.full(heads, 1.0 / heads)
    for _ in range(iterations):
        mixed = np.maximum(weights @ probabilities, _EPSILON)
        gradient = -(probabilities / mixed).mean(axis=1)
        weights = weights * np.exp(-0.5 * (gradient - gradient.min()))
        weights /= weights.sum()
    sparse = np.where(weights < 1e-3, 0.0, weights)
    candidates = [*np.eye(heads), sparse / sparse.sum(), weights]
    losses = [mean_log_loss(c, probabilities) for c in candidates]
    return candidates[int(np.argmin(losses))]


def select_answer(
    model: BlendedModel,
    holdout,
    candidates: str = "mix",
    batch_size: Optional[int] = None,
) -> Answer:
    """Chooses, on the holdout, the head or mix of heads that answers best.

    Args:
        model: a compiled `BlendedModel` (only read).
        holdout: holdout data `V`: `(x, y)` arrays or a dataset, never the
            test set.
        candidates: `"mix"`: the holdout-log-loss-optimal mix of head
            probabilities; `"heads"`: the single head with the lowest
            holdout log-loss.
        batch_size: batch size for array data.

    Returns:
        An `Answer`.

    Example:

    ```python
    answer = kg.select_answer(model, holdout)
    answer.weights                       # e.g. {"a": 0.7, "v": 0.0, "joint": 0.3}
    probabilities = answer.predict(model, x_test)
    ```
    """
    if candidates not in CANDIDATES:
        raise ValueError(
            f"`candidates` must be one of {CANDIDATES}, got {candidates!r}."
        )
    if model.multi_label:
        raise ValueError(
            "select_answer mixes single-label class probabilities; the model "
            "is multi-label (report its heads' mAP/mAUC instead)."
        )
    validate_holdout(holdout)
    dataset = input_data.fixed_order(holdout, batch_size)
    predictions = model.predict(dataset, verbose=0)
    labels, _ = input_data.targets_of(dataset)
    logits = outputs_are_logits(model)
    heads = list(model.head_names)
    truth = input_data.class_ids(np.asarray(labels))  # validated: one array
    rows = np.arange(len(truth))
    probabilities = {
        h: head_probabilities(predictions[h], logits[h]) for h in heads
    }
    true_class = np.stack([probabilities[h][rows, truth] for h in heads])
    if not np.all(np.isfinite(true_class)):
        raise FloatingPointError(
            "Non-finite predictions on the holdout for head(s) "
            f"{[h for h, p in zip(heads, true_class) if not np.all(np.isfinite(p))]}."
        )
    head_loss = np.array([mean_log_loss(row, true_class)
                          for row in np.eye(len(heads))])
    head_accuracy = {
        h: float((probabilities[h].argmax(axis=-1) == truth).mean())
        for h in heads
    }
    if candidates == "heads":
        weights = np.eye(len(heads))[int(np.argmin(head_loss))]
    else:
        weights = best_mixture(true_class)
    mixed = sum(a * probabilities[h] for h, a in zip(heads, weights))
    return Answer(
        weights={h: float(a) for h, a in zip(heads, weights)},
        holdout_log_loss=mean_log_loss(weights, true_class),
        holdout_accuracy=float((mixed.argmax(axis=-1) == truth).mean()),
        head_log_loss={h: float(v) for h, v in zip(heads, head_loss)},
        head_accuracy=head_accuracy,
    )
