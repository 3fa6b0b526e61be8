import math

import pytest

import keras_gblend as kg


def test_config_validation_and_round_trip():
    config = kg.OGMGE(alpha=0.8, start_epoch=2, end_epoch=9, noise=False, seed=3)
    assert kg.OGMGE.from_config(config.get_config()).get_config() == config.get_config()
    with pytest.raises(ValueError, match="params"):
        kg.OGMGE(params="biases")
    with pytest.raises(ValueError, match="end_epoch"):
        kg.OGMGE(start_epoch=5, end_epoch=1)
    with pytest.raises(ValueError, match="does nothing"):
        kg.OGMGE(modulation=False, noise=False)
    for kwargs, name in (({"alpha": math.inf}, "alpha"),
                         ({"alpha": math.nan}, "alpha"),
                         ({"alpha": -1}, "alpha"),
                         ({"start_epoch": -3}, "start_epoch"),
                         ({"end_epoch": 2.5}, "end_epoch")):
        with pytest.raises(ValueError, match=name):
            kg.OGMGE(**kwargs)
