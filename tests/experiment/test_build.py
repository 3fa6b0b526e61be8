import keras
import numpy as np
import pytest

from keras_gblend.experiment import build, config as experiment_config


def _config(tmp_path=None, **kwargs):
    settings = dict(views=("fac", "mor"), epochs=1, verbose=0,
                    model_dir=None if tmp_path is None else str(tmp_path))
    settings.update(kwargs)
    return experiment_config.ExperimentConfig(**settings)


def test_unimodal_method_trains_only_that_modality():
    config = _config(method="unimodal:mor")
    config.validate()
    assert config.reported_head == "mor"
    keras.utils.set_random_seed(0)
    train, _, test, encoders, num_classes = build.load_data(config)
    model = build.build_model(config, encoders(), num_classes)
    assert model.blend_weights == {"fac": 0.0, "mor": 1.0, "joint": 0.0}
    before = [v.numpy().copy() for v in model.trainable_variables]
    model.fit(*train, batch_size=32, epochs=2, verbose=0)
    changed = {
        v.path for v, start in zip(model.trainable_variables, before)
        if not np.array_equal(v.numpy(), start)
    }
    assert any(path.startswith("mor_encoder/") for path in changed), changed
    # The fac encoder never moves; the other heads' own layers learn as
    # probes of the (blend scope "shared") features, changing no encoder.
    assert not any(path.startswith("fac_encoder/") for path in changed)
    assert {path.split("/")[0] for path in changed} == {
        "mor_encoder", "mor_head", "fac_head", "joint"}, changed
    accuracy = model.evaluate(*test, return_dict=True, verbose=0)
    assert accuracy["mor_accuracy"] > 0.3  # 10 classes: chance is 0.1


@pytest.mark.parametrize(
    "kwargs, kind, settings",
    [
        ({}, keras.optimizers.SGD, {"learning_rate": 0.01, "momentum": 0.9}),
        ({"optimizer": "adam"}, keras.optimizers.Adam,
         {"learning_rate": 0.001}),
        ({"optimizer": "adamw"}, keras.optimizers.AdamW,
         {"learning_rate": 0.001, "weight_decay": 0.004}),
        ({"optimizer": "adamw", "learning_rate": 0.02, "weight_decay": 0.1},
         keras.optimizers.AdamW, {"learning_rate": 0.02, "weight_decay": 0.1}),
    ],
)
def test_optimizer_settings(kwargs, kind, settings):
    optimizer = build.make_optimizer(_config(**kwargs))
    assert type(optimizer) is kind
    config = optimizer.get_config()
    for name, value in settings.items():
        assert config[name] == pytest.approx(value), name


def test_adamw_weight_decay_shrinks_weights_with_zero_gradient():
    # The fac encoder gets no gradient under unimodal:mor; only AdamW's
    # decoupled decay moves it, by exactly lr * wd per step (x (1 - lr*wd)).
    config = _config(method="unimodal:mor", optimizer="adamw",
                     learning_rate=0.01, weight_decay=0.5)
    keras.utils.set_random_seed(0)
    train, _, _, encoders, num_classes = build.load_data(config)
    model = build.build_model(config, encoders(), num_classes)
    kernel = model.get_layer("fac_encoder").layers[-1].kernel
    start = kernel.numpy().copy()
    model.fit(train[0], train[1], batch_size=len(train[1]), epochs=3,
              verbose=0)
    np.testing.assert_allclose(kernel.numpy(), start * (1 - 0.01 * 0.5) ** 3,
                               rtol=1e-5)


@pytest.mark.parametrize("optimizer, base_rate", [("sgd", 0.1), ("adam", None)])
def test_cosine_schedule_decays_to_zero_over_the_run(optimizer, base_rate):
    config = _config(method="naive", epochs=2, optimizer=optimizer,
                     learning_rate=base_rate, lr_schedule="cosine")
    keras.utils.set_random_seed(0)
    train, _, _, encoders, num_classes = build.load_data(config)
    steps = build.steps_per_epoch(train, config.batch_size)
    assert steps == -(-len(train[1]) // 32)
    model = build.build_model(config, encoders(), num_classes, steps)
    base_rate = base_rate or 0.001  # Adam's default
    assert float(model.optimizer.learning_rate) == pytest.approx(base_rate)
    model.fit(*train, batch_size=32, epochs=1, verbose=0)
    # Half-way: base * (1 + cos(pi / 2)) / 2.
    assert int(model.optimizer.iterations) == steps
    assert float(model.optimizer.learning_rate) == pytest.approx(
        base_rate / 2, rel=1e-5)
    model.fit(*train, batch_size=32, epochs=1, verbose=0)
    assert float(model.optimizer.learning_rate) == pytest.approx(0, abs=1e-9)


def test_cosine_schedule_needs_its_length():
    with pytest.raises(ValueError, match="lr_schedule"):
        build.make_optimizer(_config(lr_schedule="cosine"))
    with pytest.raises(ValueError, match="lr_schedule"):
        _config(lr_schedule="step").validate()


def test_spoken_digits_noise_settings_reach_the_loader():
    clean = build.load_data(_config(dataset="spoken_digits",
                                    image_noise=0.0, audio_noise=0.0))
    noisy = build.load_data(_config(dataset="spoken_digits",
                                    image_noise=0.5))
    clean_images = clean[0][0]["image"]
    # Clean pixels are the bundled digits' (k/16); noise moves them off it.
    np.testing.assert_allclose(clean_images * 16, np.round(clean_images * 16),
                               atol=1e-5)
    gap = noisy[0][0]["image"] - clean_images
    assert 0.45 < float(np.std(gap)) < 0.55
    assert float(np.std(noisy[0][0]["audio"] - clean[0][0]["audio"])) > 0.5


def test_noise_settings_are_refused_off_spoken_digits():
    with pytest.raises(ValueError, match="image_noise: --dataset=uci_mfeat"):
        _config(image_noise=0.5).validate()
    with pytest.raises(ValueError, match="audio_noise: must be"):
        _config(dataset="spoken_digits", audio_noise=-1.0).validate()


def test_ogm_settings_reach_the_modulation():
    modulation = build.modulation(_config(
        method="ogm_ge", alpha=1.5, ogm_end_epoch=9,
        ogm_apply_to="learning_rate", ogm_coefficient="excess"))
    assert (modulation.alpha, modulation.end_epoch, modulation.noise,
            modulation.apply_to, modulation.coefficient) == (
        1.5, 9, True, "learning_rate", "excess")
    assert build.modulation(_config(method="ogm")).coefficient == "reference"
    assert build.modulation(_config(method="naive")) is None
