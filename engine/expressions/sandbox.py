"""Restricted evaluation of scenario expressions and scripts, on top of RestrictedPython.

Layers: RestrictedPython's AST policy (extended below) refuses imports, underscore names
and attributes and rewrites attribute/item/iteration access into guard calls; the guards
in `guards.py` check each access at run time; only `SAFE_BUILTINS` are visible; a trace
function stops code that runs past its deadline. What runs here runs in a child process of
isolation.py, whose memory limit and kill bound what tracing cannot (one long C operation).
"""
from __future__ import annotations

import ast
import dis
import functools
import re
import sys
import textwrap
import time
from collections.abc import Mapping
from types import CodeType, FrameType, TracebackType
from typing import Any

from RestrictedPython import compile_restricted_eval, compile_restricted_exec
from RestrictedPython.transformer import RestrictingNodeTransformer, copy_locations

from .errors import ExpressionError
from .guards import DENIED_ATTRIBUTES, GUARDS, SAFE_BUILTINS

MAX_SOURCE = 50_000  # characters of one expression or script
EXPRESSION_FILE = "<expression>"
SCRIPT_FILE = "<script>"
_SANDBOX_FILES = frozenset({EXPRESSION_FILE, SCRIPT_FILE})

# Calling these is refused at compile time; they are not in the builtins either, so this
# only gives a clearer message. A data field may still be *named* e.g. `type`.
_FORBIDDEN_CALLS = frozenset({
    "open", "eval", "exec", "compile", "getattr", "setattr", "delattr", "hasattr",
    "globals", "locals", "vars", "type", "dir", "input", "breakpoint", "help", "format",
    "memoryview", "object", "super", "classmethod", "staticmethod", "property", "exit",
    "quit", "print",
})

_GUARDED_BINOPS = {ast.Add: "+", ast.Mult: "*", ast.Pow: "**", ast.LShift: "<<"}

_RESERVED = frozenset({"__builtins__", *GUARDS})


class _Policy(RestrictingNodeTransformer):
    """RestrictedPython's policy, stricter and with our own messages."""

    def check_name(self, node, name, allow_magic_methods=False):
        if name is None:
            return
        if name.startswith("_") and name != "_":
            self.error(node, f"name {name!r} is not allowed")
        elif name in ("print", "printed", "builtins", "breakpoint"):
            self.error(node, f"name {name!r} is not allowed")

    def visit_Name(self, node):
        if node.id in ("print", "printed"):
            # RestrictedPython would rewrite these into its print collector, which we lack.
            self.error(node, f"name {node.id!r} is not allowed")
            return node
        return super().visit_Name(node)

    def visit_Attribute(self, node):
        if node.attr.startswith("_"):
            self.error(node, f"attribute {node.attr!r} is not allowed")
        elif node.attr in ("format", "format_map"):
            self.error(node, f"str.{node.attr}() is not allowed (use an f-string)")
        elif node.attr in DENIED_ATTRIBUTES:
            self.error(node, f"attribute {node.attr!r} is not allowed")
        if not isinstance(node.ctx, ast.Load):
            self.error(node, "assigning or deleting attributes is not allowed")
        return super().visit_Attribute(node)

    def visit_Call(self, node):
        if isinstance(node.func, ast.Name) and node.func.id in _FORBIDDEN_CALLS:
            self.error(node, f"name {node.func.id!r} is not allowed")
        return super().visit_Call(node)

    def visit_BinOp(self, node):
        node = super().visit_BinOp(node)
        symbol = _GUARDED_BINOPS.get(type(node.op))
        if symbol is None:
            return node
        func = ast.Name("_binop_", ast.Load())
        call = ast.Call(func=func, args=[ast.Constant(symbol), node.left, node.right],
                        keywords=[])
        copy_locations(func, node)
        copy_locations(call, node)
        return call

    def visit_Import(self, node):
        self.error(node, "import is not allowed")

    def visit_ImportFrom(self, node):
        self.error(node, "import is not allowed")

    def visit_ClassDef(self, node):
        self.error(node, "class definitions are not allowed")

    # A script that could catch the timeout would run on: tracing stops once it raised.
    def visit_Try(self, node):
        self.error(node, "try statements are not allowed")

    def visit_TryStar(self, node):
        self.error(node, "try statements are not allowed")

    def visit_With(self, node):
        self.error(node, "with statements are not allowed")

    def visit_Global(self, node):
        self.error(node, "global statements are not allowed")


