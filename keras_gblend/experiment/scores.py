"""A run's scores: every head's test accuracy (mAUC and mAP for
multi-label), the holdout-chosen answer, and `metrics.json`."""

import dataclasses
import json
import os
from typing import Dict, Optional

import keras
import numpy as np

from keras_gblend.evaluation import linear_probe
from keras_gblend.evaluation.answer import select_answer
from keras_gblend.evaluation.multilabel import mean_auc, mean_average_precision


def write_results(config, model, model_dir, holdout, test, history, wall_time,
             initial_epoch, estimation_timings=(), ogm_diagnosis=None,
             stopped_early=False, probe_accuracy=None) -> Dict:
    """Evaluates `model` and writes `metrics.json` and `model.keras`."""
    results = {
        "dataset": config.dataset,
        "views": list(model.modalities),
        "method": config.method,
        "reported_head": config.reported_head,
        **test_scores(config, model, test),
        "blend_weights": model.blend_weights,
        "answer": answer_scores(config, model, holdout, test),
        "wall_time_s": wall_time,
        # Per G-Blend estimate: its epoch and seconds per phase.
        "estimation_timings": list(estimation_timings),
        # OGM-GE's premise check (`ModalityImbalanceMonitor`), if run.
        "ogm_diagnosis": (ogm_diagnosis.as_dict()
                          if ogm_diagnosis is not None else None),
        # The epoch this session resumed from; `history` covers every
        # epoch from the first.
        "initial_epoch": initial_epoch,
        "history_first_epoch": 0,
        # early_stop: stopped before `epochs` (the best epoch's weights).
        "stopped_early": stopped_early,
        # With `probe_encoders`: per modality, a linear probe of its
        # encoder (train split -> test split).
        "probe_accuracy": probe_accuracy,
        "history": {
            k: [float(v) for v in values] for k, values in history.items()
        },
        "config": dataclasses.asdict(config),
    }
    if model_dir:
        with open(os.path.join(model_dir, "metrics.json"), "w") as f:
            json.dump(results, f, indent=2, default=list)
        model.save(os.path.join(model_dir, "model.keras"))
    return results


def answer_scores(config, model, holdout, test) -> Optional[Dict]:
    """The holdout-selected answer and its test accuracy (None for
    multi-label, where `select_answer` does not apply)."""
    if config.multi_label:
        return None
    answer = select_answer(model, holdout, batch_size=config.batch_size)
    return {
        "weights": answer.weights,
        "holdout_accuracy": answer.holdout_accuracy,
        "test_accuracy": answer.accuracy(
            model, test if len(test) > 1 else test[0], config.batch_size),
    }


def test_scores(config, model, test) -> Dict[str, Dict[str, float]]:
    """Each head's test accuracy; for multi-label also its mAUC and exact
    mAP, all from one prediction pass over the test arrays."""
    if not config.multi_label:
        scores = model.evaluate(*test, return_dict=True, verbose=0)
        return {"test_accuracy": {head: float(scores[f"{head}_accuracy"])
                                  for head in model.head_names}}
    x, y = test
    logits = model.predict(x, batch_size=config.batch_size, verbose=0)
    scores = {"test_accuracy": {}, "test_map": {}, "test_mauc": {}}
    for head in model.head_names:
        probabilities = keras.ops.convert_to_numpy(
            keras.ops.sigmoid(logits[head]))
        # The compiled accuracy's rule: logit > 0, i.e. probability > 0.5.
        scores["test_accuracy"][head] = float(np.mean(
            (logits[head] > 0) == np.asarray(y, bool)))
        scores["test_mauc"][head] = mean_auc(y, probabilities)
        scores["test_map"][head] = mean_average_precision(y, logits[head])
    return scores


def probe_scores(config, model, train, test) -> Dict[str, float]:
    """Per modality, the test accuracy of a linear probe of its encoder
    trained on the training split (`kg.evaluation.linear_probe`)."""
    return linear_probe.probe_every_encoder(
        model, model.modalities, train, test if len(test) > 1 else test[0],
        model.num_classes, batch_size=config.batch_size, seed=config.seed)
