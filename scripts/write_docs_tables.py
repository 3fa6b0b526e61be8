"""Writes the tables the docs generate from the code: the flag table of
docs/cli.md (from `keras_gblend.experiment.config`) and the deviations table
of docs/deviations.md (from `keras_gblend.gblend.presets`), each between its
`<!-- generated: ... -->` markers. `tests/test_docs.py` fails when a page is
out of date.

Usage:
    python scripts/write_docs_tables.py
"""

import os
import re

from flags_first import REPO, import_before_tensorflow

config = import_before_tensorflow("keras_gblend.experiment.config")
presets = import_before_tensorflow("keras_gblend.gblend.presets")

TABLES = {
    "docs/cli.md": ("flag table", config.flag_table),
    "docs/deviations.md": ("deviations table", presets.deviations_table),
}


def generated_block(name: str, text: str) -> str:
    """`text` between the markers of the generated table `name`."""
    return (f"<!-- generated: {name} (python scripts/write_docs_tables.py) -->"
            f"\n{text.rstrip()}\n<!-- end generated: {name} -->")


def write(page: str, name: str, text: str) -> bool:
    """Replaces the block `name` of `page` with `text`; True if it changed."""
    path = os.path.join(REPO, page)
    with open(path, encoding="utf-8") as f:
        old = f.read()
    pattern = re.compile(
        rf"<!-- generated: {re.escape(name)} .*?<!-- end generated: "
        rf"{re.escape(name)} -->", re.S)
    if not pattern.search(old):
        raise SystemExit(f"{page}: no block for the {name}; add the markers.")
    new = pattern.sub(lambda _: generated_block(name, text), old)
    if new != old:
        with open(path, "w", encoding="utf-8") as f:
            f.write(new)
    return new != old


if __name__ == "__main__":
    for page, (name, make) in TABLES.items():
        print(("wrote " if write(page, name, make()) else "up to date: ")
              + page)