_RP_ERROR = re.compile(r"^Line (\d+|None): (.*)$", re.DOTALL)


_JUMPS = frozenset(dis.hasjrel) | frozenset(dis.hasjabs)


def _has_self_loop(code: CodeType) -> bool:
    """True if some jump targets itself (`while True: pass`), which emits no line events."""
    for instr in dis.get_instructions(code):
        if instr.opcode in _JUMPS and instr.argval == instr.offset:
            return True
    return any(isinstance(c, CodeType) and _has_self_loop(c) for c in code.co_consts)


@functools.lru_cache(maxsize=4096)
def _compile(src: str, mode: str) -> tuple[CodeType | None, bool, str | None, int | None]:
    """(code, needs_opcode_tracing, None, None) or (None, False, message, line); cached
    since the same condition runs thousands of times."""
    filename = EXPRESSION_FILE if mode == "eval" else SCRIPT_FILE
    if mode == "eval":
        # eval() tolerates surrounding whitespace; keep line numbers of the original text.
        body = src.lstrip()
        offset = src[: len(src) - len(body)].count("\n")
        body = body.rstrip()
    else:
        body, offset = textwrap.dedent(src), 0
    what = "expression" if mode == "eval" else "script"
    if not body:
        return None, False, f"empty {what}", None
    if len(src) > MAX_SOURCE:
        return None, False, f"the {what} is too long ({len(src):,} characters; limit " \
                            f"{MAX_SOURCE:,})", None
    try:
        tree = ast.parse(body, filename, mode)
        if offset:
            ast.increment_lineno(tree, offset)
        compile_mode = compile_restricted_eval if mode == "eval" else compile_restricted_exec
        result = compile_mode(tree, filename, policy=_Policy)
    except SyntaxError as exc:
        line = exc.lineno + offset if exc.lineno else None
        return None, False, f"syntax error: {exc.msg}", line
    except (RecursionError, MemoryError):
        # 1+1+…+1 in 200,000 terms nests as deep as it is long.
        return None, False, f"the {what} is nested too deeply to compile", None
    if result.errors:
        match = _RP_ERROR.match(result.errors[0])
        if match is None:
            return None, False, result.errors[0], None
        line = int(match.group(1)) if match.group(1) != "None" else None
        return None, False, match.group(2).rstrip("."), line
    return result.code, _has_self_loop(result.code), None, None


def _code(src: str, mode: str) -> tuple[CodeType, bool]:
    if not isinstance(src, str):
        raise ExpressionError(f"expected source text, got {type(src).__name__}")
    code, opcodes, message, line = _compile(src, mode)
    if code is None:
        raise ExpressionError(message or "invalid", line)
    return code, opcodes


def check_expression(src: str) -> None:
    """Compile an expression without running it; raise ExpressionError if refused."""
    _code(src, "eval")


def check_script(src: str) -> None:
    """Compile a script without running it; raise ExpressionError if refused."""
    _code(src, "exec")


class _Timeout(BaseException):
    """Raised by the tracer; a BaseException so that nothing on the way catches it."""

    def __init__(self, line: int | None):
        super().__init__(line)
        self.line = line


def _sandbox_line(frame: FrameType | None) -> int | None:
    while frame is not None:
        if frame.f_code.co_filename in _SANDBOX_FILES:
            return frame.f_lineno
        frame = frame.f_back
    return None


