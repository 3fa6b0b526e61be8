"""When G-Blend estimates, and for how many epochs its clones train.

Offline (Algorithm 2): once, at the start of training. Online (Algorithm
3): at the start of epoch `warmup_epochs` (0 in the paper), then after a
first super-epoch of `first_super_epoch` epochs (10), then every
`super_epoch` epochs (5).
"""

import dataclasses
from typing import Union

from keras_gblend.gblend.presets import AUTO, SPAN

MODES = ("offline", "online")


@dataclasses.dataclass(frozen=True)
class Schedule:
    """An estimation schedule.

    Attributes:
        mode: `"offline"` or `"online"`.
        warmup_epochs, first_super_epoch, super_epoch: online only (see the
            module docstring).
        estimation_epochs: epochs each estimate's clones train: an integer,
            `"auto"` (offline the run, online `super_epoch`) or `"span"`
            (the epochs the estimate is used for).
    """

    mode: str = "online"
    warmup_epochs: int = 0
    first_super_epoch: int = 10
    super_epoch: int = 5
    estimation_epochs: Union[int, str] = AUTO

    def is_estimation_epoch(self, epoch: int) -> bool:
        """Whether the online schedule estimates at the start of `epoch`."""
        if self.mode == "offline":
            return False
        since = epoch - self.warmup_epochs
        if since < 0:
            return False
        if since == 0:
            return True
        since -= self.first_super_epoch
        return since >= 0 and since % self.super_epoch == 0

    def weights_used_for(self, epoch: int, total_epochs: int) -> int:
        """Epochs an estimate made at the start of `epoch` is used for: the
        rest of the run offline, the coming super-epoch online (cut at
        `total_epochs`)."""
        if self.mode == "offline":
            length = total_epochs - epoch
        elif epoch == self.warmup_epochs:
            length = self.first_super_epoch
        else:
            length = self.super_epoch
        return max(1, min(length, total_epochs - epoch))

    def clone_epochs(self, epoch: int, total_epochs: int) -> int:
        """Epochs the clones of an estimate made at the start of `epoch`
        train: an integer `estimation_epochs`; under `"span"` the epochs
        the estimate is used for; under `"auto"` the rest of the run
        offline and `super_epoch` online (cut at `total_epochs`)."""
        if self.estimation_epochs not in (AUTO, SPAN):
            return self.estimation_epochs
        if self.mode == "offline" or self.estimation_epochs == SPAN:
            return self.weights_used_for(epoch, total_epochs)
        return max(1, min(self.super_epoch, total_epochs - epoch))
