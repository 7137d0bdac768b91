"""IOC scenario engine: events → rules → BPMN processes → department tasks → audit."""
