"""Department tasks: BPMN user tasks assigned to a lane's department, claimed and completed."""
