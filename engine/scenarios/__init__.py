"""Scenario folders: loading, validating, compiling and versioning."""
