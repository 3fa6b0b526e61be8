"""Mid-fusion layers (supplementary 6.2-6.4): shapes and formulas."""

import numpy as np
import pytest

from keras_gblend.networks.mid_fusion_layers import (
    ChannelGate,
    MidConcat,
    NonLocalGate,
    match_time,
)


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
