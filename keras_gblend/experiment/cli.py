"""Running the absl-flag scripts: flags before TensorFlow, one-line errors.

`run(main)` parses the flags before anything imports TensorFlow, so
`--help` and a bad flag answer at once. Every error a user can cause is one
line, `<script>: error: <message>`: a bad flag or setting exits with status
2 (`UsageError`), a run that cannot go on (bad data, a diverged run, a file
that cannot be written) with status 1 (`ScriptError`), Ctrl-C with 130.
`--help` prints the script's flags and exits 0. Ctrl-C is also recorded
(`interrupted()`), so a training loop can raise it again where Python lost
it (a `KeyboardInterrupt` raised inside a `__del__` is printed and
dropped). TensorFlow's start-up lines
are kept from the terminal unless the user asks for them
(`TF_CPP_MIN_LOG_LEVEL` below 3).

`define_flags` makes the flags from `ExperimentConfig`'s declarations, so a
flag accepts exactly what `ExperimentConfig.validate` accepts.

This module imports only the standard library and absl: the scripts load it
before TensorFlow.
"""

import contextlib
import dataclasses
import os
import signal
import sys
import tempfile
from typing import Callable, Dict, Iterable, List, Mapping, Optional

from absl import app, flags

HELP_FLAGS = ("--help", "-h", "-?", "--helpshort", "--helpfull")
NONE_WORDS = ("none", "None", "null")


class ScriptError(Exception):
    """An error a script reports as one line, naming the flag or file."""


_ctrl_c = {"pressed": False}


def interrupted() -> bool:
    """Whether Ctrl-C was pressed while `run` ran the script, even if the
    `KeyboardInterrupt` it raised was swallowed on the way."""
    return _ctrl_c["pressed"]


def _on_ctrl_c(signum, frame):
    _ctrl_c["pressed"] = True
    raise KeyboardInterrupt


def _script() -> str:
    return os.path.basename(sys.argv[0]) if sys.argv else "script"


def fail(message: str, status: int) -> None:
    """Prints `<script>: error: <message>` (its first line) and exits."""
    first = str(message).strip().splitlines()
    print(f"{_script()}: error: {first[0] if first else 'failed'}",
          file=sys.stderr)
    sys.exit(status)


def _parse_flags(argv: List[str]) -> List[str]:
    """absl's parser, with `--help` exiting 0 and a bad flag exiting 2 with
    one line (absl prints the whole help and exits 1)."""
    if any(arg in HELP_FLAGS for arg in argv[1:]):
        app.usage(shorthelp="--helpfull" not in argv, writeto_stdout=True)
        sys.exit(0)
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        fail(_flag_error_text(error), 2)


def _flag_error_text(error: flags.Error) -> str:
    """`--name: reason` from absl's `flag --name=value: reason` (or its
    unknown-flag message)."""
    if isinstance(error, flags.UnrecognizedFlagError):
        tip = str(error).partition(". Did you mean: ")[2].rstrip(" ?")
        close = f" (did you mean --{tip}?)" if tip else ""
        return f"--{error.flagname}: unknown flag{close}; --help lists them."
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if text.startswith("flag --") and ": " in text:
        flag, reason = text[len("flag "):].split(": ", 1)
        return f"{flag.split('=', 1)[0]}: {reason}"
    return text


def run(main: Callable[[List[str]], None],
        on_interrupt: Optional[Callable[[], str]] = None) -> None:
    """`absl.app.run(main)` with the rules of this module.

    Args:
        main: the script's `main(argv)`.
        on_interrupt: returns the line to print after Ctrl-C (e.g. where a
            rerun resumes); default "interrupted".
    """
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3") == "3":
        # Unless the user asked for TensorFlow's lines (a level below 3).
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        os.environ["_KERAS_GBLEND_QUIET"] = "1"

    def guarded(argv):
        # A SIGINT the caller ignores (a background job) stays ignored.
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, _on_ctrl_c)
        try:
            main(argv)
        except app.UsageError as error:
            fail(str(error), 2)
        except ScriptError as error:
            fail(str(error), 1)
        except KeyboardInterrupt:
            message = "interrupted"
            if on_interrupt is not None:
                try:
                    message = on_interrupt()
                except Exception:  # noqa: BLE001 - the interrupt is the news
                    pass
            fail(message, 130)

    app.run(guarded, flags_parser=_parse_flags)


