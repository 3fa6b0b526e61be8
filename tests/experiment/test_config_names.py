"""The names the scripts offer (written out in `experiment.config` so that
`--help` answers before TensorFlow loads) are the implementing modules'."""

from keras_gblend.datasets import uci_paradox
from keras_gblend.experiment import config
from keras_gblend.model import blended_model
from keras_gblend.networks import late_fusion, mid_fusion
from keras_gblend.ogm import ogmge, transforms


def test_config_names_match_the_modules_that_implement_them():
    assert config.LATE_FUSIONS == late_fusion.FUSIONS
    assert config.MID_FUSIONS == mid_fusion.MID_FUSIONS
    assert config.BLEND_SCOPES == blended_model.BLEND_SCOPES
    assert config.OGM_APPLY_TO == ogmge.APPLY_TO
    assert config.OGM_COEFFICIENT_FORMS == transforms.COEFFICIENT_FORMS
    assert config.UCI_PARADOX_VIEWS == uci_paradox.VIEWS
