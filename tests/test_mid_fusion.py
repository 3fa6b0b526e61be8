"""Mid fusion (supplementary 6.2-6.4): shapes, formulas, head/variable map,
G-Blend and OGM-GE on it, and the training script."""

import json
import os

import keras
import numpy as np
import pytest

import keras_gblend as kg
from keras_gblend.model import head_graph
from keras_gblend.networks.mid_fusion import MID_FUSIONS
from keras_gblend.networks.mid_fusion_layers import (
    ChannelGate,
    MidConcat,
    NonLocalGate,
    match_time,
)
from conftest import assert_saves_and_loads, run_script

AUDIO_SHAPE = (16, 8, 1)      # time, frequency, channel
VISUAL_SHAPE = (2, 8, 8, 3)   # frames, height, width, channel


def _maps(seed=0, batch=2, audio=(8, 4, 5), visual=(2, 3, 3, 6)):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(batch,) + audio).astype("float32"),
            rng.normal(size=(batch,) + visual).astype("float32"))


def test_match_time_replicates_or_picks_steps():
    x = np.arange(4.0)[None, :, None]
    assert np.asarray(match_time(x, 8))[0, :, 0].tolist() == [
        0, 0, 1, 1, 2, 2, 3, 3]
    assert np.asarray(match_time(x, 2))[0, :, 0].tolist() == [0, 2]
    assert match_time(x, 4) is x


def test_mid_concat_matches_the_papers_three_recipes():
    audio, visual = _maps()
    upsampled = np.repeat(visual, 4, axis=1)  # 2 frames -> 8 audio steps
    one = np.asarray(MidConcat(1)([audio, visual]))
    np.testing.assert_allclose(one, np.concatenate(
        [audio.mean(2), upsampled.mean((2, 3))], -1), rtol=1e-5, atol=1e-6)
    two = np.asarray(MidConcat(2)([audio, visual]))
    assert two.shape == (2, 8, 4, 11)
    np.testing.assert_allclose(two[..., :5], audio, rtol=1e-6)
    for band in range(4):  # visual pooled over space, tiled over frequency
        np.testing.assert_allclose(two[:, :, band, 5:],
                                   upsampled.mean((2, 3)), rtol=1e-5, atol=1e-6)
    three = np.asarray(MidConcat(3)([audio, visual]))
    assert three.shape == (2, 8, 3, 3, 11)
    np.testing.assert_allclose(three[..., 5:], upsampled, rtol=1e-6)
    for i, j in ((0, 0), (2, 1)):  # audio pooled over frequency, tiled
        np.testing.assert_allclose(three[:, :, i, j, :5], audio.mean(2),
                                   rtol=1e-5, atol=1e-6)


def test_mid_layers_reject_bad_streams():
    audio, visual = _maps()
    with pytest.raises(ValueError, match="dims"):
        MidConcat(4)
    with pytest.raises(ValueError, match="audio .batch, time, frequency"):
        MidConcat(1)([visual, audio])
    with pytest.raises(ValueError, match="static time"):
        MidConcat(2).build([(None, None, 4, 5), (None, 2, 3, 3, 6)])
    with pytest.raises(ValueError, match="reduction"):
        ChannelGate(reduction=0)


