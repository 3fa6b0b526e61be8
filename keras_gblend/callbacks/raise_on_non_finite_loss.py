"""`RaiseOnNonFiniteLoss`: a diverged `fit` stops with an error, not a
normal ending."""

import math
from typing import Any, Dict, Optional

import keras


@keras.saving.register_keras_serializable(package="keras_gblend")
class RaiseOnNonFiniteLoss(keras.callbacks.Callback):
    """Raises `FloatingPointError` at the end of an epoch whose loss is NaN
    or infinite (Keras's `TerminateOnNaN` stops quietly instead).

    The epoch's logged loss is the mean over its batches, so one non-finite
    batch is enough. Put it before checkpointing callbacks: they then never
    save the diverged epoch, and the last good checkpoint stays the latest.

    Args:
        what: what is training, for the message (e.g. "the model").

    Example:

    ```python
    model.fit(x, y, epochs=20, callbacks=[
        kg.RaiseOnNonFiniteLoss(), kg.ResumableCheckpoint("ckpt")])
    ```
    """

    def __init__(self, what: str = "the model"):
        super().__init__()
        self.what = what

    def get_config(self) -> Dict[str, Any]:
        return {"what": self.what}

    def on_epoch_end(self, epoch: int, logs: Optional[Dict] = None):
        value = (logs or {}).get("loss")
        if value is not None and not math.isfinite(float(value)):
            raise FloatingPointError(
                f"Non-finite loss ({float(value)}) while training {self.what} "
                f"at epoch {epoch + 1}: training diverged (lower the learning "
                "rate, check the data)."
            )
