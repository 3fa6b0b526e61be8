"""Train a multimodal classifier with G-Blend (or a baseline) and report
test accuracy per head.

Example:
    python scripts/train.py --views=fac,mor --method=gblend_online \
        --epochs=40 --model_dir=runs/fac_mor
"""

import json
import os
import sys

from absl import app, flags, logging

from flags_first import import_before_tensorflow

cli = import_before_tensorflow("keras_gblend.experiment.cli")
experiment_config = import_before_tensorflow("keras_gblend.experiment.config")

FLAGS = flags.FLAGS


def define_flags():
    cli.define_flags(experiment_config.config_fields(),
                     experiment_config.check_value)


def config_from_flags():
    config = experiment_config.ExperimentConfig(
        **cli.flag_values(experiment_config.config_fields()))
    if FLAGS["momentum"].present and config.optimizer != "sgd":
        raise app.UsageError(
            f"--momentum applies to --optimizer=sgd, not {config.optimizer}.")
    if FLAGS["views"].present and config.dataset not in (
            "uci_mfeat", "uci_multilabel"):
        raise app.UsageError(
            f"--views: --dataset={config.dataset} has fixed modalities "
            f"{list(config.modalities)}; --views is for uci_mfeat and "
            "uci_multilabel.")
    if config.strategy == "multi_worker" and not os.environ.get("TF_CONFIG"):
        raise app.UsageError(
            "--strategy=multi_worker needs the cluster in TF_CONFIG; on one "
            "machine use --strategy=mirrored.")
    try:
        config.validate()
    except ValueError as error:
        raise app.UsageError(
            experiment_config.flag_message(error) or str(error))
    if config.model_dir:
        cli.prepare_folder(config.model_dir, "model_dir")
    return config


def _resume_hint(model_dir):
    """The line printed after Ctrl-C: where a rerun resumes."""
    def hint():
        from keras_gblend.callbacks.resumable_checkpoint import ResumableCheckpoint
        epoch = ResumableCheckpoint.saved_epoch(
            os.path.join(model_dir, "checkpoints"))
        if not epoch:
            return ("interrupted before the first checkpoint; rerun to "
                    "start again.")
        return (f"interrupted; rerun the same command to resume after epoch "
                f"{epoch} (checkpoint in {model_dir}).")
    return hint


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    config = config_from_flags()
    with cli.quiet_tensorflow():
        from keras_gblend.experiment import run
        from keras_gblend.callbacks.resumable_checkpoint import (
            CheckpointWriteError,
            ResumableCheckpoint,
        )
        from keras_gblend.data.layout import MediaError
    if not FLAGS["verbosity"].present:
        # TensorFlow's checkpoint code logs every save at absl INFO.
        logging.set_verbosity(logging.WARNING)
    checkpoints = os.path.join(config.model_dir or "", "checkpoints")
    if config.model_dir and (
            ResumableCheckpoint.saved_epoch(checkpoints) < config.epochs):
        # `python scripts/train.py --flagfile=<model_dir>/flags.txt` reruns
        # (or resumes) this run; a finished run keeps the file it has.
        with open(os.path.join(config.model_dir, "flags.txt"), "w") as f:
            for flag in FLAGS.get_key_flags_for_module(sys.argv[0]):
                if flag.present or flag.value != flag.default:
                    f.write(flag.serialize() + "\n")
    try:
        results = run.run_experiment(config)
    except (FloatingPointError, CheckpointWriteError) as error:
        raise cli.ScriptError(str(error))
    except MediaError as error:
        raise cli.ScriptError(f"--data_dir: {error}")
    except OSError as error:
        raise cli.ScriptError(
            f"--model_dir: cannot write {error.filename or config.model_dir} "
            f"({error.strerror or error}).")
    except ValueError as error:
        message = experiment_config.flag_message(error)
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
        summary["ogm_premise"] = {k: diagnosis[k] for k in (
            "verdict", "reason", "probe_accuracy", "alone_probe_accuracy")}
    print(json.dumps(summary, indent=2))
    if diagnosis:
        print(f"OGM-GE premise check (after epoch {diagnosis['epoch']}): "
              f"{diagnosis['verdict']}: {diagnosis['reason']}")
    if diagnosis and diagnosis["warning"]:
        print(f"WARNING: {diagnosis['warning']}")
    if config.model_dir:
        print(f"Results in {os.path.join(config.model_dir, 'metrics.json')}")


if __name__ == "__main__":
    define_flags()
    cli.run(main, on_interrupt=lambda: _resume_hint(FLAGS.model_dir)()
            if FLAGS.model_dir else "interrupted.")
