"""Runtime guards that RestrictedPython's rewritten code calls, and the safe builtins.

Tracing cannot interrupt a single long C-level operation (``sum(range(10**12))``,
``"x" * 10**10``), so the operations that can blow up in one step check their result
size before running.
"""
from __future__ import annotations

import operator
import types
from typing import Any

from RestrictedPython.transformer import INSPECT_ATTRIBUTES

from .errors import ExpressionError

MAX_RANGE = 100_000
MAX_SIZE = 1_000_000  # characters of a string, items of a list/tuple
MAX_INT_BITS = 10_000

# Attributes refused even though they have no leading underscore.
DENIED_ATTRIBUTES = frozenset(INSPECT_ATTRIBUTES) | {
    "format",  # str.format("{0.__class__}") walks attributes inside the format string
    "format_map",
    "mro",
    "to_bytes",  # (1).to_bytes(10**10) allocates in one C call
}

_SEQUENCES = (str, bytes, bytearray, list, tuple)


def _too_big(what: str, limit: int, unit: str) -> ExpressionError:
    return ExpressionError(f"{what} is too large (limit {limit:,} {unit})")


def _check_size(n: Any, what: str) -> None:
    if isinstance(n, int) and n > MAX_SIZE:
        raise _too_big(what, MAX_SIZE, "items")


def _check_binop(op: str, a: Any, b: Any) -> None:
    """Refuse an operation whose result would be huge, before computing it."""
    ints = isinstance(a, int) and isinstance(b, int)
    if op == "+":
        if isinstance(a, _SEQUENCES) and isinstance(b, _SEQUENCES):
            _check_size(len(a) + len(b), "result of +")
    elif op == "*":
        if ints:
            if a.bit_length() + b.bit_length() > MAX_INT_BITS:
                raise _too_big("result of *", MAX_INT_BITS, "bits")
        elif isinstance(a, _SEQUENCES) and isinstance(b, int):
            _check_size(len(a) * b, "result of *")
        elif isinstance(b, _SEQUENCES) and isinstance(a, int):
            _check_size(len(b) * a, "result of *")
    elif op == "**":
        if ints and b > 0 and abs(a) > 1 and a.bit_length() * b > MAX_INT_BITS:
            raise _too_big("result of **", MAX_INT_BITS, "bits")
    elif op == "<<":
        if ints and a != 0 and a.bit_length() + b > MAX_INT_BITS:
            raise _too_big("result of <<", MAX_INT_BITS, "bits")


_BINOPS = {"+": operator.add, "*": operator.mul, "**": operator.pow, "<<": operator.lshift}

_INPLACE = {
    "+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv,
    "//=": operator.ifloordiv, "%=": operator.imod, "**=": operator.ipow,
    "<<=": operator.ilshift, ">>=": operator.irshift, "&=": operator.iand,
    "|=": operator.ior, "^=": operator.ixor, "@=": operator.imatmul,
}


def guarded_binop(op: str, a: Any, b: Any) -> Any:
    """`a <op> b` for +, *, ** and <<, refused when the result would be huge."""
    _check_binop(op, a, b)
    return _BINOPS[op](a, b)


def guarded_inplacevar(op: str, a: Any, b: Any) -> Any:
    """`a <op>= b` (RestrictedPython's _inplacevar_), with the same size checks."""
    _check_binop(op[:-1], a, b)
    return _INPLACE[op](a, b)


def _sized_text_method(obj: str | bytes, name: str, method: Any) -> Any:
    """Wrap the str/bytes methods whose result size is set by an argument."""
    if name in ("ljust", "rjust", "center", "zfill"):
        def padded(width, *args):
            _check_size(width, f"{name}() width")
            return method(width, *args)
        return padded
    if name == "expandtabs":
        def expanded(tabsize=8):
            tab = "\t" if isinstance(obj, str) else b"\t"
            if isinstance(tabsize, int):
                _check_size(len(obj) + obj.count(tab) * tabsize, "result of expandtabs()")
            return method(tabsize)
        return expanded
    if name == "replace":
        def replaced(old, new, count=-1):
            if isinstance(old, type(obj)) and isinstance(new, type(obj)):
                hits = len(obj) + 1 if not old else obj.count(old)
                if isinstance(count, int) and count >= 0:
                    hits = min(hits, count)
                _check_size(len(obj) + hits * (len(new) - len(old)), "result of replace()")
            return method(old, new, count)
        return replaced
    if name == "join":
        def joined(iterable):
            items = list(iterable)
            total = sum(len(x) for x in items if isinstance(x, (str, bytes)))
            _check_size(total + len(obj) * max(len(items) - 1, 0), "result of join()")
            return method(items)
        return joined
    return method


