"""Callbacks that are not a training method: checkpoints, the non-finite
loss guard, the concise progress line, pre-training then fine-tuning."""
