"""Datasets: UCI Multiple Features ships inside the package (and, built from
it, UCI-paradox, on which naive fusion loses to its best view); AV-digits is
generated locally (`make_av_digits`) and read with `load_av_digits`."""

from keras_gblend.datasets.av_digits import load_av_digits, make_av_digits
from keras_gblend.datasets.uci_multifeature import MultiViewData
from keras_gblend.datasets.uci_multifeature import load_uci_multifeature
from keras_gblend.datasets.uci_multilabel import load_uci_multilabel
from keras_gblend.datasets.uci_paradox import load_uci_paradox
from keras_gblend.datasets.spoken_digits import load_spoken_digits
