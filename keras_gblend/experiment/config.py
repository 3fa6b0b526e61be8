"""Settings of one training run: the one source of `ExperimentConfig`, the
scripts' flags (their help, default and bounds) and the docs' flag table.

Each setting is a field declared once with `setting(...)`: its default,
help, kind and bounds. `ExperimentConfig.validate` checks every field
against them, then the rules that tie settings together;
`keras_gblend.cli.define_flags` makes the absl flags from the same fields,
so a flag accepts exactly what `validate` accepts.

This module imports only the standard library and `gblend_presets`: the
scripts parse their flags before TensorFlow is imported.
"""

import dataclasses
import math
import os
import re
from typing import Any, Dict, Optional, Sequence, Tuple

from keras_gblend.experiment import methods
from keras_gblend.experiment.methods import (  # noqa: F401 - re-exported
    METHODS,
    UNIMODAL_PREFIX,
    unimodal_modality,
)
from keras_gblend.gblend import presets as gblend_presets
from keras_gblend.gblend.presets import AUTO, PRESET, SPAN

# Names the scripts offer, written out so that `--help` and flag mistakes
# answer before TensorFlow loads. The modules that implement them define
# the same tuples (tests/experiment/test_config_names.py checks that they
# agree).
DATASETS = ("uci_mfeat", "uci_paradox", "av_digits", "uci_multilabel",
            "spoken_digits")
UCI_VIEWS = ("fou", "fac", "kar", "pix", "zer", "mor")
LATE_FUSIONS = ("concat", "sum", "film", "gated", "lmf", "se_gate")
CONCAT_PRESETS = ("concat_fc0", "concat_fc1", "concat_fc2", "concat_fc4")
MID_FUSIONS = ("mid_concat_1d", "mid_concat_2d", "mid_concat_3d", "nl_gate",
               "mid_se_gate")
ALL_FUSIONS = LATE_FUSIONS + CONCAT_PRESETS + MID_FUSIONS
BLEND_SCOPES = ("all", "shared")
OPTIMIZERS = ("sgd", "adam", "adamw")
LR_SCHEDULES = ("constant", "cosine")
STRATEGIES = ("default", "mirrored", "multi_worker")
AV_DIGITS_MODALITIES = ("audio", "visual")
SPOKEN_DIGITS_MODALITIES = ("audio", "image")
# The settings that pass their noise to `load_spoken_digits`.
SPOKEN_DIGITS_NOISE = ("image_noise", "audio_noise")
OGM_APPLY_TO = ("gradient", "learning_rate")
OGM_COEFFICIENT_FORMS = ("reference", "excess")
UCI_PARADOX_VIEWS = ("fac", "zer")
# More would overflow no counter but is no run anyone means to start.
MAX_EPOCHS = 1_000_000
MAX_BATCH_SIZE = 2**31 - 1

# Groups of the docs' flag table, in order.
GROUPS = ("data", "model", "training", "G-Blend", "OGM-GE", "run")


