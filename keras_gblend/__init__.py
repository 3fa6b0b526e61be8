"""keras_gblend: multimodal training that beats the best single modality.

Gradient-Blending (Wang, Tran & Feiszli, CVPR 2020) for Keras 3 models with
named per-modality heads and a joint head.
"""

from keras_gblend import data, datasets, ogm
from keras_gblend.networks import encoders, fusion_layers, mid_fusion_layers
from keras_gblend.gblend import presets as gblend_presets, measurement_noise, ogr
from keras_gblend.ogm import modality_imbalance
from keras_gblend.evaluation import multilabel, training_history
from keras_gblend.evaluation.answer import Answer, select_answer
from keras_gblend.callbacks.pretrain_finetune import PretrainFinetune
from keras_gblend.model.blended_model import BlendedModel
from keras_gblend.model.as_blended_model import as_blended_model
from keras_gblend.callbacks.resumable_checkpoint import ResumableCheckpoint
from keras_gblend.callbacks.concise_progbar_logger import ConciseProgbarLogger
from keras_gblend.gblend.blend_estimate import BlendEstimate
from keras_gblend.gblend.blend_estimator import (
    BlendEstimator,
    estimate_blend_weights,
)
from keras_gblend.gblend.stratified_subset import estimation_subset
from keras_gblend.networks.late_fusion import late_fusion_model
from keras_gblend.gblend.gblend_callback import GBlendCallback
from keras_gblend.networks.mid_fusion import mid_fusion_model
from keras_gblend.inputs.holdout import split_holdout
from keras_gblend.ogm.modality_imbalance_monitor import ModalityImbalanceMonitor
from keras_gblend.callbacks.raise_on_non_finite_loss import RaiseOnNonFiniteLoss
from keras_gblend.ogm import OGMGE
from keras_gblend.gblend.ogr_monitor import OGRMonitor
from keras_gblend.evaluation.plotting import plot_history

__version__ = "0.1.0"
