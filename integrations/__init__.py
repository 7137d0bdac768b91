"""Integrations: adapters that turn each source system's input into events."""