def _traceback_line(tb: TracebackType | None) -> int | None:
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename in _SANDBOX_FILES:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _run(compiled: tuple[CodeType, bool], namespace: dict, timeout_s: float) -> Any:
    """Evaluate code in namespace under a deadline, turning every failure into ExpressionError."""
    code, opcodes = compiled
    deadline = time.monotonic() + timeout_s
    clock = time.monotonic

    def tracer(frame: FrameType, event: str, arg: Any):
        if clock() > deadline:
            raise _Timeout(_sandbox_line(frame))
        if event != "call":
            return tracer
        if frame.f_code.co_filename not in _SANDBOX_FILES:
            # Guards and builtins written in Python are bounded; checking their entry suffices.
            return None
        if opcodes:
            # A jump to itself emits no line events; per-opcode events are slower, so only here.
            frame.f_trace_opcodes = True
        return tracer

    previous = sys.gettrace()
    try:
        sys.settrace(tracer)
        try:
            return eval(code, namespace)  # noqa: S307 - code was compiled by RestrictedPython
        finally:
            # First thing after the run, so the handlers below are not traced; this also
            # restores e.g. coverage's tracer.
            sys.settrace(previous)
    except _Timeout as exc:
        raise ExpressionError(f"timed out after {float(timeout_s)} s", exc.line) from None
    except ExpressionError as exc:
        raise ExpressionError(exc.message, exc.line or _traceback_line(exc.__traceback__)) \
            from None
    except RecursionError:
        raise ExpressionError("recursion too deep") from None
    except MemoryError:
        raise  # the child's limit: isolation.py answers it and replaces the child
    except Exception as exc:
        text = str(exc) if isinstance(exc, NameError) else f"{type(exc).__name__}: {exc}"
        raise ExpressionError(text, _traceback_line(exc.__traceback__)) from exc


def _namespace(*layers: Mapping[str, Any]) -> dict:
    namespace: dict[str, Any] = {}
    for layer in layers:
        namespace.update(layer)
    namespace.update(GUARDS)
    namespace["__builtins__"] = SAFE_BUILTINS
    return namespace


def evaluate_here(src: str, names: Mapping[str, Any], timeout_s: float = 1.0) -> Any:
    """Evaluate one expression in this process (isolation.py's child); ExpressionError on any
    failure."""
    return _run(_code(src, "eval"), _namespace(names), timeout_s)


def run_script_here(src: str, data: dict, timeout_s: float = 1.0,
                    extra: Mapping[str, Any] | None = None) -> None:
    """Run a script on `data` in this process (isolation.py's child), with `extra` names
    visible but not written back unless reassigned."""
    extra = extra or {}
    namespace = _namespace(extra, data)
    _run(_code(src, "exec"), namespace, timeout_s)
    updates: dict[str, Any] = {}
    for key, value in namespace.items():
        if key in _RESERVED or key == "_":  # `_` is the conventional throwaway name
            continue
        if key not in data and key in extra and value is extra[key]:
            continue
        changed = key not in data or value is not data[key]
        if changed or isinstance(value, (dict, list)):
            problem = _plain_problem(value)
            if problem:
                raise ExpressionError(f"variable {key!r} {problem}, which cannot be kept in "
                                      f"task data (only str, int, float, bool, None, list, dict)")
        updates[key] = value
    # Applied only after every check passed: a refused script leaves `data` untouched.
    for key in [k for k in data if k not in namespace and k not in _RESERVED]:
        del data[key]
    data.update(updates)


def _plain_problem(value: Any, seen: frozenset[int] = frozenset()) -> str | None:
    """None if value is a plain JSON value, else what is wrong with it."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return None
    if isinstance(value, (list, dict)):
        if id(value) in seen:
            return "contains itself"
        seen = seen | {id(value)}
        if isinstance(value, list):
            items = value
        else:
            if any(not isinstance(k, str) for k in value):
                return "has a non-string dict key"
            items = value.values()
        for item in items:
            problem = _plain_problem(item, seen)
            if problem:
                return problem
        return None
    return f"holds a {type(value).__name__}"
