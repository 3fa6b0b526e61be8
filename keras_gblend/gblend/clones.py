"""Estimation clones: copies of a `BlendedModel` that train a head's loss
alone, with a fresh optimizer of the model's configuration (a learning
rate schedule continuing from the model's step)."""

import keras
import tensorflow as tf

from keras_gblend.model import keras_compat
from keras_gblend.model.blended_model import BlendedModel

# Clones run this many steps per call into TensorFlow (same steps, same
# order, same weights; fewer Python round trips, measured:
# benchmarks/results/speed). Without a distribution strategy only.
CLONE_STEPS_PER_EXECUTION = 16


@keras.saving.register_keras_serializable(package="keras_gblend")
class _ContinuedSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`schedule(step + offset)`: a schedule picked up at step `offset`
    (a variable, so a reused clone continues from a new step without
    retracing)."""

    def __init__(self, schedule, offset: int):
        if isinstance(schedule, _ContinuedSchedule):  # continued twice
            schedule, offset = schedule.schedule, schedule.start + offset
        self.schedule = schedule
        self.offset = tf.Variable(
            int(offset), dtype=tf.int64, trainable=False, name="lr_offset"
        )

    @property
    def start(self) -> int:
        """The step the schedule continues from."""
        return int(self.offset.numpy())

    def __call__(self, step):
        step = tf.convert_to_tensor(step)
        return self.schedule(step + tf.cast(self.offset, step.dtype))

    def get_config(self):
        return {
            "schedule": keras.optimizers.schedules.serialize(self.schedule),
            "offset": self.start,
        }

    @classmethod
    def from_config(cls, config):
        schedule = keras.optimizers.schedules.deserialize(config["schedule"])
        return cls(schedule, config["offset"])


def fresh_optimizer(optimizer) -> keras.optimizers.Optimizer:
    """A new optimizer with the same configuration and no state (no
    moments, step 0). A learning rate schedule continues from `optimizer`'s
    current step: a clone trains at the rate the model would train at now,
    not at the schedule's initial rate."""
    fresh = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    # A LossScaleOptimizer (mixed precision) schedules its inner optimizer.
    inner = getattr(fresh, "inner_optimizer", fresh)
    rate = inner.get_config()["learning_rate"]
    if isinstance(rate, dict):  # a serialized LearningRateSchedule
        step = int(keras.ops.convert_to_numpy(optimizer.iterations))
        inner.learning_rate = _ContinuedSchedule(
            keras.optimizers.schedules.deserialize(rate), step
        )
    return fresh


def layers_recursively(layer):
    yield layer
    for child in getattr(layer, "layers", ()):
        yield from layers_recursively(child)


def clone_blended_model(model: BlendedModel, custom_objects=None):
    """A new `BlendedModel` with the same graph and a copy of the weights,
    built in the model's distribution strategy scope.

    The clone trains without OGM-GE and with `blend_scope="all"`:
    Algorithm 1 measures how each head overfits under plain training on its
    own loss, and nothing else trains.
    """
    config = model.get_config()
    config["modulation"] = None
    config["blend_scope"] = "all"
    with model.distribute_strategy.scope():
        with keras.saving.custom_object_scope(custom_objects or {}):
            clone = model.__class__.from_config(config)
        clone.set_weights(model.get_weights())
    refresh_cached_state(clone)
    return clone


def compile_clone(model, clone, train_heads):
    mask = {h: float(h in train_heads) for h in model.head_names}
    with model.distribute_strategy.scope():
        clone.compile(
            optimizer=fresh_optimizer(model.optimizer),
            loss=model.loss_argument,
            loss_weights=mask,
            jit_compile=model.jit_compile,
            run_eagerly=model.run_eagerly,
            steps_per_execution=clone_steps_per_execution(model),
        )


def clone_steps_per_execution(model) -> int:
    """Steps per call for a clone: `CLONE_STEPS_PER_EXECUTION` without a
    distribution strategy (Keras's multi-step loop does not run under
    tf.distribute strategies here), else the model's own."""
    if model.run_eagerly or not _is_default_strategy(model.distribute_strategy):
        return model.steps_per_execution
    return max(CLONE_STEPS_PER_EXECUTION, model.steps_per_execution)


def _is_default_strategy(strategy) -> bool:
    return type(strategy).__name__ == "_DefaultDistributionStrategy"


def refresh_cached_state(model) -> None:
    """Layers that cache tensors derived from their variables (e.g. an
    adapted `Normalization`) refresh them, as `load_model` does."""
    for layer in layers_recursively(model):
        finalize_state = getattr(layer, "finalize_state", None)
        if finalize_state is not None:
            finalize_state()


def continue_learning_rate(optimizer, clone_optimizer) -> None:
    """Sets a reused clone optimizer's learning rate to the model's current
    one (a schedule continues from the model's step)."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    clone_inner = getattr(clone_optimizer, "inner_optimizer", clone_optimizer)
    rate = keras_compat.learning_rate_object(clone_inner)
    if isinstance(rate, _ContinuedSchedule):
        step = int(keras.ops.convert_to_numpy(optimizer.iterations))
        own = keras_compat.learning_rate_object(inner)
        rate.offset.assign(
            step + (own.start if isinstance(own, _ContinuedSchedule) else 0)
        )
    else:
        clone_inner.learning_rate = float(
            keras.ops.convert_to_numpy(inner.learning_rate)
        )


