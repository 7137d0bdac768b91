"""BPMN timers and SLA pauses through the real runtime, scheduler and database, on a moved clock."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.audit.models import AuditRecord
from engine.timers.models import Timer
from tests.conftest import load_scenarios
from tests.scenario_files import HEAD, correlated_message, write_scenario
from tests.time_helpers import Drive, local

REMINDERS = HEAD + """
  <bpmn:process id="reminders" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="handle" name="Xử lý"><bpmn:extensionElements><camunda:formData><camunda:formField id="remark" type="string"/></camunda:formData></bpmn:extensionElements><bpmn:incoming>f1</bpmn:incoming>
      <bpmn:outgoing>f2</bpmn:outgoing></bpmn:userTask>
    <bpmn:boundaryEvent id="hourly" attachedToRef="handle" cancelActivity="false">
      <bpmn:outgoing>f3</bpmn:outgoing>
      <bpmn:timerEventDefinition><bpmn:timeCycle>"R2/PT1H"</bpmn:timeCycle></bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:scriptTask id="remind"><bpmn:incoming>f3</bpmn:incoming><bpmn:outgoing>f4</bpmn:outgoing>
      <bpmn:script>reminded = True</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:endEvent id="reminded"><bpmn:incoming>f4</bpmn:incoming></bpmn:endEvent>
    <bpmn:boundaryEvent id="give_up" attachedToRef="handle" cancelActivity="true">
      <bpmn:outgoing>f5</bpmn:outgoing>
      <bpmn:timerEventDefinition><bpmn:timeDuration>"PT4H"</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:scriptTask id="close_late"><bpmn:incoming>f5</bpmn:incoming><bpmn:outgoing>f6</bpmn:outgoing>
      <bpmn:script>outcome = "timed_out"</bpmn:script></bpmn:scriptTask>
    <bpmn:endEvent id="late"><bpmn:incoming>f6</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="done"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="handle"/>
    <bpmn:sequenceFlow id="f2" sourceRef="handle" targetRef="done"/>
    <bpmn:sequenceFlow id="f3" sourceRef="hourly" targetRef="remind"/>
    <bpmn:sequenceFlow id="f4" sourceRef="remind" targetRef="reminded"/>
    <bpmn:sequenceFlow id="f5" sourceRef="give_up" targetRef="close_late"/>
    <bpmn:sequenceFlow id="f6" sourceRef="close_late" targetRef="late"/>
  </bpmn:process>
</bpmn:definitions>
"""

SUPPLEMENT = HEAD + correlated_message("dossier.step_completed") + """
  <bpmn:process id="supplement" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:intermediateCatchEvent id="wait_citizen"><bpmn:incoming>f1</bpmn:incoming>
      <bpmn:outgoing>f2</bpmn:outgoing><bpmn:messageEventDefinition messageRef="msg"/>
    </bpmn:intermediateCatchEvent>
    <bpmn:userTask id="review" name="Thẩm định"><bpmn:extensionElements><camunda:formData><camunda:formField id="remark" type="string"/></camunda:formData></bpmn:extensionElements><bpmn:incoming>f2</bpmn:incoming>
      <bpmn:outgoing>f3</bpmn:outgoing></bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait_citizen"/>
    <bpmn:sequenceFlow id="f2" sourceRef="wait_citizen" targetRef="review"/>
    <bpmn:sequenceFlow id="f3" sourceRef="review" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


