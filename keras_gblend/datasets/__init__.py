"""Datasets that ship with keras_gblend (nothing is downloaded)."""

from keras_gblend.datasets.uci_multifeature import MultiViewData
from keras_gblend.datasets.uci_multifeature import load_uci_multifeature
