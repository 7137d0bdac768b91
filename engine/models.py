"""Every model, imported in one place so that metadata and migrations see the whole schema."""
from engine.audit.models import AuditHead, AuditRecord  # noqa: F401
from engine.auth.models import User  # noqa: F401
from engine.db import Base  # noqa: F401
from engine.events.models import Event, Source  # noqa: F401
from engine.incidents.models import ProcessIncident  # noqa: F401
from engine.notify.models import Notification  # noqa: F401
from engine.org.models import OrgUnit  # noqa: F401
from engine.playbooks.models import Suggestion  # noqa: F401
from engine.processes.models import MessageWait, ProcessInstance  # noqa: F401
from engine.rules.models import RuleState  # noqa: F401
from engine.scenarios.models import ScenarioDraft, ScenarioVersion  # noqa: F401
from engine.sla.models import SlaClock  # noqa: F401
from engine.tasks.models import Task  # noqa: F401
from engine.timers.models import Timer  # noqa: F401
from engine.violations.models import RuleMatch, Violation  # noqa: F401
from engine.warnings.models import PublicWarning  # noqa: F401
