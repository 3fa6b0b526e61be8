"""Train a late-fusion classifier with G-Blend (or a baseline) and report
test accuracy per head.

Example:
    python scripts/train.py --views=fac,mor --method=gblend_online \
        --epochs=40 --model_dir=runs/fac_mor
"""

import json
import os
import sys

from absl import app, flags, logging

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from keras_gblend import cli  # noqa: E402
from keras_gblend import experiment  # noqa: E402
from keras_gblend.checkpointing import ResumableCheckpoint  # noqa: E402
from keras_gblend.data.layout import MediaError  # noqa: E402

FLAGS = flags.FLAGS


def define_flags():
    defaults = experiment.ExperimentConfig()
    flags.DEFINE_enum("dataset", defaults.dataset, experiment.DATASETS,
                      "Built-in dataset.")
    flags.DEFINE_string("data_dir", None,
                        "AV-digits folder (from scripts/make_av_digits.py).")
    flags.DEFINE_list("views", list(defaults.views),
                      "Comma-separated modalities (UCI: fou,fac,kar,pix,zer,mor).")
    flags.DEFINE_string(
        "method", defaults.method,
        "One of " + "|".join(experiment.METHODS) + "|unimodal:<m>. naive: "
        "joint head only; unimodal:<m>: modality m alone; unimodal: every modality alone (in one run); "
        "gblend_offline / gblend_online: Gradient-Blending; ogm / ogm_ge: "
        "OGM(-GE) on the naive network; gblend_*+ogm_ge: both. The G-Blend "
        "paper's baselines: aux_loss (every head 1/(k+1)), uncertainty "
        "(learned loss weights, Kendall et al.), pretrain_finetune "
        "(uni-modal pre-training, then the fused model), early_stop (naive, "
        "stopped on the holdout, best weights restored).")
    flags.DEFINE_integer("epochs", defaults.epochs, "Training epochs.", lower_bound=1)
    flags.DEFINE_integer("batch_size", defaults.batch_size, "Batch size.", lower_bound=1)
    flags.DEFINE_enum("optimizer", defaults.optimizer, list(experiment.OPTIMIZERS),
                      "sgd (with --momentum), adam or adamw.")
    flags.DEFINE_float("learning_rate", None,
                       "Learning rate (default: Keras's, sgd 0.01, adam/adamw "
                       "0.001).", lower_bound=0.0)
    flags.DEFINE_enum("lr_schedule", defaults.lr_schedule,
                      list(experiment.LR_SCHEDULES),
                      "constant, or cosine: decay to 0 over --epochs (a "
                      "resumed run then keeps its --epochs).")
    flags.DEFINE_float("momentum", defaults.momentum,
                       "SGD momentum (--optimizer=sgd only).", lower_bound=0.0)
    flags.DEFINE_float("weight_decay", None,
                       "Decoupled weight decay (default: Keras's, adamw "
                       "0.004, none otherwise).", lower_bound=0.0)
    flags.DEFINE_integer("hidden_units", defaults.hidden_units,
                         "Encoder width (default: 256 on uci_paradox, 64 on "
                         "uci_mfeat).", lower_bound=1)
    flags.DEFINE_enum("fusion", defaults.fusion,
                      list(experiment.ALL_FUSIONS),
                      "Fusion (concat_fc<n>: the G-Blend paper's late concat "
                      "with n FC layers; mid_concat_1d/2d/3d, nl_gate, "
                      "mid_se_gate: mid fusion, av_digits only).")
    flags.DEFINE_float("fusion_dropout", defaults.fusion_dropout,
                       "Dropout rate on the features at the fusion.",
                       lower_bound=0.0, upper_bound=0.99)
    flags.DEFINE_integer("pretrain_epochs", None,
                         "pretrain_finetune: epochs of uni-modal "
                         "pre-training (default: half the run).",
                         lower_bound=1)
    flags.DEFINE_integer("patience", defaults.patience,
                         "early_stop: epochs without a better holdout joint "
                         "loss before stopping.", lower_bound=1)
    flags.DEFINE_enum("blend_scope", defaults.blend_scope,
                      list(experiment.BLEND_SCOPES),
                      "shared: blend weights scale the encoders' gradients, "
                      "each head's own layer learns at full rate; all: the "
                      "paper's literal weighted loss.")
    flags.DEFINE_float("holdout_fraction", defaults.holdout_fraction,
                       "Share of the training split used as G-Blend holdout.",
                       lower_bound=0.01, upper_bound=0.5)
    flags.DEFINE_integer("warmup_epochs", defaults.warmup_epochs,
                         "Online G-Blend: epochs with the starting weights "
                         "before the first estimate (the paper: 0).",
                         lower_bound=0)
    flags.DEFINE_integer("first_super_epoch", defaults.first_super_epoch,
                         "Online G-Blend: epochs trained with the first "
                         "estimate (the paper: 10).", lower_bound=1)
    flags.DEFINE_integer("super_epoch", defaults.super_epoch,
                         "Online G-Blend: epochs between later estimates.",
                         lower_bound=1)
    flags.DEFINE_integer("estimation_epochs", None,
                         "Epochs each estimation clone trains (default: "
                         "the whole run offline, --super_epoch online).",
                         lower_bound=1)
    flags.DEFINE_float("estimation_fraction", defaults.estimation_fraction,
                       "Share of the training data (per class) the "
                       "estimation clones train on.", lower_bound=0.0,
                       upper_bound=1.0)
    flags.DEFINE_enum("gblend_metric", defaults.gblend_metric, ["loss", "accuracy"],
                      "Quantity OGR is measured on.")
    flags.DEFINE_float("noise_z", defaults.noise_z,
                       "A head's holdout gain counts only above this many "
                       "bootstrap standard errors.", lower_bound=0.0)
    flags.DEFINE_float("smoothing", defaults.smoothing,
                       "Weight of the previous blend in each online update.",
                       lower_bound=0.0, upper_bound=0.99)
    flags.DEFINE_float("joint_weight_floor", defaults.joint_weight_floor,
                       "Least blend weight of the joint head (the answer) "
                       "after each estimate; 0 keeps Proposition 1's.",
                       lower_bound=0.0, upper_bound=0.99)
    flags.DEFINE_float("alpha", defaults.alpha, "OGM-GE modulation strength.",
                       lower_bound=0.0)
    flags.DEFINE_integer("ogm_start_epoch", defaults.ogm_start_epoch,
                         "First epoch of the OGM-GE window (0-based).", lower_bound=0)
    flags.DEFINE_integer("ogm_end_epoch", defaults.ogm_end_epoch,
                         "Last epoch of the OGM-GE window (default: none).",
                         lower_bound=0)
    flags.DEFINE_integer("seed", defaults.seed, "Seed of split, init and shuffles.")
    flags.DEFINE_string("model_dir", "runs/latest",
                        "Where checkpoints, TensorBoard logs, metrics.json and "
                        "the model go; rerunning resumes from its checkpoint.")
    flags.DEFINE_enum("strategy", defaults.strategy, list(experiment.STRATEGIES),
                      "default: one device; mirrored: all local GPUs; "
                      "multi_worker: MultiWorkerMirroredStrategy from TF_CONFIG.")
    flags.DEFINE_bool("jit_compile", False, "Compile train steps with XLA.")
    flags.DEFINE_bool("mixed_precision", False, "mixed_float16 policy.")
    flags.DEFINE_bool("deterministic", False,
                      "tf.config.experimental.enable_op_determinism().")
    flags.DEFINE_bool("ogm_premise_check", defaults.ogm_premise_check,
                      "OGM methods: halfway through the run, train "
                      "each modality alone (a clone, as many epochs as "
                      "trained so far, on half the data; about a quarter of "
                      "the run's cost) and warn if the slowed modality is "
                      "the only informative one "
                      "(kg.ModalityImbalanceMonitor).")
    flags.DEFINE_bool("ogr_monitor", False,
                      "Log each head's overfitting, generalization and OGR "
                      "every epoch (kg.OGRMonitor).")
    flags.DEFINE_integer("verbose", 1, "Keras verbosity (0, 1, 2).")


