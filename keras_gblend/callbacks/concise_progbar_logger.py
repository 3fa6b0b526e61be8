"""`ConciseProgbarLogger`: Keras's progress bar showing only the figures a
person reads.

A multi-head model logs every head's loss and metrics, on the training data
and on the holdout, plus G-Blend's and OGM-GE's figures: some 30 values and
a thousand characters per epoch line. The full set stays in the logs
(History, TensorBoard, CSVLogger, `metrics.json`); the terminal shows the
keys that match `keys`.
"""

import fnmatch
from typing import Any, Dict, Sequence

import keras


@keras.saving.register_keras_serializable(package="keras_gblend")
class ConciseProgbarLogger(keras.callbacks.ProgbarLogger):
    """Keras's `ProgbarLogger`, printing only the log keys that match one of
    `keys` (shell patterns, in their order).

    Pass it in `callbacks`: `fit` then uses it instead of its own. The
    other callbacks still receive every log.

    Args:
        keys: patterns of the keys to show, e.g. `("loss",
            "joint_accuracy", "val_joint_accuracy", "blend_weight/*")`.

    Example:

    ```python
    model.fit(x, y, epochs=40, callbacks=[
        kg.GBlendCallback(holdout),
        kg.ConciseProgbarLogger(("loss", "joint_accuracy",
                                 "val_joint_accuracy", "blend_weight/*"))])
    ```
    """

    def __init__(self, keys: Sequence[str] = ("loss", "joint_accuracy",
                                              "val_joint_accuracy",
                                              "blend_weight/*")):
        super().__init__()
        if isinstance(keys, str) or not keys:
            raise ValueError(
                f"`keys` must be a non-empty sequence of patterns, got "
                f"{keys!r}.")
        self.keys = tuple(keys)

    def get_config(self) -> Dict[str, Any]:
        return {"keys": list(self.keys)}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def shown(self, logs) -> Dict[str, Any]:
        """The entries of `logs` that match `keys`, in the order of `keys`."""
        logs = logs or {}
        shown = {}
        for pattern in self.keys:
            for key in logs:
                if key not in shown and fnmatch.fnmatchcase(key, pattern):
                    shown[key] = logs[key]
        return shown

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, self.shown(logs))

    def on_test_batch_end(self, batch, logs=None):
        super().on_test_batch_end(batch, self.shown(logs))

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, self.shown(logs))

    def on_test_end(self, logs=None):
        super().on_test_end(self.shown(logs))
