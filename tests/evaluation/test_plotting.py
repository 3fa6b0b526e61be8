import keras
import pytest

import keras_gblend as kg
from keras_gblend.evaluation.training_history import load_epoch_logs


def _lines(figure):
    """{panel title: {line label: (x, y)}}, error-bar lines included."""
    panels = {}
    for ax in figure.axes:
        lines = {
            line.get_label(): (list(line.get_xdata()), list(line.get_ydata()))
            for line in ax.get_lines() if not line.get_label().startswith("_")
        }
        for container in ax.containers:
            data = container.lines[0]
            lines[container.get_label()] = (list(data.get_xdata()),
                                            list(data.get_ydata()))
        panels[ax.get_title()] = lines
    return panels


def test_plot_history_draws_the_logged_weights_ogr_and_coefficients(
        tmp_path, toy_data, toy_model, sparse_ce, same_values):
    x, y = toy_data(n=120)
    train, holdout = kg.split_holdout((x, y), fraction=0.25, seed=0)
    model = toy_model(modulation=kg.OGMGE(alpha=0.5, noise=False))
    model.compile(keras.optimizers.SGD(0.1), sparse_ce(),
                  loss_weights=[1 / 3] * 3)
    history = model.fit(
        *train, batch_size=16, epochs=3, verbose=0, validation_data=holdout,
        callbacks=[kg.GBlendCallback(holdout, mode="online", warmup_epochs=1,
                                     first_super_epoch=1, super_epoch=1,
                                     estimation_epochs=1, noise_z=0.0,
                                     verbose=0)])
    out = tmp_path / "weights.png"
    figure = kg.plot_history(history, out=out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = _lines(figure)
    estimates = "G-Blend estimates ± standard error (solid: ΔG, dashed: ΔO)"
    assert list(lines) == [
        "G-Blend weights",
        "Overfitting-to-generalization ratio",
        estimates,
        "OGM-GE coefficients",
        "Per-head loss (solid: train, dashed: holdout)",
    ]
    logs = history.history
    for head in ("a", "v", "joint"):
        xs, ys = lines["G-Blend weights"][head]
        assert xs == [0, 1, 2] and same_values(ys, logs[f"blend_weight/{head}"])
        assert same_values(lines["Overfitting-to-generalization ratio"][head][1],
                     logs[f"gblend/ogr/{head}"])
        assert same_values(lines["Per-head loss (solid: train, dashed: holdout)"][
            f"{head} (holdout)"][1], logs[f"val_{head}_loss"])
        # One point per estimate (epochs 1 and 2), with its error bar.
        for figure_name, symbol in (("delta_g", "ΔG"), ("delta_o", "ΔO")):
            xs, ys = lines[estimates][f"{head} {symbol}"]
            assert xs == [1, 2]
            assert same_values(ys, logs[f"gblend/{figure_name}/{head}"][1:])
    bars = [c for c in figure.axes[2].containers
            if c.get_label() == "joint ΔG"][0]
    # The bar of the first estimate spans ± its standard error.
    segment = bars.lines[2][0].get_segments()[0]
    se = logs["gblend/delta_g_se/joint"][1]
    assert se > 0 and segment[1][1] - segment[0][1] == pytest.approx(2 * se)
    for modality in ("a", "v"):
        assert same_values(lines["OGM-GE coefficients"][modality][1],
                     logs[f"ogm/coefficient/{modality}"])
    # The weights really moved: the plot is not of a constant.
    assert len(set(logs["blend_weight/joint"])) > 1


def test_plot_history_of_a_plain_run_draws_its_losses():
    figure = kg.plot_history({"loss": [1.0, 0.5], "joint_loss": [1.0, 0.5],
                              "val_joint_loss": [1.1, 0.7]})
    lines = _lines(figure)["Per-head loss (solid: train, dashed: holdout)"]
    assert lines["joint"] == ([0, 1], [1.0, 0.5])
    assert lines["joint (holdout)"] == ([0, 1], [1.1, 0.7])
    # Before any estimate (fewer epochs than the warm-up) the OGR is NaN:
    # no empty panel, and no legend for holdout lines that are not there.
    figure = kg.plot_history({"joint_loss": [1.0, 0.5],
                              "blend_weight/joint": [1.0, 1.0],
                              "gblend/ogr/joint": [float("nan")] * 2})
    assert list(_lines(figure)) == ["G-Blend weights", "Per-head loss (train)"]
    with pytest.raises(ValueError, match=r"Nothing to plot.*'loss'"):
        kg.plot_history({"loss": [1.0, 0.5]})
    with pytest.raises(ValueError, match="is not a folder"):
        kg.plot_history("/nonexistent/run")
    with pytest.raises(ValueError, match="2 values for 3 epochs"):
        load_epoch_logs(type("H", (), {"history": {"loss": [1, 2]},
                                       "epoch": [4, 5, 6]})())