def config_from_flags() -> experiment.ExperimentConfig:
    config = experiment.ExperimentConfig(
        dataset=FLAGS.dataset,
        data_dir=FLAGS.data_dir,
        views=tuple(FLAGS.views),
        method=FLAGS.method,
        epochs=FLAGS.epochs,
        batch_size=FLAGS.batch_size,
        optimizer=FLAGS.optimizer,
        learning_rate=FLAGS.learning_rate,
        momentum=FLAGS.momentum,
        weight_decay=FLAGS.weight_decay,
        lr_schedule=FLAGS.lr_schedule,
        hidden_units=FLAGS.hidden_units,
        fusion=FLAGS.fusion,
        fusion_dropout=FLAGS.fusion_dropout,
        pretrain_epochs=FLAGS.pretrain_epochs,
        patience=FLAGS.patience,
        blend_scope=FLAGS.blend_scope,
        holdout_fraction=FLAGS.holdout_fraction,
        warmup_epochs=FLAGS.warmup_epochs,
        first_super_epoch=FLAGS.first_super_epoch,
        super_epoch=FLAGS.super_epoch,
        estimation_epochs=FLAGS.estimation_epochs,
        estimation_fraction=FLAGS.estimation_fraction,
        gblend_metric=FLAGS.gblend_metric,
        noise_z=FLAGS.noise_z,
        smoothing=FLAGS.smoothing,
        joint_weight_floor=FLAGS.joint_weight_floor,
        alpha=FLAGS.alpha,
        ogm_start_epoch=FLAGS.ogm_start_epoch,
        ogm_end_epoch=FLAGS.ogm_end_epoch,
        seed=FLAGS.seed,
        model_dir=FLAGS.model_dir,
        strategy=FLAGS.strategy,
        jit_compile=FLAGS.jit_compile,
        mixed_precision=FLAGS.mixed_precision,
        deterministic=FLAGS.deterministic,
        ogr_monitor=FLAGS.ogr_monitor,
        ogm_premise_check=FLAGS.ogm_premise_check,
        verbose=FLAGS.verbose,
    )
    if FLAGS["momentum"].present and FLAGS.optimizer != "sgd":
        raise app.UsageError(
            f"--momentum applies to --optimizer=sgd, not {FLAGS.optimizer}.")
    try:
        config.validate()
        experiment.check_resumable(config)
    except ValueError as error:
        raise app.UsageError(experiment.flag_message(error) or str(error))
    return config


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    config = config_from_flags()
    if not FLAGS["verbosity"].present:
        # TensorFlow's checkpoint code logs every save at absl INFO.
        logging.set_verbosity(logging.WARNING)
    checkpoints = os.path.join(config.model_dir or "", "checkpoints")
    if config.model_dir and (
            ResumableCheckpoint.saved_epoch(checkpoints) < config.epochs):
        # `python scripts/train.py --flagfile=<model_dir>/flags.txt` reruns
        # (or resumes) this run; a finished run keeps the file it has.
        os.makedirs(config.model_dir, exist_ok=True)
        with open(os.path.join(config.model_dir, "flags.txt"), "w") as f:
            for flag in FLAGS.get_key_flags_for_module(sys.argv[0]):
                if flag.present or flag.value != flag.default:
                    f.write(flag.serialize() + "\n")
    try:
        results = experiment.run_experiment(config)
    except FloatingPointError as error:
        raise cli.ScriptError(str(error))
    except MediaError as error:
        raise cli.ScriptError(f"--data_dir: {error}")
    except ValueError as error:
        message = experiment.flag_message(error)
        if message is None:
            raise
        raise app.UsageError(message)
    summary = {k: results[k] for k in ("method", "reported_head", "views",
                                         "test_accuracy", "test_map",
                                         "test_mauc", "answer",
                                         "blend_weights", "wall_time_s")
               if k in results}
    diagnosis = results.get("ogm_diagnosis")
    if diagnosis:
        summary["ogm_alone_accuracy"] = diagnosis["alone_accuracy"]
    print(json.dumps(summary, indent=2))
    if diagnosis and diagnosis["warning"]:
        print(f"WARNING: {diagnosis['warning']}")
    if config.model_dir:
        print(f"Results in {os.path.join(config.model_dir, 'metrics.json')}")


if __name__ == "__main__":
    define_flags()
    cli.run(main)
