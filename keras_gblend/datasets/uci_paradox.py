"""UCI-paradox: a set on which naive fusion loses to its best modality.

The regime of the G-Blend paper (a weak, overfitting-prone modality beside
a strong one, high-capacity encoders, limited training data), built from
the shipped UCI Multiple Features:

- `fac` (216 profile correlations) is the strong modality, as it is;
- `zer` (47 Zernike moments, a weak view alone) gets `noise_features`
  extra columns of seeded Gaussian noise, drawn afresh for every example
  (train and test alike): a wide modality that carries a little
  information and a lot of room to memorize;
- only `train_per_class` training examples per class, drawn (seeded) from
  the UCI training split; the test split (30% of every class) is intact.

With an MLP encoder of 256 units per view, naive late fusion trained on it
falls below the `fac` network alone (see `benchmarks/results/accuracy/
accuracy_uci_paradox.md`): its joint head fits the training set through the
noise columns.
"""

import numpy as np

from keras_gblend.datasets.uci_multifeature import (
    MultiViewData,
    load_uci_multifeature,
)

VIEWS = ("fac", "zer")
STRONG, WEAK = VIEWS


def load_uci_paradox(
    seed: int = 0,
    train_per_class: int = 40,
    noise_features: int = 512,
) -> MultiViewData:
    """Loads the UCI-paradox set (see the module docstring).

    Args:
        seed: seed of the train/test split, of the training subsample and of
            the noise columns.
        train_per_class: training examples per class (>= 2).
        noise_features: Gaussian columns appended to the `zer` view (>= 0).

    Returns:
        A `MultiViewData` with views `fac` and `zer`.

    Example:

    ```python
    data = kg.datasets.load_uci_paradox(seed=0)
    data.x_train["zer"].shape  # (400, 559)
    ```
    """
    if int(train_per_class) != train_per_class or train_per_class < 2:
        raise ValueError(
            f"`train_per_class` must be an integer >= 2, got {train_per_class}."
        )
    if int(noise_features) != noise_features or noise_features < 0:
        raise ValueError(
            f"`noise_features` must be an integer >= 0, got {noise_features}."
        )
    data = load_uci_multifeature(views=list(VIEWS), seed=seed)
    rng = np.random.default_rng([seed, 2020])
    rows = []
    for label in np.unique(data.y_train):
        members = np.flatnonzero(data.y_train == label)
        if len(members) < train_per_class:
            raise ValueError(
                f"`train_per_class`={train_per_class} exceeds the "
                f"{len(members)} training examples of class {label}."
            )
        rows.append(rng.permutation(members)[:train_per_class])
    rows = np.sort(np.concatenate(rows))
    x_train = {view: values[rows] for view, values in data.x_train.items()}
    y_train = data.y_train[rows]
    x_test = dict(data.x_test)

    def with_noise(values):
        noise = rng.standard_normal((len(values), int(noise_features)))
        return np.concatenate([values, noise.astype(values.dtype)], axis=1)

    x_train[WEAK] = with_noise(x_train[WEAK])
    x_test[WEAK] = with_noise(x_test[WEAK])
    return MultiViewData(
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=data.y_test,
        num_classes=data.num_classes,
    )