def _softmax(z):
    z = z - z.max(-1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(-1, keepdims=True)


def test_non_local_gate_starts_as_identity_and_matches_its_formula():
    audio, visual = _maps()
    key_value = np.asarray(MidConcat(2)([audio, visual]))
    gate = NonLocalGate(units=4)
    np.testing.assert_allclose(np.asarray(gate([visual, key_value])), visual,
                               rtol=1e-6)  # BN scale starts at 0
    gate.norm.gamma.assign(np.ones(6, "float32"))
    out = np.asarray(gate([visual, key_value], training=False))

    def dense(layer, x):
        return x @ np.asarray(layer.kernel) + np.asarray(layer.bias)

    q = visual.reshape(2, -1, 6)
    kv = key_value.reshape(2, -1, 11)
    attention = _softmax(
        dense(gate.theta, q) @ dense(gate.phi, kv).transpose(0, 2, 1) / 2.0)
    np.testing.assert_allclose(np.asarray(gate.attention(visual, key_value)),
                               attention, rtol=1e-5, atol=1e-6)
    update = dense(gate.out, attention @ dense(gate.g, kv))
    update = update / np.sqrt(1.0 + gate.norm.epsilon)  # BN at its init stats
    np.testing.assert_allclose(out, visual + update.reshape(visual.shape),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("residual", [False, True])
def test_channel_gate_scales_the_target_by_the_sources_excitation(residual):
    audio, visual = _maps()
    gate = ChannelGate(reduction=2, residual=residual)
    out = np.asarray(gate([visual, audio]))
    pooled = audio.mean((1, 2))
    hidden = np.maximum(pooled @ np.asarray(gate.squeeze.kernel)
                        + np.asarray(gate.squeeze.bias), 0)
    weights = 1 / (1 + np.exp(-(hidden @ np.asarray(gate.excite.kernel)
                                + np.asarray(gate.excite.bias))))
    assert gate.squeeze.kernel.shape == (5, 3)  # 6 target channels / 2
    scaled = visual * weights[:, None, None, None, :]
    np.testing.assert_allclose(out, visual + scaled if residual else scaled,
                               rtol=1e-5, atol=1e-6)


def _trunks():
    return {"audio": kg.encoders.spectrogram_trunk(AUDIO_SHAPE, widths=(4,)),
            "visual": kg.encoders.frames_trunk(VISUAL_SHAPE, widths=(4,))}


def _layer_names(model, variables):
    """The model's top-level layers that own `variables`."""
    ids = {id(v) for v in variables}
    return {layer.name for layer in model.layers
            if any(id(v) in ids for v in layer.trainable_weights)}


@pytest.mark.parametrize("fusion", MID_FUSIONS)
def test_mid_fusion_heads_read_the_right_variables(fusion):
    model = kg.mid_fusion_model(_trunks(), 3, fusion=fusion,
                                post_fusion_widths=(6,))
    assert model.head_names == ("audio", "visual", "joint")
    per_head = head_graph.head_trainable_variables(model)
    # Uni-modal heads: their trunk and their classifier, nothing else.
    assert _layer_names(model, per_head["audio"]) == {"audio_trunk", "audio_head"}
    assert _layer_names(model, per_head["visual"]) == {"visual_trunk", "visual_head"}
    assert head_graph.heads_are_disjoint(model, ["audio", "visual"])
    joint = _layer_names(model, per_head["joint"])
    assert {"audio_trunk", "visual_trunk", "joint"} <= joint
    assert not joint & {"audio_head", "visual_head"}
    exclusive = _layer_names(
        model, head_graph.exclusive_trainable_variables(model)["joint"])
    assert "audio_trunk" not in exclusive and "joint" in exclusive
    out = model({"audio": np.zeros((2,) + AUDIO_SHAPE, "float32"),
                 "visual": np.zeros((2,) + VISUAL_SHAPE, "float32")})
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "audio": (2, 3), "visual": (2, 3), "joint": (2, 3)}


def test_mid_fusion_layout_per_recipe():
    # Audio map after one block: (8, 4, 4); visual (2, 4, 4, 4).
    shapes = {}
    for fusion in ("mid_concat_1d", "mid_concat_2d", "mid_concat_3d"):
        model = kg.mid_fusion_model(_trunks(), 3, fusion=fusion,
                                    post_fusion_widths=(6, 6))
        shapes[fusion] = tuple(model.get_layer("mid_concat").output.shape)
        blocks = [l for l in model.layers if l.name.startswith("fusion_block")
                  and l.name.endswith("_conv")]
        assert len(blocks) == 2
        assert type(blocks[0]).__name__ == f"Conv{fusion[-2]}D"
    assert shapes == {"mid_concat_1d": (None, 8, 8),
                      # two stride-2 convs on audio time: 8 -> 4 -> 2
                      "mid_concat_2d": (None, 2, 4, 8),
                      "mid_concat_3d": (None, 8, 4, 4, 8)}
    strided = kg.mid_fusion_model(_trunks(), 3, fusion="mid_concat_2d")
    assert [l.strides for l in strided.layers
            if l.name.startswith("fusion_audio_down")
            and l.name.endswith("_conv")] == [(2, 1), (2, 1)]
    se = kg.mid_fusion_model(_trunks(), 3, fusion="mid_se_gate",
                             se_direction="audio_to_visual")
    assert [l.name for l in se.layers if isinstance(l, ChannelGate)] == [
        "se_gate_to_visual"]


def test_mid_fusion_model_errors():
    with pytest.raises(ValueError, match="fusion"):
        kg.mid_fusion_model(_trunks(), 3, fusion="late")
    with pytest.raises(ValueError, match="se_direction"):
        kg.mid_fusion_model(_trunks(), 3, fusion="mid_se_gate",
                            se_direction="up")
    two_audio = {"a": kg.encoders.spectrogram_trunk(AUDIO_SHAPE, name="t1"),
                 "b": kg.encoders.spectrogram_trunk(AUDIO_SHAPE, name="t2")}
    with pytest.raises(ValueError, match="one trunk giving an audio map"):
        kg.mid_fusion_model(two_audio, 3)
    untimed = {"audio": kg.encoders.spectrogram_trunk((None, 8, 1)),
               "visual": kg.encoders.frames_trunk(VISUAL_SHAPE)}
    with pytest.raises(ValueError, match="mid_fusion_model needs static time"):
        kg.mid_fusion_model(untimed, 3)


def _av_data(n=96, seed=0):
    """Audio carries the class (a per-class frequency band); visual is
    noise with a faint class tint."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    audio = rng.normal(size=(n,) + AUDIO_SHAPE).astype("float32") * 0.5
    for c in range(3):
        audio[y == c, :, 2 * c:2 * c + 2] += 2.0
    visual = rng.normal(size=(n,) + VISUAL_SHAPE).astype("float32")
    visual[..., 0] += 0.2 * y[:, None, None, None]
    return {"audio": audio, "visual": visual}, y


@pytest.mark.parametrize("fusion", MID_FUSIONS)
def test_mid_fusions_train_with_gblend_and_ogm_ge_and_save(fusion, tmp_path):
    keras.utils.set_random_seed(0)
    x, y = _av_data()
    model = kg.mid_fusion_model(_trunks(), 3, fusion=fusion,
                                post_fusion_widths=(6,),
                                modulation=kg.OGMGE(alpha=0.5, seed=0))
    model.compile(keras.optimizers.Adam(3e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  loss_weights=[1 / 3] * 3, metrics=["accuracy"])
    estimate = kg.estimate_blend_weights(model, (x, y), (x, y), epochs=1,
                                         batch_size=32)
    assert estimate.fused  # the uni-modal heads share no variable
    before = model.evaluate(x, y, return_dict=True, verbose=0)
    model.fit(x, y, epochs=8, batch_size=16, verbose=0)
    after = model.evaluate(x, y, return_dict=True, verbose=0)
    assert after["joint_loss"] < before["joint_loss"]
    assert after["joint_accuracy"] > 0.6  # chance 1/3
    assert_saves_and_loads(model, x, str(tmp_path / "m.keras"), atol=1e-4)


def test_train_script_runs_mid_fusion_gblend_on_av_digits(av_digits_dir,
                                                          tmp_path):
    out = str(tmp_path / "run")
    result = run_script(
        "scripts", "train.py", "--dataset=av_digits",
        f"--data_dir={av_digits_dir}", "--fusion=nl_gate",
        "--method=gblend_online", "--epochs=2", "--first_super_epoch=1",
        "--super_epoch=1", "--batch_size=16", f"--model_dir={out}",
        "--verbose=0")
    assert result.returncode == 0, result.stderr[-3000:]
    with open(os.path.join(out, "metrics.json")) as f:
        metrics = json.load(f)
    assert set(metrics["blend_weights"]) == {"audio", "visual", "joint"}
    history = metrics["history"]
    # Estimated at both epochs, every head measured.
    assert history["gblend/estimation_epoch"] == [0.0, 1.0]
    for head in ("audio", "visual", "joint"):
        assert all(np.isfinite(history[f"gblend/delta_g/{head}"]))
    uci = run_script("scripts", "train.py", "--fusion=mid_concat_2d",
                     f"--model_dir={tmp_path / 'uci'}", "--epochs=1")
    assert uci.returncode != 0 and "needs --dataset=av_digits" in uci.stderr
