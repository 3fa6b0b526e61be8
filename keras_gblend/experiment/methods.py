"""What each `--method` means, decided once.

A `Method` says which heads train from the start, whether G-Blend re-weights
them (offline or online), whether OGM-GE modulates the encoders, and which
other callback the run needs. The settings (`config`), the model builder
(`build`) and the run (`run`) all read this table.

This module imports only the standard library: the scripts read it before
TensorFlow is imported.
"""

import dataclasses
from typing import List, Optional, Sequence

UNIMODAL_PREFIX = "unimodal:"


@dataclasses.dataclass(frozen=True)
class Method:
    """One training method of the scripts.

    Attributes:
        name: the `--method` value.
        starting_weights: the blend weights it trains with (G-Blend: until
            its first estimate): `"joint"` (the joint head only),
            `"unimodal"` (every uni-modal head, none joint), `"modality"`
            (one modality's head, `unimodal:<m>`), `"uniform"` (1/(k+1)
            each), or `"ones"` (1 each).
        gblend: `"offline"`, `"online"` or None.
        modulation: `"ogm"` (OGM alone), `"ogm_ge"` (OGM-GE) or None.
        loss_weighting: `"blend"` or `"uncertainty"` (learned weights).
        callback: another callback it needs: `"pretrain_finetune"`,
            `"early_stop"` or None.
        balances: whether it balances modalities (needs two or more).
        late_fusion_only: whether it is built into late fusion models only.
    """

    name: str
    starting_weights: str
    gblend: Optional[str] = None
    modulation: Optional[str] = None
    loss_weighting: str = "blend"
    callback: Optional[str] = None
    balances: bool = False
    late_fusion_only: bool = False


METHOD_TABLE = (
    Method("naive", "joint"),
    Method("unimodal", "unimodal"),
    Method("gblend_offline", "uniform", gblend="offline", balances=True),
    Method("gblend_online", "uniform", gblend="online", balances=True),
    Method("ogm", "joint", modulation="ogm", balances=True),
    Method("ogm_ge", "joint", modulation="ogm_ge", balances=True),
    Method("gblend_offline+ogm_ge", "uniform", gblend="offline",
           modulation="ogm_ge", balances=True),
    Method("gblend_online+ogm_ge", "uniform", gblend="online",
           modulation="ogm_ge", balances=True),
    # The G-Blend paper's other remedies (baselines).
    Method("aux_loss", "uniform"),
    Method("uncertainty", "ones", loss_weighting="uncertainty",
           late_fusion_only=True),
    Method("pretrain_finetune", "unimodal", callback="pretrain_finetune"),
    Method("early_stop", "joint", callback="early_stop"),
)
METHODS = tuple(m.name for m in METHOD_TABLE)
HELP = (
    "One of " + "|".join(METHODS) + " or unimodal:<m>. naive: joint head "
    "only; unimodal:<m>: modality m alone; unimodal: every modality alone "
    "(in one run); gblend_offline / gblend_online: Gradient-Blending; ogm / "
    "ogm_ge: OGM(-GE) on the naive network; gblend_*+ogm_ge: both. The "
    "G-Blend paper's baselines: aux_loss (every head 1/(k+1)), uncertainty "
    "(learned loss weights), pretrain_finetune (uni-modal pre-training, "
    "then the fused model), early_stop (naive, stopped on the holdout, best "
    "weights restored).")


def unimodal_modality(name: str) -> Optional[str]:
    """`m` for `"unimodal:<m>"`, else None."""
    if name.startswith(UNIMODAL_PREFIX):
        return name[len(UNIMODAL_PREFIX):]
    return None


def method(name: str) -> Method:
    """The `Method` called `name` (`unimodal:<m>` included).

    Raises:
        ValueError: an unknown method, naming the known ones.
    """
    if unimodal_modality(name):
        return Method(name, "modality")
    for known in METHOD_TABLE:
        if known.name == name:
            return known
    raise ValueError(
        f"method: must be one of {METHODS} or '{UNIMODAL_PREFIX}<modality>', "
        f"got {name!r}.")


def starting_loss_weights(name: str, heads: Sequence[str]) -> List[float]:
    """The blend weights method `name` trains with, for `heads` (the
    uni-modal heads, then the joint head).

    - `"joint"` (naive, ogm, ogm_ge, early_stop): the plain multimodal
      network (OGM-GE then modulates its encoders' gradients);
    - `"unimodal"` (unimodal, pretrain_finetune): each uni-modal head alone
      (their variables are disjoint: k independent networks in one run;
      `PretrainFinetune` later switches to the joint head);
    - `"modality"` (unimodal:<m>): modality m's head alone;
    - `"uniform"` (gblend_*, aux_loss): 1/(k+1) each, summing to 1 like an
      estimate (the paper's equal-weight auxiliary losses);
    - `"ones"` (uncertainty): 1 each, scaled by the learned `exp(-s_i)`.
    """
    k = len(heads)
    rule = method(name).starting_weights
    if rule == "unimodal":
        return [1.0] * (k - 1) + [0.0]
    if rule == "modality":
        modality = unimodal_modality(name)
        if modality not in heads[:-1]:
            raise ValueError(
                f"{name!r} names no modality of the model {list(heads[:-1])}.")
        return [float(head == modality) for head in heads]
    if rule == "uniform":
        return [1.0 / k] * k
    if rule == "ones":
        return [1.0] * k
    return [0.0] * (k - 1) + [1.0]
