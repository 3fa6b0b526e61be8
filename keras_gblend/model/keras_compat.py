"""Every private Keras (and TensorFlow) member the library touches, in one
place.

Each function names the member it reads or writes; `tests/model/
test_keras_compat.py` checks that every one still exists in the installed
Keras and behaves as used, so a Keras release that changes one fails there,
loudly, instead of somewhere inside training. `setup.py` bounds `keras`
below the next minor release not yet tested.
"""

import contextlib
from typing import Any, List, Optional

import keras
import tensorflow as tf

# Keras releases this module was checked against (`setup.py` allows these).
TESTED_KERAS = "3.15"


def producing_layer(tensor) -> Optional[Any]:
    """The layer (operation) that made a symbolic tensor: Keras's private
    `KerasTensor._keras_history.operation`; None for other tensors."""
    history = getattr(tensor, "_keras_history", None)
    return history.operation if history is not None else None


def producing_node(tensor):
    """`(operation, node)` that made a symbolic tensor, from
    `_keras_history` and the operation's private `_inbound_nodes`; None for
    other tensors."""
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return None
    operation = history.operation
    return operation, operation._inbound_nodes[history.node_index]


def aggregate_additional_loss(model: keras.Model, loss):
    """A layer's `add_loss` term as Keras's own `compute_loss` adds it
    (summed, cast, scaled by 1/replicas): `Model._aggregate_additional_loss`."""
    return model._aggregate_additional_loss(loss)


def loss_tracker(model: keras.Model) -> keras.metrics.Mean:
    """The metric behind the logged `loss`: `Trainer._loss_tracker`."""
    return model._loss_tracker


@contextlib.contextmanager
def jit_compile_off(model: keras.Model):
    """Keras's train function built as if `jit_compile` were False, the
    setting restored after (`Trainer._jit_compile`)."""
    saved, model._jit_compile = model._jit_compile, False
    try:
        yield
    finally:
        model._jit_compile = saved


def learning_rate_object(optimizer: keras.optimizers.Optimizer):
    """An optimizer's learning rate as given, a float variable or a
    `LearningRateSchedule`: `Optimizer._learning_rate`."""
    return optimizer._learning_rate


def variable_index(optimizer: keras.optimizers.Optimizer, variable) -> int:
    """The position of `variable` among the variables `optimizer` updates,
    for a Keras variable or the `tf.Variable` (or a replica's component)
    that `update_step` receives: `Optimizer._get_variable_index`."""
    return optimizer._get_variable_index(variable)


def set_initial_epoch(model: keras.Model, epoch: int) -> None:
    """Makes the `fit` in progress start at `epoch`, as
    `keras.callbacks.BackupAndRestore` does (`Trainer._initial_epoch`, read
    by `fit` after `on_train_begin`)."""
    model._initial_epoch = int(epoch)


def in_multi_worker_mode(strategy: tf.distribute.Strategy) -> bool:
    """Whether a `MultiWorkerMirroredStrategy` runs over a cluster (Keras
    reduces logs across workers only then): TensorFlow's private
    `extended._in_multi_worker_mode()`."""
    return isinstance(
        strategy, tf.distribute.MultiWorkerMirroredStrategy
    ) and strategy.extended._in_multi_worker_mode()


# `keras.Model` builds its metrics from one batch in this private method,
# which `BlendedModel` overrides for multi-worker training.
SYMBOLIC_BUILD_METHOD = "_maybe_symbolic_build"


def local_batch(strategy: tf.distribute.Strategy, iterator) -> Any:
    """One replica's local batch from the first step of Keras's epoch
    `iterator` (what `_maybe_symbolic_build` receives), so that metrics are
    built from shapes and dtypes without a cross-worker reduce
    (tensorflow/tensorflow#72388)."""
    for _, _, it in iterator:
        batch = next(it)
        return tf.nest.map_structure(
            lambda v: strategy.experimental_local_results(v)[0]
            if isinstance(v, tf.distribute.DistributedValues) else v,
            batch)
    return None


def reshaped_for_multi_worker_reduce(logs) -> Any:
    """Step logs shaped `(1,)`: Keras 3.15 reduces them across workers with
    `strategy.reduce("MEAN", v, axis=0)`, which fails on scalars
    (tensorflow/tensorflow#72388); `(1,)` values reduce to the same scalar."""
    return tf.nest.map_structure(lambda v: tf.reshape(v, [1]), logs)


def private_members() -> List[str]:
    """The private members this module reads, for the record."""
    return ["KerasTensor._keras_history", "Operation._inbound_nodes",
            "Model._aggregate_additional_loss", "Trainer._loss_tracker",
            "Trainer._jit_compile", "Optimizer._learning_rate",
            "Optimizer._get_variable_index",
            "Trainer._initial_epoch", f"Model.{SYMBOLIC_BUILD_METHOD}",
            "MultiWorkerMirroredStrategy.extended._in_multi_worker_mode"]