SIMPLE = HEAD + """
  <bpmn:process id="simple" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="handle" name="Xử lý"><bpmn:extensionElements><camunda:formData><camunda:formField id="remark" type="string"/></camunda:formData></bpmn:extensionElements><bpmn:incoming>f1</bpmn:incoming>
      <bpmn:outgoing>f2</bpmn:outgoing></bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="handle"/>
    <bpmn:sequenceFlow id="f2" sourceRef="handle" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


@pytest.fixture
def drive(ioc, source, tmp_path):
    write_scenario(tmp_path, "reminders", "dossier.returned", REMINDERS)
    write_scenario(tmp_path, "supplement", "dossier.supplement_requested", SUPPLEMENT, sla="""\
        slas:
          - key: dossier
            name: {vi: Giải quyết hồ sơ, en: Settle the dossier}
            measures: instance
            target: {working_hours: 8}
            pause_while: [wait_citizen]
            levels: [{at: 100%, notify: department}]
        """)
    write_scenario(tmp_path, "reassigning", "dossier.completed", SIMPLE, sla="""\
        slas:
          - key: handle
            name: {vi: Xử lý, en: Handle}
            measures: task
            task: handle
            target: 2h
            levels:
              - {at: 50%, notify: assignee}
              - {at: 100%, reassign: van-phong-ubnd}
        """)
    load_scenarios(ioc, str(tmp_path))
    return Drive(ioc.db, ioc.vocabulary, local("2026-03-02 09:00"), source[0])


DOSSIER = {"dossier_id": "HS-900", "procedure": "1.004227", "unit": "phuong-thu-dau-mot"}


def _fired(drive) -> list[list[str]]:
    with drive.db.read() as s:
        return [r.details["timers"] for r in s.scalars(
            select(AuditRecord).where(AuditRecord.action == "timer.fired").order_by(AuditRecord.seq))]


def test_boundary_timers_cycle_and_interrupt_once_each_across_a_restart(drive):
    drive.send("dossier.returned", DOSSIER)
    [task] = drive.tasks("handle")
    drive.at(local("2026-03-02 09:59"))
    assert _fired(drive) == []
    drive.at(local("2026-03-02 10:00"))  # first reminder; the task stays open
    assert _fired(drive) == [["hourly"]]
    assert drive.tasks("handle")[0].status == "open"
    drive.restart()
    drive.at(local("2026-03-02 11:30"))  # second and last reminder, fired by the new process
    drive.at(local("2026-03-02 12:30"))
    assert _fired(drive) == [["hourly"], ["hourly"]]
    with drive.db.read() as s:  # each occurrence ran the reminder branch once
        assert [r.details["task"] for r in s.scalars(select(AuditRecord).where(
            AuditRecord.action == "script.ran"))] == ["remind", "remind"]
    drive.at(local("2026-03-02 13:00"))  # four hours: the interrupting timer ends the wait
    assert _fired(drive)[-1] == ["give_up"]
    assert drive.tasks("handle")[0].status == "cancelled"
    with drive.db.read() as s:
        assert s.scalars(select(Timer).where(Timer.status == "pending")).all() == []
    assert task.id == drive.tasks("handle")[0].id


def test_an_sla_stands_still_while_the_instance_waits_for_the_citizen(drive):
    drive.send("dossier.supplement_requested", DOSSIER)
    [clock] = drive.clocks("dossier")
    assert (clock.status, clock.due_at) == ("paused", None)
    drive.at(local("2026-03-04 10:00"))  # two days waiting for the citizen cost nothing
    drive.send("dossier.step_completed", {**DOSSIER, "officer": "le.an", "step": "bo-sung"})
    [clock] = drive.clocks("dossier")
    assert clock.status == "running" and clock.elapsed_seconds == 0
    assert clock.due_at == local("2026-03-05 10:00")  # 8 working hours from Wednesday 10:00
    drive.at(local("2026-03-05 09:59"))
    assert drive.notifications() == []
    drive.at(local("2026-03-05 10:00"))
    [note] = drive.notifications()
    assert note.kind == "sla.notify" and note.department_key == "trung-tam-phvhcc"
    with drive.db.read() as s:
        actions = [r.action for r in s.scalars(select(AuditRecord).where(
            AuditRecord.subject_type == "sla").order_by(AuditRecord.seq))]
    assert actions == ["sla.started", "sla.paused", "sla.resumed", "sla.level_reached"]


def test_an_unfinished_task_is_reassigned_and_its_officer_warned(drive):
    officer = drive.user("phvhcc.an", "civil_servant", "trung-tam-phvhcc")
    office = drive.user("vp.binh", "civil_servant", "van-phong-ubnd")
    drive.send("dossier.completed", DOSSIER)
    [task] = drive.tasks("handle")
    drive.claim(officer, task.id)
    drive.at(local("2026-03-02 10:00"))  # half the target: the officer who holds it is told
    [warning] = drive.notifications()
    assert (warning.user_id, warning.kind) == (officer.id, "sla.notify")
    drive.at(local("2026-03-02 11:00"))  # the target: the task moves, unclaimed
    [task] = drive.tasks("handle")
    assert (task.department_key, task.status, task.assignee_id) == ("van-phong-ubnd", "open", None)
    assert drive.notifications()[-1].department_key == "van-phong-ubnd"
    from engine.tasks.service import TaskError
    with pytest.raises(TaskError):
        drive.complete(officer, task.id, {})
    drive.complete(office, task.id, {})
    [clock] = drive.clocks("handle")
    assert (clock.status, clock.department_key) == ("breached", "van-phong-ubnd")
