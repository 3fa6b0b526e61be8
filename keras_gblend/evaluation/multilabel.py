"""Multi-label tasks (the G-Blend paper's mini-AudioSet): metrics and the
paper's sub-sampling and balancing algorithm (supplementary section 5).

A multi-label `BlendedModel` is built with `late_fusion_model(...,
multi_label=True)` and compiled with `BinaryCrossentropy(from_logits=True)`
on multi-hot labels; G-Blend and OGM-GE then work as for single-label
classifiers (see `BlendedModel`'s `multi_label`).
"""

from typing import List, Optional

import keras
import numpy as np


def multi_label_metrics(num_labels: Optional[int] = None) -> List:
    """Keras metrics for multi-label logits: mAUC (`"mauc"`, the mean over
    labels of the ROC AUC) and mAP (`"map"`, the mean over labels of the
    area under the precision-recall curve, Keras's interpolated estimate
    of average precision; `mean_average_precision` computes it exactly
    from predictions).

    Example:

    ```python
    model.compile("sgd", keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=kg.multilabel.multi_label_metrics())
    ```
    """
    return [
        keras.metrics.AUC(multi_label=True, num_labels=num_labels,
                          from_logits=True, name="mauc"),
        keras.metrics.AUC(curve="PR", multi_label=True, num_labels=num_labels,
                          from_logits=True, name="map"),
    ]


def average_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Average precision of one label: the mean, over its positives, of the
    precision at each positive's rank (scores sorted descending; ties
    broken by order). NaN when the label has no positive.

    Example:

    >>> average_precision(np.array([1, 0, 1]), np.array([0.9, 0.8, 0.1]))
    0.8333333333333333
    """
    truth = np.asarray(y_true).astype(bool).reshape(-1)
    if not truth.any():
        return float("nan")
    order = np.argsort(-np.asarray(scores, dtype=np.float64).reshape(-1),
                      kind="stable")
    hits = truth[order]
    precision_at = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision_at[hits].mean())


def mean_average_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    """mAP: `average_precision` of every label with a positive, averaged.

    Args:
        y_true: multi-hot `(examples, labels)`.
        scores: `(examples, labels)` logits or probabilities.
    """
    y_true, scores = np.asarray(y_true), np.asarray(scores)
    if y_true.shape != scores.shape or y_true.ndim != 2:
        raise ValueError(
            f"`y_true` {y_true.shape} and `scores` {scores.shape} must both "
            "be (examples, labels).")
    values = [average_precision(y_true[:, c], scores[:, c])
              for c in range(y_true.shape[1])]
    return float(np.nanmean(values))


def mean_auc(y_true: np.ndarray, probabilities: np.ndarray) -> float:
    """mAUC: the ROC AUC of every label, averaged, as Keras's
    `AUC(multi_label=True)` (the `"mauc"` metric of
    `multi_label_metrics`) computes it.

    Args:
        y_true: multi-hot `(examples, labels)`.
        probabilities: `(examples, labels)` sigmoid probabilities.
    """
    y_true, probabilities = np.asarray(y_true), np.asarray(probabilities)
    if y_true.shape != probabilities.shape or y_true.ndim != 2:
        raise ValueError(
            f"`y_true` {y_true.shape} and `probabilities` "
            f"{probabilities.shape} must both be (examples, labels).")
    metric = keras.metrics.AUC(multi_label=True, num_labels=y_true.shape[1])
    metric.update_state(y_true, probabilities)
    return float(metric.result())


def subsample_and_balance(labels: np.ndarray, min_class_volume: int,
                          target_class_volume: int,
                          seed: Optional[int] = 0) -> np.ndarray:
    """The G-Blend paper's "Sub-sampling and Balancing Multi-label Dataset"
    (supplementary section 5), which made mini-AudioSet.

    Labels with fewer than `M = min_class_volume` examples are removed;
    then, over the examples in a random order, each example is judged by
    its label `c` that is rarest so far in the selection `D'`: an integer
    `r` is drawn uniformly below `V_c`, and the example is selected if
    `r < N - V'_c` (`N = target_class_volume`, `V'_c` the volume of `c` in
    `D'`). `V_c` is read as the volume of `c` among the examples not yet
    visited (this one included): that is selection sampling per label
    (Knuth's Algorithm S), which takes exactly `min(N, volume)` examples
    of a label that never co-occurs. Read literally, with `V_c` the
    label's whole volume and `r` in `[0, V_c - V'_c]`, it stops short of
    `N` (measured over 20 seeds: 63 % of `N` for a label with 20·N
    examples, 70 % with 2·N). A
    label at `N` selects nothing more through itself; an example that also
    carries other labels adds to their volume (labels are correlated), so
    volumes can exceed `N` through them.

    Args:
        labels: multi-hot `(examples, classes)` (0/1).
        min_class_volume: `M`.
        target_class_volume: `N`.
        seed: shuffle and draw seed.

    Returns:
        `(selected_rows, kept_classes)`: sorted indices into `labels`, and
        the classes that survived the `M` threshold (drop the others from
        the selected rows' labels).

    Example:

    >>> labels = np.eye(3, dtype=int)[[0] * 50 + [1] * 8 + [2] * 2]
    >>> rows, kept = subsample_and_balance(labels, 5, 6)
    >>> kept.tolist(), np.bincount(labels[rows].argmax(1)).tolist()
    ([0, 1], [6, 6])
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.isin(labels, (0, 1)).all():
        raise ValueError("`labels` must be multi-hot (examples, classes) "
                         "of 0 and 1.")
    if min_class_volume < 0 or target_class_volume < 1:
        raise ValueError(
            f"Need min_class_volume >= 0 and target_class_volume >= 1; got "
            f"{min_class_volume} and {target_class_volume}.")
    volume = labels.sum(axis=0)
    kept_classes = np.flatnonzero(volume >= min_class_volume)
    kept = labels[:, kept_classes].astype(bool)
    unvisited = volume[kept_classes].astype(np.int64)
    selected_volume = np.zeros(len(kept_classes), dtype=np.int64)
    rng = np.random.default_rng(seed)
    selected = []
    for row in rng.permutation(len(labels)):
        classes = np.flatnonzero(kept[row])
        if classes.size == 0:
            continue  # every label of this example was removed
        c = classes[np.argmin(selected_volume[classes])]
        r = rng.integers(0, unvisited[c])
        unvisited[classes] -= 1
        if r < target_class_volume - selected_volume[c]:
            selected.append(row)
            selected_volume[classes] += 1
    return np.sort(np.asarray(selected, dtype=np.int64)), kept_classes
