"""Background runners (rq + Redis) for the same pipeline the embedded mode runs in-process."""
