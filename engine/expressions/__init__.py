"""Restricted evaluator for scenario expressions and scripts: RestrictedPython with a deadline
(sandbox.py), run in child processes with a memory limit and a kill (isolation.py, child.py)."""
from .errors import ExpressionError
from .isolation import budget, evaluate, execute
from .sandbox import check_expression, check_script

__all__ = [
    "ExpressionError",
    "budget",
    "RestrictedEnvironment",
    "RestrictedScriptEngine",
    "check_expression",
    "check_script",
    "evaluate",
    "execute",
    "make_script_engine",
]

_SPIFF = ("RestrictedEnvironment", "RestrictedScriptEngine", "make_script_engine")


def __getattr__(name: str):
    # SpiffWorkflow is imported only by who needs its script engine: the sandbox's child
    # processes start without it.
    if name in _SPIFF:
        from . import spiff

        return getattr(spiff, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
