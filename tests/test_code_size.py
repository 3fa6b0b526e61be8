"""The package stays readable: no module over 600 lines (all of it), no
class over 400 and no function over 80 lines of code (a docstring, which
Keras style makes long for public API, does not count; comments do). The
few kept longer are listed here with the reason."""

import ast
import os

PACKAGE = os.path.join(os.path.dirname(__file__), "..", "keras_gblend")
# name -> why it is longer than the limit.
KEPT_LONGER = {}


def _sizes():
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            source = open(path, encoding="utf-8").read()
            relative = os.path.relpath(path, PACKAGE)
            yield "module", relative, len(source.splitlines())
            tree = ast.parse(source)
            docstrings = {line for node in ast.walk(tree)
                          for line in _docstring_lines(node)}
            for node in ast.walk(tree):
                kind = ("class" if isinstance(node, ast.ClassDef) else
                        "function" if isinstance(
                            node, (ast.FunctionDef, ast.AsyncFunctionDef))
                        else None)
                if kind:
                    lines = set(range(node.lineno, node.end_lineno + 1))
                    yield kind, f"{relative}:{node.name}", len(
                        lines - docstrings)


def _docstring_lines(node):
    """The line numbers of `node`'s docstring, if it has one."""
    if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                         ast.AsyncFunctionDef)) and node.body:
        first = node.body[0]
        if isinstance(first, ast.Expr) and isinstance(
                getattr(first, "value", None), ast.Constant) and isinstance(
                first.value.value, str):
            return range(first.lineno, first.end_lineno + 1)
    return ()


def test_no_module_class_or_function_is_too_long():
    limits = {"module": 600, "class": 400, "function": 80}
    too_long = [f"{kind} {name}: {lines} lines (limit {limits[kind]})"
                for kind, name, lines in _sizes()
                if lines > limits[kind] and name not in KEPT_LONGER]
    assert not too_long, "\n".join(too_long)
