import numpy as np
import pytest

import keras_gblend as kg
from keras_gblend.datasets import uci_multifeature


def test_uci_multifeature_has_the_published_shapes():
    data = kg.datasets.load_uci_multifeature(seed=0)
    widths = {"fou": 76, "fac": 216, "kar": 64, "pix": 240, "zer": 47, "mor": 6}
    assert data.views == list(widths)
    for view, width in widths.items():
        assert data.x_train[view].shape[1] == width
        assert data.x_train[view].dtype == np.float32
    assert len(data.y_train) + len(data.y_test) == 2000
    assert np.bincount(data.y_test).tolist() == [60] * 10  # 30% of 200
    assert data.num_classes == 10


def test_views_subset_order_and_seeded_split():
    a = kg.datasets.load_uci_multifeature(views=["mor", "fac"], seed=1)
    b = kg.datasets.load_uci_multifeature(views=["mor", "fac"], seed=1)
    c = kg.datasets.load_uci_multifeature(views=["mor", "fac"], seed=2)
    assert a.views == ["mor", "fac"]
    assert np.array_equal(a.x_test["fac"], b.x_test["fac"])
    assert not np.array_equal(a.x_test["fac"], c.x_test["fac"])
    # Rows of different views stay aligned with each other and the labels.
    full = np.load(uci_multifeature._PATH)
    row = np.flatnonzero((full["mor"] == a.x_test["mor"][0]).all(1))
    assert any(np.array_equal(full["fac"][r], a.x_test["fac"][0]) for r in row)
    assert full["labels"][row[0]] == a.y_test[0]


def test_bad_views_raise():
    with pytest.raises(ValueError, match="Unknown view"):
        kg.datasets.load_uci_multifeature(views=["fac", "rgb"])
    with pytest.raises(ValueError, match="duplicates"):
        kg.datasets.load_uci_multifeature(views=["fac", "fac"])