def setting(default, help: str, kind: str, group: str, *,
            choices: Optional[Sequence] = None, low=None, high=None,
            low_open: bool = False, high_open: bool = False,
            optional: bool = False, preset: bool = False,
            words: Sequence[str] = (), resumable: bool = False,
            flag_default: Any = dataclasses.MISSING):
    """A field of `ExperimentConfig` with what describes it.

    Args:
        default: the value when not set.
        help: one sentence for `--help` and the docs.
        kind: `"str"`, `"int"`, `"float"`, `"bool"` or `"list"` (a comma
            list of strings, each one of `choices` when given).
        group: one of `GROUPS` (the docs' table).
        choices: the values allowed (each element's, for a list).
        low, high, low_open, high_open: bounds of a number.
        optional: `None` is allowed (the flag reads `none`).
        preset: `"preset"` is allowed: the G-Blend preset's value.
        words: other strings a number setting allows (e.g. `"span"`).
        resumable: may differ when a checkpointed run is resumed.
        flag_default: the flag's default, when not `default`.
    """
    metadata = dict(help=help, kind=kind, group=group, choices=choices,
                    low=low, high=high, low_open=low_open,
                    high_open=high_open, optional=optional, preset=preset,
                    words=tuple(words), resumable=resumable,
                    flag_default=(default if flag_default is dataclasses.MISSING
                                  else flag_default))
    if isinstance(default, (list, tuple)):
        return dataclasses.field(default_factory=lambda: tuple(default),
                                 metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def check_value(field: dataclasses.Field, value) -> None:
    """Raises `ValueError("<name>: ...")` unless `value` is what the
    setting `field` allows."""
    info, name = field.metadata, field.name
    if value is None:
        if info["optional"]:
            return
        raise ValueError(f"{name}: must be given (got none).")
    if info["preset"] and value == PRESET:
        return
    if isinstance(value, str) and value in info["words"]:
        return
    kind = info["kind"]
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{name}: must be true or false, got {value!r}.")
        return
    if kind == "list":
        values = list(value) if isinstance(value, (list, tuple)) else None
        if not values or not all(isinstance(v, str) and v for v in values):
            raise ValueError(f"{name}: must be a comma-separated list, got "
                             f"{value!r}.")
        unknown = [v for v in values if info["choices"] and
                   v not in info["choices"]]
        if unknown:
            raise ValueError(f"{name}: unknown {unknown}; choose from "
                             f"{list(info['choices'])}.")
        return
    if kind == "str":
        if not isinstance(value, str):
            raise ValueError(f"{name}: must be a string, got {value!r}.")
        if info["choices"] and value not in info["choices"]:
            raise ValueError(
                f"{name}: must be one of {_allowed(field)}, got {value!r}.")
        return
    if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"{name}: must be an integer, got {value!r}.")
    if kind == "float" and (isinstance(value, bool) or not isinstance(
            value, (int, float))):
        raise ValueError(f"{name}: must be a number, got {value!r}.")
    if not math.isfinite(value):
        raise ValueError(f"{name}: must be finite, got {value}.")
    low, high = info["low"], info["high"]
    if low is not None and (value <= low if info["low_open"] else value < low):
        raise ValueError(f"{name}: must be {'>' if info['low_open'] else '>='}"
                         f" {low}, got {value}.")
    if high is not None and (
            value >= high if info["high_open"] else value > high):
        raise ValueError(f"{name}: must be {'<' if info['high_open'] else '<='}"
                         f" {high}, got {value}.")


def _allowed(field: dataclasses.Field) -> list:
    info = field.metadata
    allowed = list(info["choices"] or ())
    if info["preset"]:
        allowed.append(PRESET)
    return allowed + list(info["words"])


