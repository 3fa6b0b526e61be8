"""Times the public OGM-GE reference code's training step (PyTorch).

The reference (https://github.com/GeWu-Lab/OGM-GE_CVPR2022) is never
vendored or downloaded here: the user points `benchmarks/speed.py
--ogm_reference_dir` at a checkout of it, and `torch` must be installed.
Its own `train_epoch` (from `main.py`) runs on its own `AVClassifier`
(ResNet-18 audio and visual encoders, concat fusion) with random inputs of
the same shapes as the Keras side, one epoch per measurement; a stamp per
batch drawn gives each step's time. The reference's data modules import
`librosa` and `torchvision`, which its training step never uses: where
they do not import, empty stand-ins take their place.

Example:

```python
rows = reference_step_times("/src/OGM-GE_CVPR2022", batch_size=16, steps=8,
                            repeats=3, alpha=0.5)
```
"""

import argparse
import contextlib
import importlib.util
import io
import os
import sys
import time
import types
from typing import Dict, List, Optional

import numpy as np

# The reference's `--modulation` values, in the order the Keras rows use.
VARIANTS = {"Normal": "plain step", "OGM": "OGM (no noise)",
            "OGM_GE": "OGM-GE"}
# Its data modules and the dataset classes `main.py` imports from them.
DATA_MODULES = {"dataset.CramedDataset": "CramedDataset",
                "dataset.VGGSoundDataset": "VGGSound",
                "dataset.dataset": "AVDataset"}


class ReferenceUnavailable(Exception):
    """Why the reference cannot be timed (no torch, no checkout)."""


def load_reference(checkout: str):
    """Imports the reference's `main.py` from `checkout`.

    Args:
        checkout: a folder holding the reference's `main.py`, `models/`
            and `utils/`.

    Returns:
        `(main module, torch)`.

    Raises:
        ReferenceUnavailable: torch is missing, or `checkout` is not the
            reference.
    """
    try:
        import torch
    except ImportError as error:
        raise ReferenceUnavailable(
            f"torch is not installed ({error}).") from error
    main_path = os.path.join(checkout, "main.py")
    models_path = os.path.join(checkout, "models", "basic_model.py")
    if not (os.path.isfile(main_path) and os.path.isfile(models_path)):
        raise ReferenceUnavailable(
            f"--ogm_reference_dir: {checkout!r} has no main.py and "
            "models/basic_model.py (a checkout of "
            "GeWu-Lab/OGM-GE_CVPR2022 is expected).")
    sys.path.insert(0, checkout)
    for module_name, class_name in DATA_MODULES.items():
        try:
            importlib.import_module(module_name)
        except ImportError:
            stand_in = types.ModuleType(module_name)
            setattr(stand_in, class_name, None)
            sys.modules[module_name] = stand_in
    spec = importlib.util.spec_from_file_location("ogm_ge_reference_main",
                                                  main_path)
    main = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(main)
    return main, torch


class _StampedBatches:
    """The same batches every epoch, stamping the time each is drawn."""

    def __init__(self, batches):
        self.batches = batches
        self.stamps: List[float] = []

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        for batch in self.batches:
            self.stamps.append(time.perf_counter())
            yield batch

    def step_seconds(self) -> List[float]:
        """Seconds between consecutive draws (each a whole step), the
        first step of each epoch left out as warm-up."""
        return list(np.diff(self.stamps)[1:])


def reference_step_times(checkout: str, batch_size: int, steps: int,
                         repeats: int, alpha: float,
                         audio_shape=(128, 94), frames: int = 3,
                         image_size: int = 112,
                         threads: Optional[int] = None) -> List[Dict]:
    """Median step time of the reference's `train_epoch` per modulation.

    Args:
        checkout: the reference checkout (see `load_reference`).
        batch_size: batch size.
        steps: steps per timed epoch.
        repeats: epochs per variant, interleaved across variants.
        alpha: OGM-GE's alpha.
        audio_shape: spectrogram (frequency, time).
        frames: visual frames per clip.
        image_size: frame height and width.
        threads: torch's intra-op threads (default: every core).

    Returns:
        One row per variant: `variant`, `ms_per_step`, `ms_p10`,
        `ms_p90`, `ratio_to_plain`.
    """
    main, torch = load_reference(checkout)
    torch.set_num_threads(threads or os.cpu_count())
    torch.manual_seed(0)
    batches = [(torch.randn(batch_size, *audio_shape),
                torch.randn(batch_size, 3, frames, image_size, image_size),
                torch.randint(0, 6, (batch_size,)))
               for _ in range(steps + 1)]
    runs = {}
    for modulation in VARIANTS:
        args = argparse.Namespace(
            dataset="CREMAD", fusion_method="concat", modulation=modulation,
            alpha=alpha, modulation_starts=0, modulation_ends=50,
            use_tensorboard=False)
        model = main.AVClassifier(args)
        model.apply(main.weight_init)
        # The reference reads `model.module`: DataParallel, as it runs it
        # (on CPU it calls the model directly).
        model = torch.nn.DataParallel(model)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3,
                                    momentum=0.9, weight_decay=1e-4)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 70, 0.1)
        runs[modulation] = (args, model, optimizer, scheduler, [])
    with contextlib.redirect_stdout(io.StringIO()):  # "Start training ..."
        for repeat in range(repeats + 1):  # the first round warms up
            for args, model, optimizer, scheduler, seconds in runs.values():
                loader = _StampedBatches(batches)
                main.train_epoch(args, 0, model, torch.device("cpu"),
                                 loader, optimizer, scheduler)
                if repeat:
                    seconds += loader.step_seconds()
    plain = np.median(runs["Normal"][4])
    return [{"variant": name,
             "ms_per_step": 1000 * float(np.median(seconds)),
             "ms_p10": 1000 * float(np.percentile(seconds, 10)),
             "ms_p90": 1000 * float(np.percentile(seconds, 90)),
             "ratio_to_plain": float(np.median(seconds) / plain)}
            for name, (*_, seconds) in zip(VARIANTS.values(),
                                           runs.values())]
