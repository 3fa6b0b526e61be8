"""Judging a trained model: the holdout-chosen answer, multi-label
metrics, training history and its plot."""