@dataclasses.dataclass
class ExperimentConfig:
    """Settings of one run (the flags of `scripts/train.py`).

    Settings left at `"preset"` take the value of `gblend_preset`
    (`resolved()`); `kg.gblend_presets` lists them.
    """

    dataset: str = setting(
        "uci_mfeat", "Built-in dataset (uci_paradox: the set on which naive "
        "fusion loses to its best modality; spoken_digits: real recorded "
        "speech with digit images, OGM-GE's regime).", "str", "data",
        choices=DATASETS)
    data_dir: Optional[str] = setting(
        None, "AV-digits folder (from scripts/make_av_digits.py); "
        "--dataset=av_digits only.", "str", "data", optional=True,
        resumable=True)
    image_noise: Optional[float] = setting(
        None, "Std of the Gaussian noise on spoken_digits' images (pixels "
        "in [0, 1]; default: the dataset's 0.3); --dataset=spoken_digits "
        "only.", "float", "data", low=0.0, optional=True)
    audio_noise: Optional[float] = setting(
        None, "Std of the Gaussian noise on spoken_digits' MFCCs, in each "
        "feature's standard deviations (default: the dataset's 1.5); "
        "--dataset=spoken_digits only.", "float", "data", low=0.0,
        optional=True)
    views: Tuple[str, ...] = setting(
        ("fac", "mor"), "Comma-separated modalities of uci_mfeat and "
        "uci_multilabel.", "list", "data", choices=UCI_VIEWS)
    holdout_fraction: float = setting(
        0.1, "Share of the training split held out as G-Blend's holdout "
        "(stratified).", "float", "data", low=0.01, high=0.5)
    method: str = setting("gblend_online", methods.HELP, "str", "training")
    epochs: int = setting(40, "Training epochs.", "int", "training", low=1,
                          high=MAX_EPOCHS, resumable=True)
    batch_size: int = setting(32, "Batch size.", "int", "training", low=1,
                              high=MAX_BATCH_SIZE)
    optimizer: str = setting("sgd", "sgd (with --momentum), adam or adamw.",
                             "str", "training", choices=OPTIMIZERS)
    learning_rate: Optional[float] = setting(
        None, "Learning rate (default: Keras's, sgd 0.01, adam/adamw "
        "0.001).", "float", "training", low=0.0, low_open=True,
        optional=True)
    momentum: float = setting(0.9, "SGD momentum (--optimizer=sgd only).",
                              "float", "training", low=0.0, high=1.0,
                              high_open=True)
    weight_decay: Optional[float] = setting(
        None, "Decoupled weight decay (default: Keras's, adamw 0.004, none "
        "otherwise).", "float", "training", low=0.0, optional=True)
    lr_schedule: str = setting(
        "constant", "constant, or cosine: decay to 0 over --epochs (a "
        "resumed run then keeps its --epochs).", "str", "training",
        choices=LR_SCHEDULES)
    hidden_units: Optional[int] = setting(
        None, "Encoder width (default: 256 on uci_paradox, 64 on the other "
        "UCI sets).", "int", "model", low=1, optional=True)
    fusion: str = setting(
        "concat", "Fusion (concat_fc<n>: the G-Blend paper's late concat "
        "with n FC layers; mid_concat_1d/2d/3d, nl_gate, mid_se_gate: mid "
        "fusion, av_digits only; se_gate: two modalities).", "str", "model",
        choices=ALL_FUSIONS)
    unimodal_heads: str = setting(
        "matched", "Mid fusion: each uni-modal head's path after the fusion "
        "point: matched (its own copy of the post-fusion blocks, as deep as "
        "the joint head's) or linear (a classifier on the pooled pre-fusion "
        "map, the earlier design).", "str", "model",
        choices=("matched", "linear"))
    fusion_dropout: float = setting(
        0.0, "Dropout rate on the features at the fusion.", "float", "model",
        low=0.0, high=1.0, high_open=True)
    pretrain_epochs: Optional[int] = setting(
        None, "pretrain_finetune: epochs of uni-modal pre-training "
        "(default: half the run).", "int", "training", low=1, optional=True)
    patience: int = setting(
        5, "early_stop: epochs without a better holdout joint loss before "
        "stopping.", "int", "training", low=1)
    gblend_preset: str = setting(
        "default", "default: the library's measured settings; paper: "
        "Algorithms 2 and 3 as published (docs/deviations.md). Sets every "
        "G-Blend flag left at 'preset'.", "str", "G-Blend",
        choices=gblend_presets.PRESETS, resumable=True)
    blend_scope: str = setting(
        PRESET, "shared (default preset): blend weights scale the encoders' "
        "gradients, each head's own layer learns at full rate; all (paper "
        "preset): the literal weighted loss.", "str", "model",
        choices=BLEND_SCOPES, preset=True)
    warmup_epochs: int = setting(
        0, "Online G-Blend: epochs with the starting weights before the "
        "first estimate (the paper: 0).", "int", "G-Blend", low=0)
    first_super_epoch: int = setting(
        10, "Online G-Blend: epochs trained with the first estimate (the "
        "paper: 10).", "int", "G-Blend", low=1)
    super_epoch: int = setting(
        5, "Online G-Blend: epochs between later estimates (the paper: 5).",
        "int", "G-Blend", low=1)
    estimation_epochs: Any = setting(
        PRESET, "Epochs each estimation clone trains: a number; auto "
        "(default preset): offline the run, online --super_epoch; span "
        "(paper preset): the epochs the estimate is used for.", "int",
        "G-Blend", low=1, preset=True, words=(AUTO, SPAN))
    estimation_fraction: Any = setting(
        PRESET, "Share of the training data (per class) the estimation "
        "clones train on (default preset 0.25, paper 1).", "float",
        "G-Blend", low=0.0, high=1.0, low_open=True, preset=True)
    gblend_metric: str = setting(
        "loss", "Quantity OGR is measured on.", "str", "G-Blend",
        choices=("loss", "accuracy"))
    noise_z: Any = setting(
        PRESET, "A head's holdout gain counts only above this many "
        "bootstrap standard errors (default preset 2); none (paper "
        "preset): ignore measurement noise.", "float", "G-Blend", low=0.0,
        optional=True, preset=True)
    min_delta_o: Any = setting(
        PRESET, "Floor of |ΔO| (default preset 0.01, paper 1e-12).", "float",
        "G-Blend", low=0.0, low_open=True, preset=True)
    update_rule: str = setting(
        PRESET, "noise_aware (default preset): heads within noise keep their "
        "weight; fresh (paper preset): each estimate's own Proposition 1.",
        "str", "G-Blend", choices=gblend_presets.UPDATE_RULES, preset=True)
    smoothing: float = setting(
        0.0, "Weight of the previous blend in each online update.", "float",
        "G-Blend", low=0.0, high=1.0, high_open=True)
    joint_weight_floor: Any = setting(
        PRESET, "Least blend weight of the joint head (the answer) after "
        "each estimate (default preset 0.2, paper 0).", "float", "G-Blend",
        low=0.0, high=1.0, high_open=True, preset=True)
    clone_repeats: int = setting(
        1, "Times each estimate's clones train, with different shuffle "
        "seeds; their spread joins the standard errors (each repeat costs "
        "one more estimate's training).", "int", "G-Blend", low=1)
    recalibrate_batch_norm: bool = setting(
        True, "Recompute the estimation clones' BatchNormalization "
        "statistics at their weights before measuring them (G-Blend and "
        "OGM-GE's premise check); false: the moving averages training "
        "left, as before this setting.", "bool", "G-Blend")
    probe_encoders: bool = setting(
        False, "After training, a linear probe of each modality's encoder "
        "(trained on the training split, scored on the test split; "
        "metrics.json's probe_accuracy): how much each encoder learned.",
        "bool", "run")
    ogr_monitor: bool = setting(
        False, "Log each head's overfitting, generalization and OGR every "
        "epoch (kg.OGRMonitor).", "bool", "G-Blend")
    alpha: float = setting(0.5, "OGM-GE modulation strength.", "float",
                           "OGM-GE", low=0.0)
    ogm_start_epoch: int = setting(
        0, "First epoch of the OGM-GE window (0-based).", "int", "OGM-GE",
        low=0)
    ogm_end_epoch: Optional[int] = setting(
        None, "Last epoch of the OGM-GE window, 0-based (default: none).",
        "int", "OGM-GE", low=0, optional=True)
    ogm_apply_to: str = setting(
        "gradient", "Where the OGM coefficient acts: gradient (the paper; "
        "SGD) or learning_rate (the encoder's step, which survives Adam and "
        "AdamW).", "str", "OGM-GE", choices=OGM_APPLY_TO)
    ogm_coefficient: str = setting(
        "reference", "Form of the OGM coefficient: reference (the paper: "
        "1 - tanh(alpha * ratio), a modality barely ahead already slowed to "
        "1 - tanh(alpha)) or excess (1 - tanh(alpha * (ratio - 1)), 1 at "
        "balance).", "str", "OGM-GE", choices=OGM_COEFFICIENT_FORMS)
    ogm_premise_check: bool = setting(
        True, "OGM methods: halfway through the run (at the end of the OGM-GE "
        "window, if that comes first), train each modality "
        "alone (a clone, as many epochs as trained so far, on half the "
        "data) and warn if the slowed modality is the only informative one "
        "(kg.ModalityImbalanceMonitor).", "bool", "OGM-GE")
    seed: int = setting(0, "Seed of split, initialization and shuffles.",
                        "int", "run", low=0)
    model_dir: Optional[str] = setting(
        None, "Where checkpoints, TensorBoard logs, metrics.json and the "
        "model go; rerunning resumes from its checkpoint.", "str", "run",
        optional=True, resumable=True, flag_default="runs/latest")
    strategy: str = setting(
        "default", "default: one device; mirrored: all local GPUs; "
        "multi_worker: MultiWorkerMirroredStrategy, needs TF_CONFIG.", "str",
        "run", choices=STRATEGIES, resumable=True)
    jit_compile: bool = setting(False, "Compile train steps with XLA.",
                                "bool", "run", resumable=True)
    mixed_precision: bool = setting(False, "mixed_float16 policy.", "bool",
                                    "run")
    deterministic: bool = setting(
        False, "tf.config.experimental.enable_op_determinism().", "bool",
        "run")
    verbose: int = setting(
        1, "0: silent; 1: one short line per epoch (loss, joint accuracy, "
        "holdout joint accuracy, blend weights); 2: Keras's full line.",
        "int", "run", low=0, high=2, resumable=True)

    def validate(self) -> None:
        """Raises `ValueError("<setting>: ...")` naming the first bad
        setting: each against its declaration, then the rules between
        settings."""
        for field in dataclasses.fields(self):
            check_value(field, getattr(self, field.name))
        repeated = sorted({v for v in self.views
                           if list(self.views).count(v) > 1})
        if repeated:
            raise ValueError(
                f"views: {repeated} given more than once; each view is one "
                "modality.")
        if self.data_dir is not None and self.dataset != "av_digits":
            raise ValueError(
                f"data_dir: --dataset={self.dataset} is built in and reads "
                "no folder; --data_dir is for --dataset=av_digits.")
        noise = list(self.spoken_digits_noise)
        if noise and self.dataset != "spoken_digits":
            raise ValueError(
                f"{noise[0]}: --dataset={self.dataset} adds no noise of its "
                f"own; --{noise[0]} is for --dataset=spoken_digits (AV-digits "
                "folders take theirs from scripts/make_av_digits.py).")
        if self.dataset == "av_digits" and not (
                self.data_dir and os.path.isfile(
                    os.path.join(self.data_dir, "train.csv"))):
            raise ValueError(
                f"data_dir: {self.data_dir!r} holds no AV-digits data; make "
                "it with scripts/make_av_digits.py --out DIR.")
        if self.model_dir is not None and not self.model_dir.strip():
            raise ValueError(
                "model_dir: empty (an unset shell variable?); give a folder "
                "such as runs/latest.")
        self._validate_method()
        self._validate_fusion()
        if self.method == "pretrain_finetune" and not (
                1 <= self.pretrain_epochs_or_default < self.epochs):
            raise ValueError(
                f"pretrain_epochs: pretrain_finetune pre-trains for "
                f"{self.pretrain_epochs_or_default} epoch(s) of a "
                f"{self.epochs}-epoch run; it needs at least one epoch of "
                "each phase.")
        if self.ogm_end_epoch is not None and (
                self.ogm_end_epoch < self.ogm_start_epoch):
            raise ValueError(
                f"ogm_end_epoch: {self.ogm_end_epoch} is before "
                f"ogm_start_epoch {self.ogm_start_epoch}; the OGM-GE window "
                "runs from ogm_start_epoch to ogm_end_epoch, inclusive.")
        if self.gblend_mode == "online" and self.warmup_epochs >= self.epochs:
            raise ValueError(
                f"warmup_epochs: online G-Blend first estimates at epoch "
                f"{self.warmup_epochs + 1}, but the run has {self.epochs} "
                "epoch(s), so it would never estimate; lower --warmup_epochs "
                "(the paper: 0) or raise --epochs.")
        if self.model_dir and os.path.exists(self.model_dir) and (
                not os.path.isdir(self.model_dir)):
            raise ValueError(
                f"model_dir: {self.model_dir} is a file, not a folder.")

    def _validate_method(self) -> None:
        chosen = methods.method(self.method)  # raises for an unknown one
        if self.unimodal_modality and (
                self.unimodal_modality not in self.modalities):
            raise ValueError(
                f"method: {self.method!r} names no modality of this run; "
                f"choose '{UNIMODAL_PREFIX}' + one of {list(self.modalities)}.")
        if chosen.balances and len(self.modalities) < 2:
            raise ValueError(
                f"method: {self.method} balances modalities, but this run "
                f"has one ({list(self.modalities)}); give --views two or "
                "more, or use --method=naive.")
        if chosen.late_fusion_only and self.fusion in MID_FUSIONS:
            raise ValueError(
                f"method: {self.method!r} is built into late fusion models; "
                "use a late --fusion with it.")

    def _validate_fusion(self) -> None:
        if self.fusion in MID_FUSIONS and self.dataset != "av_digits":
            raise ValueError(
                f"fusion: {self.fusion!r} fuses feature maps mid-network "
                "(audio time-frequency, visual time-space): it needs "
                f"--dataset=av_digits, not {self.dataset!r}.")
        if self.fusion == "se_gate" and len(self.modalities) != 2:
            raise ValueError(
                f"fusion: se_gate gates one modality's features by the "
                f"other's; it needs exactly two modalities, this run has "
                f"{len(self.modalities)} ({list(self.modalities)}).")

    def resolved(self) -> "ExperimentConfig":
        """A copy with every `"preset"` setting set to `gblend_preset`'s
        value."""
        names = [f.name for f in dataclasses.fields(self)
                 if f.metadata["preset"]]
        values = gblend_presets.resolve(
            self.gblend_preset, **{n: getattr(self, n) for n in names})
        return dataclasses.replace(self, **values)

    @property
    def pretrain_epochs_or_default(self) -> int:
        """`pretrain_finetune`'s pre-training epochs (default: half)."""
        if self.pretrain_epochs is not None:
            return self.pretrain_epochs
        return self.epochs // 2

    @property
    def modalities(self) -> Tuple[str, ...]:
        """The modalities (input names) of this run's model."""
        if self.dataset == "av_digits":
            return AV_DIGITS_MODALITIES
        if self.dataset == "uci_paradox":
            return UCI_PARADOX_VIEWS
        if self.dataset == "spoken_digits":
            return SPOKEN_DIGITS_MODALITIES
        return tuple(self.views)

    @property
    def multi_label(self) -> bool:
        """Whether the dataset's targets are multi-hot (`uci_multilabel`)."""
        return self.dataset == "uci_multilabel"

    @property
    def spoken_digits_noise(self) -> Dict[str, float]:
        """The noise settings given (`SPOKEN_DIGITS_NOISE`), by name, as
        `load_spoken_digits` takes them; the others keep its defaults."""
        return {name: getattr(self, name) for name in SPOKEN_DIGITS_NOISE
                if getattr(self, name) is not None}

    @property
    def encoder_units(self) -> int:
        """`hidden_units`, or the dataset's default: 256 on UCI-paradox
        (high-capacity encoders, the paper's regime), 64 otherwise."""
        if self.hidden_units is not None:
            return self.hidden_units
        return 256 if self.dataset == "uci_paradox" else 64

    @property
    def unimodal_modality(self) -> Optional[str]:
        """`m` for `method="unimodal:<m>"`, else None."""
        return unimodal_modality(self.method)

    @property
    def reported_head(self) -> Optional[str]:
        """The head a method is judged by: `m` for `unimodal:<m>`, `joint`
        for the fusion methods, None for `unimodal` (every uni-modal head)."""
        if self.method == "unimodal":
            return None
        return self.unimodal_modality or "joint"

    @property
    def gblend_mode(self) -> Optional[str]:
        """`"offline"`, `"online"` or None."""
        return methods.method(self.method).gblend


