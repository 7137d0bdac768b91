"""An event-based gateway takes exactly one branch, decided by time on the engine's clock.

A timer due before the message was received wins, otherwise the message wins; the losers are
cancelled and a late message changes nothing, whether or not the scheduler got there first.
"""
from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select

from engine.audit.models import AuditRecord
from engine.events import service as events
from engine.processes.models import ProcessInstance
from engine.timers.models import Timer
from tests.conftest import load_scenarios
from tests.scenario_files import HEAD, correlated_message, write_scenario
from tests.time_helpers import Drive, local

GATEWAY = HEAD + correlated_message("dossier.step_completed") + """
  <bpmn:process id="race" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:startEvent>
    <bpmn:eventBasedGateway id="gw"><bpmn:incoming>f0</bpmn:incoming>
      <bpmn:outgoing>fm</bpmn:outgoing><bpmn:outgoing>ft1</bpmn:outgoing>
      <bpmn:outgoing>ft2</bpmn:outgoing></bpmn:eventBasedGateway>
    <bpmn:intermediateCatchEvent id="answered"><bpmn:incoming>fm</bpmn:incoming>
      <bpmn:outgoing>fm2</bpmn:outgoing><bpmn:messageEventDefinition messageRef="msg"/>
    </bpmn:intermediateCatchEvent>
    <bpmn:intermediateCatchEvent id="remind"><bpmn:incoming>ft1</bpmn:incoming>
      <bpmn:outgoing>ft1b</bpmn:outgoing>
      <bpmn:timerEventDefinition><bpmn:timeDuration>"PT1H"</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:intermediateCatchEvent id="give_up"><bpmn:incoming>ft2</bpmn:incoming>
      <bpmn:outgoing>ft2b</bpmn:outgoing>
      <bpmn:timerEventDefinition><bpmn:timeDuration>"PT2H"</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:scriptTask id="mark_answered"><bpmn:incoming>fm2</bpmn:incoming>
      <bpmn:outgoing>fm3</bpmn:outgoing><bpmn:script>outcome = "answered"</bpmn:script></bpmn:scriptTask>
    <bpmn:scriptTask id="mark_reminded"><bpmn:incoming>ft1b</bpmn:incoming>
      <bpmn:outgoing>ft1c</bpmn:outgoing><bpmn:script>outcome = "reminded"</bpmn:script></bpmn:scriptTask>
    <bpmn:scriptTask id="mark_given_up"><bpmn:incoming>ft2b</bpmn:incoming>
      <bpmn:outgoing>ft2c</bpmn:outgoing><bpmn:script>outcome = "given_up"</bpmn:script></bpmn:scriptTask>
    <bpmn:endEvent id="end_answered"><bpmn:incoming>fm3</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="end_reminded"><bpmn:incoming>ft1c</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="end_given_up"><bpmn:incoming>ft2c</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="gw"/>
    <bpmn:sequenceFlow id="fm" sourceRef="gw" targetRef="answered"/>
    <bpmn:sequenceFlow id="ft1" sourceRef="gw" targetRef="remind"/>
    <bpmn:sequenceFlow id="ft2" sourceRef="gw" targetRef="give_up"/>
    <bpmn:sequenceFlow id="fm2" sourceRef="answered" targetRef="mark_answered"/>
    <bpmn:sequenceFlow id="ft1b" sourceRef="remind" targetRef="mark_reminded"/>
    <bpmn:sequenceFlow id="ft2b" sourceRef="give_up" targetRef="mark_given_up"/>
    <bpmn:sequenceFlow id="fm3" sourceRef="mark_answered" targetRef="end_answered"/>
    <bpmn:sequenceFlow id="ft1c" sourceRef="mark_reminded" targetRef="end_reminded"/>
    <bpmn:sequenceFlow id="ft2c" sourceRef="mark_given_up" targetRef="end_given_up"/>
  </bpmn:process>
</bpmn:definitions>
"""


def write_race_scenario(root, first: str = "PT1H", second: str = "PT2H") -> None:
    """The scenario the gateway tests (and the stress test) race: a message against two timers
    due `first` and `second` (ISO 8601 durations) after the gateway starts waiting."""
    bpmn = GATEWAY.replace('"PT1H"', f'"{first}"').replace('"PT2H"', f'"{second}"')
    write_scenario(root, "race", "dossier.returned", bpmn)


def branch_problems(session, instance_id: int) -> list[str]:
    """What is wrong with one instance of the race: more or fewer than one end, records after
    its end, an outcome that does not match the branch taken. Empty when all is well."""
    records = list(session.scalars(select(AuditRecord).where(
        AuditRecord.instance_id == instance_id).order_by(AuditRecord.seq)))
    actions = [r.action for r in records]
    ends = [r.details["event"] for r in records if r.action == "end_event.reached"]
    problems = []
    if len(ends) != 1:
        problems.append(f"instance {instance_id} reached {ends or 'no end'}")
    if actions.count("instance.ended") != 1:
        problems.append(f"instance {instance_id} ended {actions.count('instance.ended')} times")
    elif actions.index("instance.ended") != len(actions) - 1:
        after = actions[actions.index("instance.ended") + 1:]
        problems.append(f"instance {instance_id}: {after} recorded after instance.ended")
    instance = session.get(ProcessInstance, instance_id)
    # Each end event of the race scenarios is named after the outcome its branch sets.
    expected = ends[0].removeprefix("end_") if len(ends) == 1 else None
    if instance.status != "completed" or instance.data.get("outcome") != expected:
        problems.append(f"instance {instance_id} is {instance.status} with outcome "
                        f"{instance.data.get('outcome')!r}, its audit says {ends}")
    return problems


