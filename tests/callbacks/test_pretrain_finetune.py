import keras
import numpy as np
import pytest

import keras_gblend as kg


def test_pretrain_finetune_trains_unimodal_then_fused(
        toy_data, toy_model, sparse_ce):
    x, y = toy_data(n=64)
    model = toy_model(seed=0, blend_scope="all")
    model.compile(keras.optimizers.SGD(0.1), sparse_ce(),
                  loss_weights=[1.0, 1.0, 0.0])
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(dict(self.model.blend_weights))
    joint_kernel = model.get_layer("joint").kernel
    model.fit(x, y, epochs=1, verbose=0,
              callbacks=[kg.PretrainFinetune(2), Record()])
    start = joint_kernel.numpy().copy()
    model.fit(x, y, epochs=2, verbose=0,
              callbacks=[kg.PretrainFinetune(2), Record()])
    # Epochs 0-1 pre-train: the joint classifier (weight 0, scope 'all')
    # does not move; from epoch 2 only the joint head trains.
    np.testing.assert_array_equal(start, joint_kernel.numpy())
    assert [w["joint"] for w in seen] == [0.0, 0.0, 0.0]
    model.fit(x, y, epochs=4, initial_epoch=2, verbose=0,
              callbacks=[kg.PretrainFinetune(2), Record()])
    assert seen[-1] == {"a": 0.0, "v": 0.0, "joint": 1.0}
    assert not np.array_equal(start, joint_kernel.numpy())
    with pytest.raises(ValueError, match="pretrain_epochs"):
        kg.PretrainFinetune(0)