def config_fields() -> Tuple[dataclasses.Field, ...]:
    """The settings, in declaration order."""
    return dataclasses.fields(ExperimentConfig)


def field_named(name: str) -> dataclasses.Field:
    """The setting `name` (`KeyError` if there is none)."""
    for field in config_fields():
        if field.name == name:
            return field
    raise KeyError(name)


def resumable_changes() -> Tuple[str, ...]:
    """Settings a resumed run may change; every other one must match the
    run saved in `model_dir` (its checkpoint was trained with them)."""
    return tuple(f.name for f in config_fields() if f.metadata["resumable"])


def flag_message(error) -> Optional[str]:
    """`"--<setting>: ..."` for an error whose message starts with the name
    of a setting (the scripts' flags), else None."""
    message = str(error)
    found = re.match(r"([a-z_]+)[: ]", message)
    if found and found.group(1) in {f.name for f in config_fields()}:
        return f"--{message}"
    return None


def config_json(config: ExperimentConfig) -> Dict:
    """`config` as saved in `config.json` (tuples become lists)."""
    values = dataclasses.asdict(config)
    return {k: list(v) if isinstance(v, tuple) else v
            for k, v in values.items()}


def config_from_json(values: Dict) -> ExperimentConfig:
    """An `ExperimentConfig` from a saved `config.json`; unknown settings
    raise `ValueError` naming them (a file written by another version)."""
    fields = {f.name for f in config_fields()}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ValueError(
            f"config.json: unknown setting(s) {unknown} (written by another "
            "version of keras_gblend?); remove them or retrain.")
    values = dict(values)
    if isinstance(values.get("views"), list):
        values["views"] = tuple(values["views"])
    if "estimation_epochs" in values and values["estimation_epochs"] is None:
        values["estimation_epochs"] = AUTO  # written before "auto" existed
    return ExperimentConfig(**values)


