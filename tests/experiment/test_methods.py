import pytest

from keras_gblend.experiment import config as experiment_config, methods


def test_methods_start_from_the_papers_weights():
    heads = ("a", "v", "joint")
    assert methods.starting_loss_weights("aux_loss", heads) == [1 / 3] * 3
    assert methods.starting_loss_weights(
        "pretrain_finetune", heads) == [1.0, 1.0, 0.0]
    assert methods.starting_loss_weights("early_stop", heads) == [0, 0, 1]
    with pytest.raises(ValueError, match="pretrain_epochs"):
        experiment_config.ExperimentConfig(method="pretrain_finetune", epochs=4,
                                    pretrain_epochs=4).validate()
    with pytest.raises(ValueError, match="fusion: must be one of"):
        experiment_config.ExperimentConfig(fusion="mid").validate()