DOSSIER = {"dossier_id": "HS-777", "procedure": "1.004227", "unit": "phuong-thu-dau-mot"}
ANSWER = {**DOSSIER, "officer": "le.an", "step": "bo-sung"}


@pytest.fixture
def drive(ioc, source, tmp_path):
    write_race_scenario(tmp_path)
    load_scenarios(ioc, str(tmp_path))
    drive = Drive(ioc.db, ioc.vocabulary, local("2026-03-02 09:00"), source[0])
    drive.send("dossier.returned", DOSSIER)
    return drive


def _receive(drive, type_: str, data: dict) -> None:
    """Store an event at the clock's now without processing it (a worker gets to it later)."""
    result = events.ingest(drive.db, drive.source_id, [{
        "specversion": "1.0", "id": f"{type_}-{drive.clock.now().timestamp()}",
        "source": "/test/race", "type": type_, "time": drive.clock.now().isoformat(),
        "subject": data["dossier_id"], "data": data}], drive.vocabulary, drive.clock)
    assert result.accepted


def _outcome(drive) -> tuple[str, list[str]]:
    with drive.db.read() as s:
        [instance] = s.scalars(select(ProcessInstance)).all()
        assert branch_problems(s, instance.id) == []
        pending = s.scalars(select(Timer).where(Timer.status == "pending")).all()
        assert pending == []  # the losers were cancelled
        actions = [r.action for r in s.scalars(select(AuditRecord).where(
            AuditRecord.instance_id == instance.id).order_by(AuditRecord.seq))]
        return instance.data["outcome"], actions


def test_a_timer_due_before_the_message_arrived_wins_though_not_yet_fired(drive):
    drive.clock.set(local("2026-03-02 10:30"))  # the reminder is due at 10:00; nobody fired it
    _receive(drive, "dossier.step_completed", ANSWER)
    drive.ioc.pipeline.drain()  # the worker handles the message before any scheduler pass
    outcome, actions = _outcome(drive)
    assert outcome == "reminded"
    assert "message.late" in actions and "message.correlated" not in actions


def test_a_message_received_before_the_timer_wins_though_handled_after_it(drive):
    drive.clock.set(local("2026-03-02 09:59"))
    _receive(drive, "dossier.step_completed", ANSWER)
    drive.clock.set(local("2026-03-02 10:30"))  # handled after the reminder fell due
    drive.ioc.run_pending()
    outcome, actions = _outcome(drive)
    assert outcome == "answered"
    assert "timer.fired" not in actions


def test_a_message_at_the_very_moment_a_timer_falls_due_wins(drive):
    drive.clock.set(local("2026-03-02 10:00"))
    _receive(drive, "dossier.step_completed", ANSWER)
    drive.ioc.run_pending()
    assert _outcome(drive)[0] == "answered"


def test_a_message_at_the_very_moment_wins_though_the_scheduler_gets_there_first(drive):
    # A tie, whichever process is first: the worker (above) or the scheduler (here).
    drive.clock.set(local("2026-03-02 10:00"))
    _receive(drive, "dossier.step_completed", ANSWER)
    drive.clock.set(local("2026-03-02 10:30"))
    drive.ioc.scheduler.run_once()
    drive.ioc.run_pending()
    outcome, actions = _outcome(drive)
    assert outcome == "answered" and "timer.fired" not in actions


def test_a_late_scheduler_finding_both_timers_due_takes_the_sooner_one(drive):
    drive.at(local("2026-03-02 12:30"))  # one pass finds the 10:00 and the 11:00 timers due
    outcome, actions = _outcome(drive)
    assert outcome == "reminded"
    drive.send("dossier.step_completed", ANSWER)  # a message after the end changes nothing
    assert _outcome(drive) == (outcome, actions)


def test_the_scheduler_first_then_the_message_changes_nothing(drive):
    # The reminder is due at 10:00 and fires a second later (pipeline.MESSAGE_SETTLE: room for
    # a message received before 10:00 to commit), as the reminder.
    drive.at(local("2026-03-02 10:00:01"))
    outcome, actions = _outcome(drive)
    assert outcome == "reminded"
    drive.send("dossier.step_completed", ANSWER)
    assert _outcome(drive) == (outcome, actions)


def test_a_scheduler_pass_before_the_worker_leaves_an_earlier_message_its_win(drive):
    drive.clock.set(local("2026-03-02 09:59"))
    _receive(drive, "dossier.step_completed", ANSWER)  # received before the reminder's 10:00
    drive.clock.set(local("2026-03-02 10:30"))
    drive.ioc.scheduler.run_once()  # the scheduler gets there before any worker
    with drive.db.read() as s:
        [timer] = s.scalars(select(Timer).where(Timer.status == "pending")
                            .order_by(Timer.due_at)).all()[:1]
        assert datetime.fromisoformat(timer.payload["deferred_from"]) == local("2026-03-02 10:00")
    drive.ioc.run_pending()
    outcome, actions = _outcome(drive)
    assert outcome == "answered" and "timer.fired" not in actions
