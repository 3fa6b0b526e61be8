"""keras_gblend: multimodal training that beats the best single modality.

Gradient-Blending (Wang, Tran & Feiszli, CVPR 2020) for Keras 3 models with
named per-modality heads and a joint head.
"""

from keras_gblend import (
    data,
    datasets,
    encoders,
    fusion_layers,
    gblend_presets,
    measurement_noise,
    mid_fusion_layers,
    modality_imbalance,
    multilabel,
    ogm,
    ogr,
    training_history,
)
from keras_gblend.answer import Answer, select_answer
from keras_gblend.baselines import PretrainFinetune
from keras_gblend.blended_model import BlendedModel, as_blended_model
from keras_gblend.checkpointing import ResumableCheckpoint
from keras_gblend.concise_progbar import ConciseProgbarLogger
from keras_gblend.estimation import (
    BlendEstimate,
    BlendEstimator,
    estimate_blend_weights,
)
from keras_gblend.stratified_subset import estimation_subset
from keras_gblend.fusion import late_fusion_model
from keras_gblend.gblend_callback import GBlendCallback
from keras_gblend.mid_fusion import mid_fusion_model
from keras_gblend.holdout import split_holdout
from keras_gblend.modality_imbalance import ModalityImbalanceMonitor
from keras_gblend.non_finite_guard import RaiseOnNonFiniteLoss
from keras_gblend.ogm import OGMGE
from keras_gblend.ogr_monitor import OGRMonitor
from keras_gblend.plotting import plot_history

__version__ = "0.1.0"
