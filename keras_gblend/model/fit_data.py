"""The training data of the `fit` call in progress, for the callbacks that
train clones on it (G-Blend's estimates, OGM-GE's premise check)."""

import dataclasses
from typing import Any, Dict, Optional

import numpy as np
import tensorflow as tf

from keras_gblend.inputs import input_data


@dataclasses.dataclass
class FitData:
    """What `BlendedModel.fit` was called with.

    Attributes:
        x, y, sample_weight, batch_size, validation_split: `fit`'s
            arguments.
        claims: what callbacks of this fit have taken charge of (e.g. the
            blend weights), so that two of them do not fight over it.
    """

    x: Any
    y: Any = None
    sample_weight: Any = None
    batch_size: Optional[int] = None
    validation_split: float = 0.0
    claims: Dict[str, Any] = dataclasses.field(default_factory=dict)

    def training_rows(self, who: str):
        """The rows the fit trains on: its dataset, or `(x, y[,
        sample_weight])` arrays without the `validation_split` rows Keras
        validates on.

        Args:
            who: the callback's name, for the error messages.

        Raises:
            ValueError: inputs other than arrays with `y` or a
                `tf.data.Dataset` (generators, `PyDataset`).
        """
        if isinstance(self.x, tf.data.Dataset):
            return self.x
        if self.y is None:
            raise ValueError(
                f"{who} can estimate from `fit(x, y)` arrays or a "
                "tf.data.Dataset; for other inputs (generators, PyDataset) "
                "pass `train=`.")
        data = (self.x, self.y)
        if self.sample_weight is not None:
            data += (self.sample_weight,)
        if self.validation_split:
            # Keras validates on the last rows; train clones on the rest.
            size = input_data.num_examples(self.x)
            keep = np.arange(int(size * (1.0 - self.validation_split)))
            data = tuple(input_data.take_rows(part, keep) for part in data)
        return data
