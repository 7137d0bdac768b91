"""The one error type of the restricted evaluator."""
from __future__ import annotations


class ExpressionError(Exception):
    """An expression or script was refused, failed, or ran out of time."""

    def __init__(self, message: str, line: int | None = None):
        self.message = message
        self.line = line
        # args[0] is the readable text: SpiffWorkflow builds its own message from it.
        super().__init__(self._text())

    def _text(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message

    def __str__(self) -> str:
        return self._text()
