import pytest

from keras_gblend.experiment import config as experiment_config, run


def _config(tmp_path=None, **kwargs):
    settings = dict(views=("fac", "mor"), epochs=1, verbose=0,
                    model_dir=None if tmp_path is None else str(tmp_path))
    settings.update(kwargs)
    return experiment_config.ExperimentConfig(**settings)


def test_resume_requires_the_saved_settings(tmp_path):
    first = run.run_experiment(_config(tmp_path, method="naive"))
    assert first["initial_epoch"] == 0
    resumed = run.run_experiment(
        _config(tmp_path, method="naive", epochs=2))
    assert resumed["initial_epoch"] == 1
    with pytest.raises(ValueError, match=r"method='naive' \(saved\) vs "
                       r"'gblend_online' \(now\).*learning_rate"):
        run.run_experiment(
            _config(tmp_path, method="gblend_online", epochs=3,
                    learning_rate=0.5))
    # The refused run changed nothing: the saved run still resumes.
    again = run.run_experiment(
        _config(tmp_path, method="naive", epochs=3))
    assert again["initial_epoch"] == 2


def test_resume_under_a_schedule_keeps_its_epochs(tmp_path):
    run.run_experiment(
        _config(tmp_path, method="naive", lr_schedule="cosine"))
    # More epochs would stretch the schedule over epochs already trained.
    with pytest.raises(ValueError, match=r"epochs=1 \(saved\) vs 2 \(now\)"):
        run.run_experiment(
            _config(tmp_path, method="naive", lr_schedule="cosine", epochs=2))
