"""Mid fusion (supplementary 6.2-6.4): the models' layout and head/variable
map, G-Blend and OGM-GE on it, and the training script."""

import json
import os

import keras
import numpy as np
import pytest

import keras_gblend as kg
from keras_gblend.model import head_graph
from keras_gblend.networks.mid_fusion import MID_FUSIONS
from keras_gblend.networks.mid_fusion_layers import ChannelGate

AUDIO_SHAPE = (16, 8, 1)      # time, frequency, channel
VISUAL_SHAPE = (2, 8, 8, 3)   # frames, height, width, channel


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
    # Uni-modal heads: their trunk, their own post-fusion block and their
    # classifier, nothing else.
    assert _layer_names(model, per_head["audio"]) == {
        "audio_trunk", "audio_head_block0_conv", "audio_head_block0_bn",
        "audio_head"}
    assert _layer_names(model, per_head["visual"]) == {
        "visual_trunk", "visual_head_block0_conv", "visual_head_block0_bn",
        "visual_head"}
    assert head_graph.heads_are_disjoint(model, ["audio", "visual"])
    joint = _layer_names(model, per_head["joint"])
    assert {"audio_trunk", "visual_trunk", "joint"} <= joint
    assert not joint & {"audio_head", "visual_head", "audio_head_block0_conv",
                        "visual_head_block0_conv"}
    exclusive = _layer_names(
        model, head_graph.exclusive_trainable_variables(model)["joint"])
    assert "audio_trunk" not in exclusive and "joint" in exclusive
    out = model({"audio": np.zeros((2,) + AUDIO_SHAPE, "float32"),
                 "visual": np.zeros((2,) + VISUAL_SHAPE, "float32")})
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "audio": (2, 3), "visual": (2, 3), "joint": (2, 3)}
    linear = kg.mid_fusion_model(_trunks(), 3, fusion=fusion,
                                 post_fusion_widths=(6,),
                                 unimodal_heads="linear")
    assert _layer_names(linear, head_graph.head_trainable_variables(
        linear)["audio"]) == {"audio_trunk", "audio_head"}


def _convolutions_after_trunks(model, head):
    """Convolution layers on `head`'s path that are not in a trunk."""
    names = _layer_names(model, head_graph.head_trainable_variables(model)[
        head])
    return sorted(n for n in names if n.endswith("_conv"))


@pytest.mark.parametrize("fusion", MID_FUSIONS)
@pytest.mark.parametrize("widths", [(6,), (6, 8)])
def test_matched_uni_modal_paths_are_as_deep_as_the_joint_path(fusion,
                                                               widths):
    # G-Blend compares the heads' ΔG and ΔO: with matched heads each
    # uni-modal path has as many blocks after the fusion point as the
    # joint head has per stream.
    model = kg.mid_fusion_model(_trunks(), 3, fusion=fusion,
                                post_fusion_widths=widths)
    for modality in ("audio", "visual"):
        assert _convolutions_after_trunks(model, modality) == [
            f"{modality}_head_block{i}_conv" for i in range(len(widths))]
    joint_blocks = [n for n in _convolutions_after_trunks(model, "joint")
                    if "_block" in n]
    streams = 1 if fusion.startswith("mid_concat") else 2
    assert len(joint_blocks) == streams * len(widths)
    linear = kg.mid_fusion_model(_trunks(), 3, fusion=fusion,
                                 post_fusion_widths=widths,
                                 unimodal_heads="linear")
    assert _convolutions_after_trunks(linear, "audio") == []
    with pytest.raises(ValueError, match="unimodal_heads"):
        kg.mid_fusion_model(_trunks(), 3, fusion=fusion,
                            unimodal_heads="deep")


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
def test_mid_fusions_train_with_gblend_and_ogm_ge_and_save(
        fusion, tmp_path, assert_saves_and_loads):
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
    # 16 epochs: with OGM-GE slowing the audio trunk, the 1-D concat's
    # 6-unit block is at 54 % after 8.
    model.fit(x, y, epochs=16, batch_size=16, verbose=0)
    after = model.evaluate(x, y, return_dict=True, verbose=0)
    assert after["joint_loss"] < before["joint_loss"]
    assert after["joint_accuracy"] > 0.6  # chance 1/3
    assert_saves_and_loads(model, x, str(tmp_path / "m.keras"), atol=1e-4)


def test_train_script_runs_mid_fusion_gblend_on_av_digits(av_digits_dir,
                                                          tmp_path, run_script):
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
