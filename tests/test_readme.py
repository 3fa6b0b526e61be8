"""Every Python snippet of README.md runs as written, alone, on a tiny
budget (`epochs=` shortened)."""

import os
import re
import subprocess
import sys

import pytest

README = os.path.join(os.path.dirname(__file__), "..", "README.md")


def python_snippets():
    text = open(README, encoding="utf-8").read()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.parametrize("index", range(len(python_snippets())))
def test_each_readme_snippet_runs_on_its_own(tmp_path, index):
    """Every snippet (the quickstart, the OGM-GE one), alone in a fresh
    process, prints an accuracy well above chance (ten classes: 0.1)."""
    program = re.sub(r"epochs=\d+", "epochs=3", python_snippets()[index])
    result = subprocess.run(
        [sys.executable, "-c", program], cwd=tmp_path, capture_output=True,
        text=True, timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
             "MPLBACKEND": "Agg"})
    assert result.returncode == 0, result.stderr[-3000:]
    printed = re.findall(r"^[\w -]*accuracy[\w ,]*: ([0-9.]+)",
                         result.stdout, flags=re.M)
    assert printed and float(printed[0]) > 0.5, result.stdout[-2000:]
    if "weights.png" in python_snippets()[index]:
        assert (tmp_path / "weights.png").exists()


def test_the_readme_has_the_quickstart_and_the_ogm_ge_snippet():
    snippets = python_snippets()
    assert any("GBlendCallback" in s for s in snippets)
    assert any("OGMGE" in s for s in snippets)
