"""The docs are true: every Python snippet of README.md and docs/ runs as
written, alone (on a tiny budget: `epochs=` shortened), the generated tables
match the code they come from, every relative link leads to a file, and the
README stays short."""

import glob
import os
import re
import subprocess
import sys

import pytest

from keras_gblend.experiment.config import flag_table
from keras_gblend.gblend.presets import deviations_table

REPO = os.path.join(os.path.dirname(__file__), "..")
PAGES = [os.path.join(REPO, "README.md")] + sorted(
    glob.glob(os.path.join(REPO, "docs", "*.md")))


def _snippets():
    found = []
    for page in PAGES:
        text = open(page, encoding="utf-8").read()
        for index, code in enumerate(
                re.findall(r"```python\n(.*?)```", text, flags=re.S)):
            found.append(pytest.param(
                code, id=f"{os.path.relpath(page, REPO)}#{index}"))
    return found


@pytest.mark.parametrize("code", _snippets())
def test_every_snippet_runs_on_its_own(tmp_path, code):
    """Each snippet, alone in a fresh process, prints an accuracy well
    above chance (ten classes: 0.1) when it prints one."""
    program = re.sub(r"epochs=\d+", "epochs=3", code)
    result = subprocess.run(
        [sys.executable, "-c", program], cwd=tmp_path, capture_output=True,
        text=True, timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "MPLBACKEND": "Agg"})
    assert result.returncode == 0, result.stderr[-3000:]
    printed = re.findall(r"^[\w -]*accuracy[\w ,]*: ([0-9.]+)",
                         result.stdout, flags=re.M)
    if "print(" in code and "accuracy" in code:
        assert printed and float(printed[0]) > 0.5, result.stdout[-2000:]
    if "weights.png" in code:
        assert (tmp_path / "weights.png").exists()


def test_the_readme_has_the_quickstart_and_the_ogm_ge_snippet():
    readme = open(PAGES[0], encoding="utf-8").read()
    snippets = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert any("GBlendCallback" in s for s in snippets)
    assert any("OGMGE" in s for s in snippets)
    assert len(readme.splitlines()) <= 300


@pytest.mark.parametrize("page, name, make", [
    ("docs/cli.md", "flag table", flag_table),
    ("docs/deviations.md", "deviations table", deviations_table),
])
def test_generated_tables_match_the_code(page, name, make):
    text = open(os.path.join(REPO, page), encoding="utf-8").read()
    block = re.search(rf"<!-- generated: {re.escape(name)} [^\n]*-->\n(.*?)\n"
                      rf"<!-- end generated: {re.escape(name)} -->", text,
                      flags=re.S)
    assert block, f"{page} has no generated {name}"
    assert block.group(1) == make().rstrip(), (
        f"{page} is out of date: run python scripts/write_docs_tables.py")


def test_relative_links_lead_to_files():
    broken = []
    for page in PAGES:
        text = open(page, encoding="utf-8").read()
        for target in re.findall(r"\]\(([^)#\s]+)", text):
            if re.match(r"[a-z]+://", target):
                continue
            path = os.path.normpath(os.path.join(os.path.dirname(page), target))
            if not os.path.exists(path):
                broken.append(f"{os.path.relpath(page, REPO)} -> {target}")
    assert not broken, broken
