"""Restricted evaluator for scenario expressions and scripts (RestrictedPython + a deadline)."""
from .errors import ExpressionError
from .sandbox import check_expression, check_script, evaluate, execute
from .spiff import RestrictedEnvironment, RestrictedScriptEngine, make_script_engine

__all__ = [
    "ExpressionError",
    "RestrictedEnvironment",
    "RestrictedScriptEngine",
    "check_expression",
    "check_script",
    "evaluate",
    "execute",
    "make_script_engine",
]
