"""Writes a benchmark's results: the markdown table and its JSON, each
stamped with the command that made it and the commit it ran on."""

import json
import os
import shlex
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def device_description() -> str:
    """The accelerator a run used, by name, or the CPU's core count (for a
    table's heading)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return f"CPU, {os.cpu_count()} cores"
    names = [tf.config.experimental.get_device_details(g).get(
        "device_name", g.name) for g in gpus]
    return (f"{len(gpus)} GPU ({', '.join(names)}), {os.cpu_count()} CPU "
            "cores")


def _shown(value: str) -> str:
    """`value` with every comma-separated absolute path shown without the
    machine it ran on: relative to the repository inside it, by its last
    component outside."""
    def one(part):
        if not os.path.isabs(part):
            return part
        path = os.path.normpath(part)
        if path == REPO or path.startswith(REPO + os.sep):
            return os.path.relpath(path, REPO)
        return os.path.basename(path)

    return ",".join(one(part) for part in value.split(","))


def command_line(argv=None) -> str:
    """The command as run: `python benchmarks/<script> <args>`, each
    argument (or `--flag=` value) naming an absolute path shown as
    `_shown` says."""
    argv = list(sys.argv if argv is None else argv)
    words = ["python", "benchmarks/" + os.path.basename(argv[0])]
    for arg in argv[1:]:
        if arg.startswith("-") and "=" in arg:
            flag, _, value = arg.partition("=")
            arg = f"{flag}={_shown(value)}"
        else:
            arg = _shown(arg)
        words.append(shlex.quote(arg))
    return " ".join(words)


def current_commit() -> str:
    """`git rev-parse --short HEAD` of this repository, with
    "+uncommitted changes" when `git status --porcelain` lists anything;
    "unknown" if git fails."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True,
                              text=True, check=True, timeout=60).stdout

    try:
        commit = git("rev-parse", "--short", "HEAD").strip()
        if not commit:
            return "unknown"
        if git("status", "--porcelain").strip():
            commit += "+uncommitted changes"
        return commit
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def stamp_line(command: str, commit: str) -> str:
    """The line written under a table's title."""
    return f"Made by: `{command}` · commit {commit}"


def write_results(out: str, markdown: str, data) -> None:
    """Writes `markdown` to `<out>.md` and `data` to `<out>.json`, making
    the folder if needed. The markdown gets a `Made by:` line under its
    first (title) line; a dict `data` gets "made_by" and "commit" keys."""
    command, commit = command_line(), current_commit()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    title, _, rest = markdown.rstrip("\n").partition("\n")
    text = title + "\n" + stamp_line(command, commit) + (
        "\n" + rest if rest else "")
    with open(out + ".md", "w") as f:
        f.write(text + "\n")
    if isinstance(data, dict):
        data = {"made_by": command, "commit": commit, **data}
    with open(out + ".json", "w") as f:
        json.dump(data, f, indent=2)
