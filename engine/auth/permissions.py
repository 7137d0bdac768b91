"""What each role may do. Department scoping (a civil servant sees only their department's
tasks, a department head its cases) is applied by the services on top of these permissions:
`*.any_department` lifts it (engine/tasks/service.py, engine/processes/scope.py)."""
from __future__ import annotations

ROLES = ("inspector", "civil_servant", "department_head", "commander", "auditor", "admin")
ROLE_NAMES = {
    "inspector": ("Thanh tra / cán bộ giám sát", "Inspector"),
    "civil_servant": ("Cán bộ, công chức", "Civil servant"),
    "department_head": ("Lãnh đạo sở / phòng", "Department head"),
    "commander": ("Chỉ huy", "Commander"),
    "auditor": ("Kiểm tra nội vụ", "Auditor"),
    "admin": ("Quản trị hệ thống", "Administrator"),
}

_READ_CASES = {"violations.read", "instances.read", "sla.read"}
_EVERY_CASE = _READ_CASES | {"cases.any_department"}
PERMISSIONS: dict[str, set[str]] = {
    "inspector": _EVERY_CASE | {"scenarios.read", "scenarios.design", "events.read",
                                "sla.any_department", "incidents.read", "incidents.manage"},
    "civil_servant": {"tasks.read", "tasks.claim", "tasks.complete", "instances.own"},
    "department_head": {"tasks.read", "tasks.claim", "tasks.complete", "tasks.assign"}
    | _READ_CASES,
    "commander": _EVERY_CASE | {"tasks.read", "tasks.any_department", "scenarios.read",
                                "sla.any_department", "playbooks.run"},
    "auditor": _EVERY_CASE | {"audit.read", "audit.findings", "tasks.read", "tasks.any_department",
                              "sla.any_department", "incidents.read",
                              "scenarios.read", "events.read"},
    "admin": _EVERY_CASE | {"tasks.read", "tasks.claim", "tasks.complete", "tasks.assign",
                            "tasks.any_department",
                            "sla.any_department", "sources.read", "sources.manage",
                            "users.manage",
                            "audit.read", "scenarios.read", "scenarios.design", "events.read",
                            "events.dead_letters", "incidents.read", "incidents.manage"},
}


def allowed(role: str, permission: str) -> bool:
    """True when `role` has `permission`."""
    return permission in PERMISSIONS.get(role, set())
