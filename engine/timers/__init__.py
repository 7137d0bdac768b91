"""Durable timers: stored with their due time, fired once by a scheduler pass."""
