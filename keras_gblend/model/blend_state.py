"""The blend weights and the latest G-Blend estimate, as variables of the
model itself.

`BlendedModel` reads its blend weights inside `compute_loss`, so a callback
changes them between epochs without recompiling or retracing; being the
model's own variables, they are saved and restored with it (`.keras`,
`save_weights`, `tf.train.Checkpoint`), and so is the latest estimate (its
epoch and figures), which lets a resumed run keep its G-Blend schedule.
The figures' names are spelled here, once.
"""

from typing import Dict, Mapping, Sequence, Union

import keras
import numpy as np

WeightsLike = Union[Mapping[str, float], Sequence[float]]
# The estimate's per-head figures kept on the model, as `blend_<figure>`.
STORED_FIGURES = ("delta_o", "delta_g", "delta_g_se", "delta_o_se")
# The per-head figures logged as `gblend/<figure>/<head>` (OGR follows from
# ΔO and ΔG).
LOGGED_FIGURES = ("delta_o", "delta_g", "ogr", "delta_g_se", "delta_o_se")


def add_blend_state(model: keras.Model, num_heads: int) -> None:
    """Creates the blend state as `model`'s non-trainable weights:
    `blend_weights_variable` (starting at 1 per head, as Keras's
    `loss_weights`), `blend_estimation_epoch` (-1: none yet) and
    `blend_<figure>` for each of `STORED_FIGURES` (NaN until an estimate).
    The order is the order of the model's saved variables: keep it."""
    model.blend_weights_variable = model.add_weight(
        shape=(num_heads,), initializer="ones", dtype="float32",
        trainable=False, name="blend_weights")
    model.blend_estimation_epoch = model.add_weight(
        shape=(), initializer=keras.initializers.Constant(-1), dtype="int64",
        trainable=False, name="blend_estimation_epoch")
    for figure in STORED_FIGURES:
        setattr(model, f"blend_{figure}", model.add_weight(
            shape=(num_heads,), initializer=keras.initializers.Constant(np.nan),
            dtype="float32", trainable=False, name=f"blend_{figure}"))


def weights_vector(head_names: Sequence[str], weights: WeightsLike,
                   what: str) -> np.ndarray:
    """float32 weights in `head_names` order from a `{head: weight}` dict
    (covering every head) or a sequence; raises `ValueError` naming `what`
    for missing or unknown heads, a wrong length, or values that are not
    finite and >= 0."""
    if isinstance(weights, Mapping):
        unknown = sorted(set(weights) - set(head_names))
        missing = [h for h in head_names if h not in weights]
        if unknown or missing:
            raise ValueError(
                f"{what} must name every head {list(head_names)}; "
                f"missing {missing}, unknown {unknown}.")
        vector = [weights[h] for h in head_names]
    else:
        vector = list(weights)
        if len(vector) != len(head_names):
            raise ValueError(
                f"{what} has {len(vector)} values but the model has "
                f"{len(head_names)} heads {list(head_names)}.")
    vector = np.asarray(vector, dtype=np.float32)
    if not np.all(np.isfinite(vector)) or np.any(vector < 0):
        raise ValueError(
            f"{what} must be finite and non-negative, got "
            f"{dict(zip(head_names, vector.tolist()))}.")
    return vector


def stored_figures(model: keras.Model) -> Dict[str, np.ndarray]:
    """`{figure: per-head values}` of the latest estimate kept on `model`
    (NaN before the first)."""
    return {figure: keras.ops.convert_to_numpy(
        getattr(model, f"blend_{figure}")) for figure in STORED_FIGURES}


def store_estimate(model: keras.Model, epoch: int,
                   figures: Mapping[str, object]) -> None:
    """Keeps an estimate made at the start of `epoch` on `model`: each of
    `STORED_FIGURES` from `figures` (None: NaN)."""
    for figure in STORED_FIGURES:
        values = figures.get(figure)
        if values is None:
            values = np.full(len(model.head_names), np.nan)
        getattr(model, f"blend_{figure}").assign(
            np.asarray(values, dtype=np.float32))
    model.blend_estimation_epoch.assign(epoch)


def estimation_epoch(model: keras.Model) -> int:
    """The epoch of the latest estimate kept on `model` (-1: none)."""
    return int(keras.ops.convert_to_numpy(model.blend_estimation_epoch))
