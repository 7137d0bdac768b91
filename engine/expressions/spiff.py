"""SpiffWorkflow script engine that runs gateway conditions and script tasks in the sandbox."""
from __future__ import annotations

import ast
from typing import Any

from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import (
    BasePythonScriptEngineEnvironment,
)

from engine.clock import SYSTEM_CLOCK, Clock

from .errors import ExpressionError
from .isolation import evaluate, run_script
from .sandbox import check_expression


class RestrictedEnvironment(BasePythonScriptEngineEnvironment):
    """Spiff environment whose evaluate/execute go through the restricted evaluator."""

    def __init__(self, environment_globals: dict[str, Any] | None = None,
                 timeout_s: float = 1.0):
        super().__init__(environment_globals)
        self.timeout_s = timeout_s

    def evaluate(self, expression, context, external_context=None):
        """Value of `expression` with task data (`context`) over the extra names."""
        names = {**self.globals, **(external_context or {}), **context}
        return evaluate(expression, names, self.timeout_s)

    def execute(self, script, context, external_context=None):
        """Run `script` on the task data `context`, updating it in place."""
        extra = {**self.globals, **(external_context or {})}
        run_script(script, context, self.timeout_s, extra)
        return True


class RestrictedScriptEngine(PythonScriptEngine):
    """PythonScriptEngine with sandbox validation and error messages that keep our reason."""

    # BPMN timers read "now" here (engine.processes.spiff), so a test can drive time.
    clock: Clock = SYSTEM_CLOCK

    def validate(self, expression):
        """Raise SyntaxError (DMN relies on it) or ExpressionError for a refused expression."""
        ast.parse(expression.strip(), mode="eval")
        check_expression(expression)

    def evaluate(self, task, expression, external_context=None):
        """Evaluate within the task's data; sandbox refusals name their reason."""
        try:
            return self.environment.evaluate(expression, task.data, external_context)
        except ExpressionError as exc:
            raise WorkflowTaskException(f"Error evaluating expression '{expression}': {exc}",
                                        task=task, exception=exc) from exc
        # Other exceptions keep Spiff's own handling.

    def get_error_line_number_and_content(self, script, err):
        """Line of a sandbox error comes from the error itself, not the traceback."""
        if isinstance(err, ExpressionError) and err.line:
            lines = script.splitlines()
            return err.line, lines[err.line - 1] if err.line <= len(lines) else ""
        return super().get_error_line_number_and_content(script, err)


def make_script_engine(timeout_s: float = 1.0, clock: Clock | None = None,
                       functions: dict[str, Any] | None = None) -> PythonScriptEngine:
    """A Spiff script engine that evaluates everything in the restricted sandbox, with extra
    `functions` visible to expressions (e.g. working-time arithmetic)."""
    engine = RestrictedScriptEngine(environment=RestrictedEnvironment(
        dict(functions or {}), timeout_s=timeout_s))
    engine.clock = clock or SYSTEM_CLOCK
    return engine
