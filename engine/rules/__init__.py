"""Detection rules: inspectors' rule files compiled to durable-rules and matched against events."""
from engine.rules.compiler import compile_ruleset, to_message
from engine.rules.format import (
    Action,
    Condition,
    Correlation,
    FieldTest,
    Pattern,
    Rule,
    RuleSet,
    parse_rules,
    render,
)
from engine.rules.matcher import DuplicateMessage, Match, RuleMatcher

__all__ = [
    "Action", "Condition", "Correlation", "FieldTest", "Pattern", "Rule", "RuleSet",
    "parse_rules", "render", "compile_ruleset", "to_message",
    "RuleMatcher", "Match", "DuplicateMessage",
]
