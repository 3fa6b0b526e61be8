"""Setup for keras_gblend."""

import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def read(name):
    with open(os.path.join(HERE, name), encoding="utf-8") as handle:
        return handle.read()


setup(
    name="keras_gblend",
    version="0.1.0",
    description=(
        "Gradient-Blending and OGM-GE for multimodal Keras 3 classifiers."
    ),
    long_description=read("README.md"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    # The data folder is listed as a package of its own: setuptools warns
    # about (and will stop installing) data folders that are not.
    packages=find_packages(include=["keras_gblend", "keras_gblend.*"])
    + ["keras_gblend.datasets.data"],
    package_data={"keras_gblend.datasets.data": ["*.npz", "*.md"]},
    include_package_data=True,
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "tensorboard>=2.21,<2.22",
        # Private Keras members the library uses are tested for 3.15
        # (keras_gblend/model/keras_compat.py); allow no untested minor.
        "keras>=3.15,<3.16",
        "numpy",
        "absl-py",
    ],
    extras_require={
        "test": ["pytest", "pytest-xdist", "scikit-learn", "soundfile",
                 "matplotlib>=3.8"],
        "av": ["scikit-learn"],
        "audio": ["soundfile"],
        "plot": ["matplotlib>=3.8"],
        "mutation": ["mutmut==3.8.1"],
    },
)
