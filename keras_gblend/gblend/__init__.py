"""Gradient-Blending (Wang, Tran & Feiszli, CVPR 2020): OGR and the
optimal blend, the estimation of Algorithm 1 and the callback of Algorithms
2 and 3.

This `__init__` imports nothing: the scripts read `presets` before
TensorFlow is imported."""