def flag_table() -> str:
    """The docs' flag table (Markdown), by group, from the declarations."""
    lines = []
    for group in GROUPS:
        lines += [f"### {group}", "", "| flag | default | allowed | what |",
                  "|---|---|---|---|"]
        for field in config_fields():
            info = field.metadata
            if info["group"] != group:
                continue
            lines.append(f"| `--{field.name}` | {_shown(info['flag_default'])}"
                         f" | {_allowed_text(field)} | "
                         f"{info['help'].replace('|', chr(92) + '|')} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _shown(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return "`" + ",".join(value) + "`"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    return f"`{value}`"


def _allowed_text(field: dataclasses.Field) -> str:
    info = field.metadata
    if info["choices"] and info["kind"] == "list":
        return "comma list of " + ", ".join(info["choices"])
    if info["choices"]:
        text = " \\| ".join(_allowed(field))
    elif info["kind"] in ("int", "float"):
        text = f"{info['kind']}{_interval(info)}"
        extra = ([PRESET] if info["preset"] else []) + list(info["words"])
        if extra:
            text += ", " + ", ".join(extra)
    else:
        text = info["kind"]
    if info["optional"]:
        text += ", none"
    return text


def _interval(info) -> str:
    low, high = info["low"], info["high"]
    if low is None and high is None:
        return ""
    left = "(" if info["low_open"] or low is None else "["
    right = ")" if info["high_open"] or high is None else "]"
    return (f" {left}{'-inf' if low is None else low}, "
            f"{'inf' if high is None else high}{right}")
