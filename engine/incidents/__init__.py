"""Process incidents: a scenario's step that failed, kept with its error, element and input, so
that the other scenarios go on, inspectors see it, and it can be tried again once fixed.

Not to be confused with an *incident* opened by a rule (a violation of kind `incident`, "sự
cố"): a process incident ("lỗi quy trình") is the engine's own failure to run a step.
"""
