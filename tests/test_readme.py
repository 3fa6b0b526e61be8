"""Every Python snippet of README.md runs as written, on a tiny budget
(`epochs=` shortened), in order, in one namespace."""

import os
import re
import subprocess
import sys

README = os.path.join(os.path.dirname(__file__), "..", "README.md")


def python_snippets():
    text = open(README, encoding="utf-8").read()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_python_snippets_run(tmp_path):
    snippets = python_snippets()
    assert len(snippets) >= 2  # the quickstart and the OGM-GE snippet
    program = "\n".join(
        re.sub(r"epochs=\d+", "epochs=3", snippet) for snippet in snippets)
    program += "\nprint('README OK', sorted(model.blend_weights))\n"
    result = subprocess.run(
        [sys.executable, "-c", program], cwd=tmp_path, capture_output=True,
        text=True, timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
             "MPLBACKEND": "Agg"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "README OK ['fac', 'joint', 'mor']" in result.stdout
    assert (tmp_path / "weights.png").exists()
