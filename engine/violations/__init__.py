"""Violations and incidents opened by rule matches."""
