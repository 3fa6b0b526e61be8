import numpy as np

import keras_gblend as kg
from keras_gblend.datasets import uci_multilabel


def test_uci_multilabel_targets_are_the_numerals_attributes():
    data = kg.datasets.load_uci_multilabel(seed=0)
    digits = kg.datasets.load_uci_multifeature(views=["fac", "mor"], seed=0)
    assert data.num_classes == 5 and data.y_train.shape == (1400, 5)
    np.testing.assert_array_equal(data.x_train["fac"], digits.x_train["fac"])
    seven = data.y_train[digits.y_train == 7][0]
    assert dict(zip(uci_multilabel.LABELS, seven)) == {
        "even": 0, "large": 1, "prime": 1, "loop": 0, "straight": 1}
    assert data.y_train.sum(1).min() >= 1  # every digit has a label
    # Labels differ in frequency, and no label is a copy of another.
    frequencies = data.y_test.mean(0)
    assert frequencies.min() < 0.35 < 0.45 < frequencies.max()
    assert len({tuple(column) for column in data.y_train.T}) == 5