@contextlib.contextmanager
def quiet_tensorflow():
    """Keeps the lines TensorFlow's C++ runtime prints while it starts
    (CUDA probes, CPU features) from the terminal, unless the user asked
    for them (`TF_CPP_MIN_LOG_LEVEL` below 3). Import TensorFlow inside it;
    what was kept back is printed if the import fails."""
    if os.environ.get("_KERAS_GBLEND_QUIET") != "1":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as kept:
        os.dup2(kept.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            kept.seek(0)
            sys.stderr.write(kept.read().decode(errors="replace"))
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


class _SettingParser(flags.ArgumentParser):
    """Parses one `ExperimentConfig` setting from its flag text and checks
    it as `validate` does."""

    def __init__(self, field: dataclasses.Field, check: Callable):
        self.field = field
        self.check = check
        info = field.metadata
        self.syntactic_help = _syntax(info)

    def parse(self, argument):
        value = self.convert(argument)
        try:
            self.check(self.field, value)
        except ValueError as error:
            # "name: reason" -> "reason": absl names the flag itself.
            raise ValueError(str(error).split(": ", 1)[-1]) from None
        return value

    def convert(self, argument):
        info = self.field.metadata
        if not isinstance(argument, str):
            return tuple(argument) if info["kind"] == "list" else argument
        text = argument.strip()
        if info["optional"] and text in NONE_WORDS:
            return None
        if (info["preset"] and text == "preset") or text in info["words"]:
            return text
        kind = info["kind"]
        try:
            if kind == "int":
                return int(text)
            if kind == "float":
                return float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a{'n integer' if kind == 'int' else ' number'}.") from None
        if kind == "bool":
            if text.lower() in ("true", "1", "yes"):
                return True
            if text.lower() in ("false", "0", "no"):
                return False
            raise ValueError(f"{text!r} is not true or false.")
        if kind == "list":
            return tuple(part.strip() for part in text.split(",") if part.strip())
        return text

    def flag_type(self):
        return self.field.metadata["kind"]


def _syntax(info) -> str:
    parts = []
    if info["choices"]:
        parts.append("|".join(map(str, info["choices"])))
    if info["preset"]:
        parts.append("preset")
    parts += list(info["words"])
    if info["optional"]:
        parts.append("none")
    return " or ".join(parts)


def setting_value(field: dataclasses.Field, text: str):
    """A setting's value read from its text as its flag reads it (`none`,
    `preset`, `true`/`false`, numbers, comma lists), unchecked.

    Raises:
        ValueError: the text is not of the setting's kind.
    """
    return _SettingParser(field, check=None).convert(text)


class _SettingSerializer(flags.ArgumentSerializer):
    def serialize(self, value):
        if value is None:
            return "none"
        if isinstance(value, (list, tuple)):
            return ",".join(value)
        return str(value).lower() if isinstance(value, bool) else str(value)


def define_flags(fields: Iterable[dataclasses.Field], check: Callable,
                 renamed: Optional[Mapping[str, str]] = None,
                 defaults: Optional[Mapping[str, object]] = None,
                 module_name: Optional[str] = None) -> None:
    """Defines one absl flag per setting: its help, its default and a parser
    that accepts exactly what `check(field, value)` accepts.

    Args:
        fields: `ExperimentConfig` fields (`dataclasses.fields`).
        check: `experiment_config.check_value`.
        renamed: `{setting: flag name}` where a script names it otherwise.
        defaults: `{setting: default}` where a script's default differs.
        module_name: the module the flags belong to (for `--help`).
    """
    renamed, defaults = dict(renamed or {}), dict(defaults or {})
    for field in fields:
        default = defaults.get(field.name, field.metadata["flag_default"])
        flag = flags.Flag(
            _SettingParser(field, check), _SettingSerializer(),
            renamed.get(field.name, field.name), default,
            field.metadata["help"],
            boolean=field.metadata["kind"] == "bool")
        flags.DEFINE_flag(flag, module_name=module_name or sys.argv[0])


def flag_values(fields: Iterable[dataclasses.Field],
                renamed: Optional[Mapping[str, str]] = None) -> Dict:
    """`{setting: value}` of the flags `define_flags` made."""
    renamed = dict(renamed or {})
    return {f.name: flags.FLAGS[renamed.get(f.name, f.name)].value
            for f in fields}


def check_writable(path: str, flag: str) -> None:
    """Raises `UsageError` naming `flag` if the file `path` cannot be
    written (its folder is missing or read-only, or it is a folder)."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise app.UsageError(f"--{flag}: {path} is a folder, not a file.")
    if not os.path.isdir(folder):
        raise app.UsageError(f"--{flag}: folder {folder} does not exist.")
    if not os.access(folder, os.W_OK):
        raise app.UsageError(f"--{flag}: folder {folder} is not writable.")


def prepare_folder(path: str, flag: str) -> None:
    """Creates the folder `path` and writes a file in it, raising
    `UsageError` naming `flag` and the reason when either fails (under a
    file, in a read-only place, /proc, a full disk)."""
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write_check"):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise app.UsageError(
            f"--{flag}: cannot write to {path} ({reason}).") from None
