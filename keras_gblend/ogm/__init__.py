"""OGM-GE (Peng et al., CVPR 2022): on-the-fly gradient modulation with
generalization enhancement, as a gradient transform of `BlendedModel`.

`kg.ogm` holds the pure transforms (`transforms`: `modality_scores`,
`discrepancy_ratios`, `modulation_coefficients`, `scale_gradients`,
`add_gradient_noise`), the `OGMGE` configuration and the
`GradientModulator` that applies them inside the train step.
"""

from keras_gblend.ogm.gradient_modulator import (  # noqa: F401
    GradientModulator,
    ModulationEpochCounter,
    all_reduce_sum,
    is_first_replica,
    modulated_variable_groups,
)
from keras_gblend.ogm.ogmge import OGMGE, PARAMS, SCORE_SOURCES  # noqa: F401
from keras_gblend.ogm.transforms import (  # noqa: F401
    NOISE_EPSILON,
    add_gradient_noise,
    discrepancy_ratios,
    draw_standard_normals,
    gradient_std,
    modality_scores,
    modulation_coefficients,
    scale_gradients,
    standard_normal,
)
