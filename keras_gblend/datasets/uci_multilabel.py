"""UCI-multilabel: UCI Multiple Features with multi-label targets.

Each handwritten digit gets the attributes of its numeral, as a multi-hot
vector (several labels per example, as in the G-Blend paper's mini-AudioSet
task, on data that ships here):

| label | digits |
|---|---|
| `even` | 0 2 4 6 8 |
| `large` (>= 5) | 5 6 7 8 9 |
| `prime` | 2 3 5 7 |
| `loop` (a closed loop when written) | 0 6 8 9 |
| `straight` (straight strokes only) | 1 4 7 |

Every digit has at least one label; the label frequencies differ (4 to 5
digits each), so mAP and mAUC are not trivially equal to accuracy.
"""

from typing import Optional, Sequence

import numpy as np

from keras_gblend.datasets.uci_multifeature import (
    MultiViewData,
    load_uci_multifeature,
)

LABELS = ("even", "large", "prime", "loop", "straight")
_DIGITS_WITH = {
    "even": (0, 2, 4, 6, 8),
    "large": (5, 6, 7, 8, 9),
    "prime": (2, 3, 5, 7),
    "loop": (0, 6, 8, 9),
    "straight": (1, 4, 7),
}
# (10 digits, 5 labels) multi-hot table.
DIGIT_LABELS = np.array(
    [[digit in _DIGITS_WITH[label] for label in LABELS] for digit in range(10)],
    dtype=np.float32,
)


def multi_hot(digits: np.ndarray) -> np.ndarray:
    """The multi-hot labels `(n, len(LABELS))` float32 of digit ids.

    Example:

    >>> multi_hot(np.array([7])).tolist()
    [[0.0, 1.0, 1.0, 0.0, 1.0]]
    """
    return DIGIT_LABELS[np.asarray(digits, dtype=np.int64)]


def load_uci_multilabel(
    views: Optional[Sequence[str]] = ("fac", "mor"), seed: int = 0,
) -> MultiViewData:
    """UCI Multiple Features views with multi-hot targets (module docstring).

    Args:
        views: the views to load (default `fac`, `mor`).
        seed: seed of the train/test split.

    Returns:
        A `MultiViewData` whose `y_train`/`y_test` are float32 multi-hot
        `(n, 5)` and `num_classes` is the number of labels, 5.

    Example:

    ```python
    data = kg.datasets.load_uci_multilabel(seed=0)
    data.y_train.shape  # (1400, 5)
    ```
    """
    data = load_uci_multifeature(views=views, seed=seed)
    return MultiViewData(
        x_train=data.x_train, y_train=multi_hot(data.y_train),
        x_test=data.x_test, y_test=multi_hot(data.y_test),
        num_classes=len(LABELS))
