"""Writes a benchmark's results: the markdown table and its JSON."""

import json
import os


def write_results(out: str, markdown: str, data) -> None:
    """Writes `markdown` to `<out>.md` and `data` to `<out>.json`, making
    the folder if needed."""
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out + ".md", "w") as f:
        f.write(markdown.rstrip("\n") + "\n")
    with open(out + ".json", "w") as f:
        json.dump(data, f, indent=2)