_SIZED_METHODS = frozenset({"ljust", "rjust", "center", "zfill", "expandtabs", "replace", "join"})


def guarded_getattr(obj: Any, name: str) -> Any:
    """`obj.name` for data values: no underscore names, no types or modules."""
    if not isinstance(name, str) or name.startswith("_") or name in DENIED_ATTRIBUTES:
        raise ExpressionError(f"attribute {name!r} is not allowed")
    if isinstance(obj, (type, types.ModuleType)):
        # Types and modules lead to the rest of the interpreter (str.mro() -> object).
        raise ExpressionError(f"attributes of {obj.__name__!r} are not allowed")
    value = getattr(obj, name)
    if name in _SIZED_METHODS and isinstance(obj, (str, bytes)):
        return _sized_text_method(obj, name, value)
    return value


def guarded_getitem(obj: Any, key: Any) -> Any:
    """`obj[key]`."""
    return obj[key]


def guarded_write(obj: Any) -> Any:
    """Target of `obj[key] = v` / `del obj[key]`: only dicts and lists may change."""
    if isinstance(obj, (dict, list)):
        return obj
    raise ExpressionError(f"a {type(obj).__name__} cannot be modified")


def guarded_apply(func: Any, *args: Any, **kwargs: Any) -> Any:
    """`func(*args, **kwargs)`; the arguments are plain values already guarded."""
    return func(*args, **kwargs)


def unpack_sequence(it: Any, spec: dict, getiter: Any) -> list:
    """`a, (b, c) = it`, unpacking nested targets through the iteration guard."""
    items = list(getiter(it))
    if len(items) >= spec["min_len"]:
        for index, child_spec in spec["childs"]:
            items[index] = unpack_sequence(items[index], child_spec, getiter)
    return items


def iter_unpack_sequence(it: Any, spec: dict, getiter: Any):
    """`for a, b in it`: unpack each item as `unpack_sequence` does."""
    for item in getiter(it):
        yield unpack_sequence(item, spec, getiter)


def safe_range(*args: int) -> range:
    """`range()` limited to MAX_RANGE items."""
    r = range(*args)
    try:
        n: int | None = len(r)
    except OverflowError:  # more items than fit in a C ssize_t
        n = None
    if n is None or n > MAX_RANGE:
        size = f"{n:,} items" if n is not None else "more items than memory holds"
        raise ExpressionError(f"range() of {size} is too large (limit {MAX_RANGE:,})")
    return r


def safe_sum(iterable: Any, start: Any = 0) -> Any:
    """`sum()` of numbers only: adding lists in C would be quadratic and uninterruptible."""
    if not isinstance(start, (int, float)):
        raise ExpressionError("sum() only adds numbers")
    return sum(iterable, start)


SAFE_BUILTINS: dict[str, Any] = {
    "len": len, "min": min, "max": max, "sum": safe_sum, "abs": abs, "round": round,
    "sorted": sorted, "any": any, "all": all, "str": str, "int": int, "float": float,
    "bool": bool, "list": list, "dict": dict, "set": set, "tuple": tuple,
    "range": safe_range, "enumerate": enumerate, "zip": zip,
    "True": True, "False": False, "None": None,
}

# Names RestrictedPython's rewritten code calls; `_binop_` is our own addition.
GUARDS: dict[str, Any] = {
    "_getattr_": guarded_getattr,
    "_getitem_": guarded_getitem,
    "_getiter_": iter,
    "_write_": guarded_write,
    "_inplacevar_": guarded_inplacevar,
    "_unpack_sequence_": unpack_sequence,
    "_iter_unpack_sequence_": iter_unpack_sequence,
    "_apply_": guarded_apply,
    "_binop_": guarded_binop,
}
