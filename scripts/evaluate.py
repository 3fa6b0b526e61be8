"""Evaluate a saved run: per-head top-1/top-k test accuracy; "answer": the
mix of head probabilities chosen on the run's holdout (`kg.select_answer`),
next to the joint head; and "fused": the mean of the probabilities of the
heads with a non-zero final blend weight (for naive fusion, the joint head).
A multi-label run (`--dataset=uci_multilabel`) reports each head's exact
mAP and per-label accuracy instead (no answer: `select_answer` is
single-label).

Example:
    python scripts/evaluate.py --model_dir=runs/latest --top_k=3
"""

import json
import os

import numpy as np
from absl import app, flags

from flags_first import import_before_tensorflow

cli = import_before_tensorflow("keras_gblend.experiment.cli")
experiment_config = import_before_tensorflow("keras_gblend.experiment.config")

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("model_dir", "runs/latest",
                        "Folder with model.keras and config.json.")
    flags.DEFINE_integer("top_k", 3, "k of the top-k accuracy.", lower_bound=1)
    flags.DEFINE_string("data_dir", None,
                        "AV-digits folder, if it moved since training "
                        "(default: the run's config.json).")


def top_k_accuracy(probabilities: np.ndarray, labels: np.ndarray,
                   k: int) -> float:
    top = np.argsort(-probabilities, axis=1)[:, :k]
    return float(np.mean([label in row for row, label in zip(top, labels)]))


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    model_path = os.path.join(FLAGS.model_dir, "model.keras")
    config_path = os.path.join(FLAGS.model_dir, "config.json")
    for path in (model_path, config_path):
        if not os.path.isfile(path):
            raise app.UsageError(f"--model_dir: {path} does not exist.")
    with open(config_path) as f:
        try:
            config = experiment_config.config_from_json(json.load(f))
        except (ValueError, TypeError) as error:
            raise app.UsageError(f"--model_dir: {config_path}: {error}")
    if FLAGS.data_dir:
        config.data_dir = FLAGS.data_dir
    try:
        config.validate()
    except ValueError as error:
        message = str(error)
        if message.startswith("data_dir") and not FLAGS.data_dir:
            message += (" The run's data may have moved: pass its new "
                        "folder with --data_dir.")
        raise app.UsageError(
            experiment_config.flag_message(message) or message)
    with cli.quiet_tensorflow():
        import keras
        from keras_gblend.experiment import build
        from keras_gblend.evaluation.answer import select_answer
        from keras_gblend.evaluation.multilabel import (
            mean_auc,
            mean_average_precision,
        )
    _, holdout, test, _, num_classes = build.load_data(config)
    if FLAGS.top_k > num_classes and not config.multi_label:
        raise app.UsageError(
            f"--top_k: {FLAGS.top_k} is more than the {num_classes} classes "
            "(every top-k accuracy would be 1).")
    model = keras.saving.load_model(model_path)
    logits = model.predict(test[0], verbose=0)
    if len(test) == 1:
        labels = np.concatenate([y.numpy() for _, y in test[0]])
    else:
        labels = np.asarray(test[1])
    squash = keras.ops.sigmoid if config.multi_label else keras.ops.softmax
    probabilities = {h: keras.ops.convert_to_numpy(squash(v))
                     for h, v in logits.items()}
    trained = [h for h, weight in model.blend_weights.items() if weight > 0]
    probabilities["fused"] = np.mean([probabilities[h] for h in trained], axis=0)
    if config.multi_label:
        report = {
            name: {"map": mean_average_precision(labels, p),
                   "mauc": mean_auc(labels, p),
                   "label_accuracy": float(np.mean((p > 0.5) == labels))}
            for name, p in probabilities.items()
        }
        _write(report)
        return
    answer = select_answer(model, holdout, batch_size=config.batch_size)
    probabilities["answer"] = sum(a * probabilities[h]
                                  for h, a in answer.weights.items())
    report = {
        name: {"top1": top_k_accuracy(p, labels, 1),
               f"top{FLAGS.top_k}": top_k_accuracy(p, labels, FLAGS.top_k)}
        for name, p in probabilities.items()
    }
    report["answer"]["weights"] = answer.weights
    _write(report)


def _write(report) -> None:
    """Prints `report` and writes it to `<model_dir>/evaluation.json`."""
    print(json.dumps(report, indent=2))
    with open(os.path.join(FLAGS.model_dir, "evaluation.json"), "w") as f:
        json.dump(report, f, indent=2)


if __name__ == "__main__":
    define_flags()
    cli.run(main)
