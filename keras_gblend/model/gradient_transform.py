"""The seam through which a training method changes a `BlendedModel`'s
gradients (OGM-GE plugs in here; the model core knows no method).

A `GradientTransform` is the serializable configuration given as
`BlendedModel(..., modulation=...)`. `bind(model)` returns the object the
train step calls between the backward pass and the optimizer update:

- `modulate(gradients, variables, labels, y_pred, noise_draws=None)`:
  the new gradients;
- `draw_noise(variables)`: the step's random draws made ahead of it (used
  when XLA compiles the step: drawn outside XLA, handed in as
  `noise_draws`);
- `trackers`: metrics the model resets each epoch and logs;
- `fit_callbacks()`: callbacks `BlendedModel.fit` runs first (e.g. one
  that tells the transform the epoch).

The model keeps, for any transform, an epoch counter (`modulation_epoch`)
and a seed generator (`modulation_seed_generator`, seeded with the
transform's `seed`), as its own variables: checkpoints save and restore
them, and every `BlendedModel` has them, with or without a transform.
"""

from typing import List, Optional

import keras


class GradientTransform:
    """Base class of a change to a `BlendedModel`'s gradients.

    Attributes:
        seed: seed of the model's step seed generator (None: random).
        noise: whether the step draws random numbers (then an XLA-compiled
            step gets them drawn ahead, `draw_noise`).
    """

    seed: Optional[int] = None
    noise: bool = False

    def bind(self, model: keras.Model):
        """The object that transforms `model`'s gradients (see the module
        docstring)."""
        raise NotImplementedError

    def get_config(self):
        raise NotImplementedError


def add_transform_state(model: keras.Model,
                        transform: Optional[GradientTransform]) -> None:
    """Creates `model.modulation_epoch` and `model.modulation_seed_generator`
    (its state tracked as `model.modulation_seed_state`). The order is the
    order of the model's saved variables: keep it."""
    model.modulation_epoch = model.add_weight(
        shape=(), initializer="zeros", dtype="int64", trainable=False,
        name="modulation_epoch")
    model.modulation_seed_generator = keras.random.SeedGenerator(
        None if transform is None else transform.seed,
        name="modulation_seed_generator")
    # Tracked as the model's own (non-trainable) variable, so that the
    # noise stream is saved and restored with every checkpoint.
    model.modulation_seed_state = model.modulation_seed_generator.state


def checked(transform) -> Optional[GradientTransform]:
    """`transform`, deserialized if it is a config dict; raises `TypeError`
    for anything but a `GradientTransform` or None."""
    if isinstance(transform, dict):
        transform = keras.saving.deserialize_keras_object(transform)
    if transform is not None and not isinstance(transform, GradientTransform):
        raise TypeError(
            "`modulation` must be a gradient transform such as kg.OGMGE, or "
            f"None; got {transform!r}.")
    return transform


def fit_callbacks(modulator) -> List[keras.callbacks.Callback]:
    """The callbacks a bound transform asks `fit` to run (none without)."""
    return [] if modulator is None else list(modulator.fit_callbacks())
