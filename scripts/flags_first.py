"""Loading keras_gblend's flag modules before TensorFlow.

`import keras_gblend` imports TensorFlow, which takes seconds and prints
start-up lines. The scripts parse their flags first, so that `--help` and a
bad flag answer at once: `import_before_tensorflow` loads the modules that
define the flags (`keras_gblend.experiment.cli`, `keras_gblend.experiment.config`,
`keras_gblend.gblend.presets`: they import only the standard library and
absl) without running `keras_gblend/__init__.py`. The package is imported
later, as usual, and uses these same module objects.
"""

import importlib
import importlib.util
import os
import sys
import types

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def import_before_tensorflow(name: str) -> types.ModuleType:
    """Imports the module `name` (`keras_gblend.<module>`), which must
    import only the standard library, absl and other such modules, without
    importing the package's `__init__`."""
    if "keras_gblend" in sys.modules:
        return importlib.import_module(name)
    spec = importlib.util.find_spec("keras_gblend")
    stand_in = types.ModuleType("keras_gblend")
    stand_in.__path__ = list(spec.submodule_search_locations)
    sys.modules["keras_gblend"] = stand_in
    try:
        return importlib.import_module(name)
    finally:
        # The real package replaces the stand-in at its first import.
        del sys.modules["keras_gblend"]
