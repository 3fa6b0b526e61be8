"""Training schedules the G-Blend paper compares against (its section 4 and
supplementary): pre-training each uni-modal network, then fine-tuning the
fused one.

The other baselines need no callback: equal-weight auxiliary losses are
blend weights `1/(k+1)` (`experiment.starting_loss_weights("aux_loss")`),
learned loss weights are `BlendedModel(loss_weighting="uncertainty")`,
dropout at the concatenation is `late_fusion_model(fusion_dropout=...)`,
and early stopping is Keras's `EarlyStopping(restore_best_weights=True)`
on the holdout.
"""

from typing import Any, Dict

import keras

from keras_gblend.inputs.input_checks import check_integer


class PretrainFinetune(keras.callbacks.Callback):
    """Pre-trains every uni-modal network, then fine-tunes the fused model.

    For the first `pretrain_epochs` epochs the blend weights are 1 for each
    uni-modal head and 0 for the joint head (the uni-modal networks train,
    each on its own encoder; the joint head's own layer learns on the
    frozen-for-it features under `blend_scope="shared"`); from then on, the
    joint head alone (naive fusion starting from the pre-trained encoders).
    The switch is by epoch number, so a resumed run lands in the right phase.

    Args:
        pretrain_epochs: epochs of uni-modal pre-training (>= 1).

    Example:

    ```python
    model.fit(x, y, epochs=40, callbacks=[kg.PretrainFinetune(20)])
    ```
    """

    def __init__(self, pretrain_epochs: int):
        super().__init__()
        self.pretrain_epochs = check_integer("pretrain_epochs",
                                             pretrain_epochs, 1)

    def get_config(self) -> Dict[str, Any]:
        return {"pretrain_epochs": self.pretrain_epochs}

    def on_epoch_begin(self, epoch, logs=None):
        model = self.model
        pretraining = epoch < self.pretrain_epochs
        model.set_blend_weights({
            head: float(pretraining == (head != model.joint_output))
            for head in model.head_names
        })
