"""Notifications: an outbox of messages to people, delivered by channels (in-app for now)."""
