"""SLAs: clocks on tasks and instances, counted in working time, with escalation chains."""
