"""BPMN process instances run by SpiffWorkflow: start, step, correlate messages, persist."""
