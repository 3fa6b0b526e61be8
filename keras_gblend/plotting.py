"""`plot_history`: blend weights, OGR and OGM-GE coefficients over epochs."""

import os
from typing import List, Optional, Tuple, Union

import keras

from keras_gblend.training_history import EpochLogs, load_epoch_logs

# (title, y label, [(log key prefix, line style)]) per panel, in order.
_PANELS = (
    ("G-Blend weights", "weight", [("blend_weight/", "-")]),
    ("Overfitting-to-generalization ratio", "OGR |ΔO/ΔG|",
     [("gblend/ogr/", "-"), ("ogr_monitor/ogr/", ":")]),
    ("OGM-GE coefficients", "coefficient", [("ogm/coefficient/", "-")]),
    ("Per-head loss (solid: train, dashed: holdout)", "loss",
     [("", "-"), ("val_", "--")]),
)


def _panel_lines(logs: EpochLogs, prefix: str, style: str):
    """`(label, epochs, values, style)` for the keys a panel draws."""
    lines = []
    for key in sorted(logs):
        if prefix in ("", "val_"):  # per-head losses: `[val_]<head>_loss`
            is_holdout = key.startswith("val_")
            if is_holdout != (prefix == "val_") or not key.endswith("_loss"):
                continue
            head = key[len(prefix):-len("_loss")]
            if not head or "/" in head:
                continue
            label = f"{head} (holdout)" if prefix else head
        elif key.startswith(prefix):
            label = key[len(prefix):]
            if prefix == "ogr_monitor/ogr/":
                label += " (per epoch)"
        else:
            continue
        epochs, values = logs[key]
        lines.append((label, epochs, values, style))
    return lines


def plot_history(
    history_or_model_dir: Union[str, os.PathLike, dict, keras.callbacks.History],
    out: Optional[Union[str, os.PathLike]] = None,
    dpi: int = 100,
):
    """Draws what G-Blend and OGM-GE did during a run, epoch by epoch.

    Panels (each drawn when the logs hold it): the blend weights
    (`blend_weight/<head>`, from `GBlendCallback`), the OGR per head (the
    latest G-Blend estimate, `gblend/ogr/<head>`, and, dotted, the per-epoch
    `ogr_monitor/ogr/<head>` of `OGRMonitor`), the OGM-GE coefficients
    (`ogm/coefficient/<m>`) and each head's train and holdout loss.

    Needs matplotlib (`pip install "keras_gblend[plot]"`); works without a
    display (no pyplot state is touched).

    Args:
        history_or_model_dir: what `fit` returned, a `{key: [per epoch]}`
            dict, or a run folder (`--model_dir` of `scripts/train.py`, or
            any folder of Keras TensorBoard logs); see
            `keras_gblend.training_history.load_epoch_logs`.
        out: optional image path (`.png`, `.pdf`, `.svg`, ...).
        dpi: resolution of a raster `out`.

    Returns:
        The `matplotlib.figure.Figure`.

    Example:

    ```python
    history = model.fit(x, y, epochs=40, callbacks=[kg.GBlendCallback(holdout)])
    kg.plot_history(history, out="weights.png")
    kg.plot_history("runs/latest", out="runs/latest/weights.png")
    ```
    """
    try:
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError as error:
        raise ImportError(
            "plot_history needs matplotlib: pip install \"keras_gblend[plot]\" "
            "(or pip install matplotlib)."
        ) from error
    logs = load_epoch_logs(history_or_model_dir)
    panels: List[Tuple[str, str, list]] = []
    for title, y_label, sources in _PANELS:
        lines = [
            line
            for prefix, style in sources
            for line in _panel_lines(logs, prefix, style)
        ]
        if lines:
            panels.append((title, y_label, lines))
    if not any(title != _PANELS[-1][0] for title, _, _ in panels):
        raise ValueError(
            "No G-Blend or OGM-GE logs to plot: expected `blend_weight/*` "
            "(GBlendCallback), `gblend/ogr/*`, `ogr_monitor/ogr/*` "
            "(OGRMonitor) or `ogm/coefficient/*` (OGMGE) among the keys "
            f"{sorted(logs)}."
        )
    figure = Figure(figsize=(7, 2.6 * len(panels)), layout="constrained")
    axes = figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    colors = {}  # one color per head, in every panel and line style
    for ax, (title, y_label, lines) in zip(axes, panels):
        for label, epochs, values, style in lines:
            name = label.split(" (")[0]
            color = colors.setdefault(name, f"C{len(colors) % 10}")
            ax.plot(epochs, values, style, marker=".", color=color,
                    label=label)
        ax.set_title(title)
        ax.set_ylabel(y_label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", ncols=2)
    axes[-1].set_xlabel("epoch")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    if out is not None:
        figure.savefig(os.fspath(out), dpi=dpi)
    return figure
