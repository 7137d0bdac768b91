"""The event store: CloudEvents in, validated, stored once, processed in order."""
