"""`plot_history`: blend weights, OGR and OGM-GE coefficients over epochs."""

import os
from typing import List, Optional, Tuple, Union

import keras

from keras_gblend.evaluation.training_history import (
    EpochLogs,
    load_epoch_logs,
)

# (title, y label, [(log key prefix, line style)]) per panel, in order.
_PANELS = (
    ("G-Blend weights", "weight", [("blend_weight/", "-")]),
    ("Overfitting-to-generalization ratio", "OGR |ΔO/ΔG|",
     [("gblend/ogr/", "-"), ("ogr_monitor/ogr/", ":")]),
    ("G-Blend estimates ± standard error (solid: ΔG, dashed: ΔO)",
     "loss change", [("gblend/delta_g/", "-"), ("gblend/delta_o/", "--")]),
    ("OGM-GE coefficients", "coefficient", [("ogm/coefficient/", "-")]),
    ("Per-head loss (solid: train, dashed: holdout)", "loss",
     [("", "-"), ("val_", "--")]),
)


_LOSS_PANEL = _PANELS[-1][0]


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
        if not any(v == v for v in values):  # all NaN: nothing to draw
            continue
        errors = None
        if prefix in _ESTIMATE_PREFIXES:
            epochs, values, errors = _estimates(logs, key, prefix)
            label += " ΔG" if prefix == "gblend/delta_g/" else " ΔO"
            if not epochs:
                continue
        lines.append((label, epochs, values, style, errors))
    return lines


_ESTIMATE_PREFIXES = ("gblend/delta_g/", "gblend/delta_o/")


def _estimates(logs: EpochLogs, key: str, prefix: str):
    """One point per G-Blend estimate (the logs repeat it every epoch until
    the next), at the epoch it was made, with its standard error (NaN-free
    errors only)."""
    if "gblend/estimation_epoch" not in logs:
        return [], [], None
    made_at = dict(zip(*logs["gblend/estimation_epoch"]))
    values = dict(zip(*logs[key]))
    se_key = prefix.rstrip("/") + "_se/" + key[len(prefix):]
    errors = dict(zip(*logs[se_key])) if se_key in logs else {}
    epochs = sorted(
        epoch for epoch, at in made_at.items()
        if at == epoch and epoch in values and values[epoch] == values[epoch]
    )
    spread = [errors.get(e, float("nan")) for e in epochs]
    if not any(err == err for err in spread):  # no standard errors logged
        spread = None
    return epochs, [values[e] for e in epochs], spread


def plot_history(
    history_or_model_dir: Union[str, os.PathLike, dict, keras.callbacks.History],
    out: Optional[Union[str, os.PathLike]] = None,
    dpi: int = 100,
):
    """Draws what G-Blend and OGM-GE did during a run, epoch by epoch.

    Panels (each drawn when the logs hold it): the blend weights
    (`blend_weight/<head>`, from `GBlendCallback`), the OGR per head (the
    latest G-Blend estimate, `gblend/ogr/<head>`, and, dotted, the per-epoch
    `ogr_monitor/ogr/<head>` of `OGRMonitor`), each G-Blend estimate's ΔG
    and ΔO with their bootstrap standard errors as error bars, the OGM-GE
    coefficients (`ogm/coefficient/<m>`) and each head's train and holdout
    loss (a plain run has only this last panel).

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
            if title == _LOSS_PANEL and not any(
                    label.endswith("(holdout)") for label, *_ in lines):
                title = "Per-head loss (train)"
            panels.append((title, y_label, lines))
    if not panels:
        raise ValueError(
            "Nothing to plot: expected per-head losses (`<head>_loss`), "
            "`blend_weight/*` (GBlendCallback), `gblend/ogr/*`, "
            "`ogr_monitor/ogr/*` (OGRMonitor) or `ogm/coefficient/*` "
            f"(OGMGE) among the keys {sorted(logs)}."
        )
    figure = Figure(figsize=(7, 2.6 * len(panels)), layout="constrained")
    axes = figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    colors = {}  # one color per head, in every panel and line style
    for ax, (title, y_label, lines) in zip(axes, panels):
        for label, epochs, values, style, errors in lines:
            name = label.split(" (")[0].split(" Δ")[0]
            color = colors.setdefault(name, f"C{len(colors) % 10}")
            if errors is not None:
                ax.errorbar(epochs, values, yerr=errors, fmt=style,
                            marker="o", capsize=3, color=color, label=label)
            else:
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
