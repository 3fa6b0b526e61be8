"""The experiment engine behind the scripts and benchmarks: settings
(`config`, one source for every flag), the command line (`cli`), and one
run end to end (`run`).

This `__init__` imports nothing: the scripts read `config` and `cli` before
TensorFlow is imported."""
