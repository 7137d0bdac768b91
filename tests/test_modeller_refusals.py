"""What the workflow engine cannot run, said in a modeller's words (issue 22, items 1 and 4): each
shape that SpiffWorkflow refused without a line, or with Python's words, is refused by our own
check with file:line, the element (name and id), Vietnamese and English, and what to do."""
from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pytest
from lxml import etree

from engine.events.vocabulary import Vocabulary
from engine.scenarios import archive, service
from engine.scenarios.problems import ScenarioInvalid
from tests.scenario_files import HEAD, imported_draft, write_scenario

VOCABULARY = Vocabulary.load()
START = '''    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="t"/>
'''
END = '''    <bpmn:sequenceFlow id="f2" sourceRef="t" targetRef="end"/>
    <bpmn:endEvent id="end"/>
'''


def _process(body: str, attrs: str = 'isExecutable="true"', pid: str = "p") -> str:
    return f'{HEAD}  <bpmn:process id="{pid}" {attrs}>\n{body}  </bpmn:process>\n'


def _problems(tmp_path, bpmn: str, manifest_extra: str = "") -> list:
    folder = write_scenario(tmp_path, "thu", "dossier.received", bpmn + "</bpmn:definitions>\n")
    if manifest_extra:
        with open(folder / "scenario.yaml", "a", encoding="utf-8") as manifest:
            manifest.write(manifest_extra)
    with pytest.raises(ScenarioInvalid) as refused:
        service.check_folder(folder, VOCABULARY, {"trung-tam-phvhcc"})
    return refused.value.problems


CASES = {
    "business rule task without a decision": (
        START + '    <bpmn:businessRuleTask id="t" name="Phân loại"/>\n' + END,
        3, "t", "names no DMN decision: set camunda:decisionRef"),
    "data input from nowhere": (
        START + '    <bpmn:task id="t" name="Xem">\n      <bpmn:dataInputAssociation id="a">'
                '<bpmn:sourceRef>nowhere</bpmn:sourceRef></bpmn:dataInputAssociation>\n'
                '    </bpmn:task>\n' + END,
        3, "t", "reads the data 'nowhere', which this process does not have: draw the data"),
    "a data store": (
        START + '    <bpmn:task id="t" name="Xem">\n      <bpmn:dataInputAssociation id="a">'
                '<bpmn:sourceRef>ds</bpmn:sourceRef></bpmn:dataInputAssociation>\n'
                '    </bpmn:task>\n    <bpmn:dataStoreReference id="ds" name="CSDL"/>\n' + END,
        3, "t", "the engine runs no data store (it has no implementation): remove"),
    "multi-instance without cardinality": (
        START + '    <bpmn:task id="t" name="Mỗi phường">\n'
                '      <bpmn:multiInstanceLoopCharacteristics/>\n    </bpmn:task>\n' + END,
        3, "t", "says neither how many times (loopCardinality) nor over which list"),
    "a task with two outgoing flows": (
        START + '    <bpmn:task id="t" name="Xem"/>\n'
                '    <bpmn:sequenceFlow id="f3" sourceRef="t" targetRef="end"/>\n' + END,
        3, "t", "has 2 outgoing flows, and the engine does not split at a task: add a parallel"),
    "a message event without a message": (
        START + '    <bpmn:intermediateCatchEvent id="t" name="Chờ">\n'
                '      <bpmn:messageEventDefinition/>\n    </bpmn:intermediateCatchEvent>\n'
                + END,
        3, "t", "waits for no message: choose the event type it waits for (a messageRef"),
    "a message event with an unknown message": (
        START + '    <bpmn:intermediateCatchEvent id="t" name="Chờ">\n'
                '      <bpmn:messageEventDefinition messageRef="m9"/>\n'
                '    </bpmn:intermediateCatchEvent>\n' + END,
        3, "t", "refers to the message 'm9', which the file does not define: add <bpmn:message"),
}


@pytest.mark.parametrize("body, line, element, says", CASES.values(), ids=CASES.keys())
def test_each_refusal_names_line_element_and_fix(tmp_path, body, line, element, says):
    problems = _problems(tmp_path, _process(body))
    found = [p for p in problems if says in p.message]
    assert len(found) == 1, problems
    [problem] = found
    assert (problem.file.rsplit("/", 1)[-1], problem.line + 0, problem.path) == \
        ("process.bpmn", line + 4, element)  # HEAD is 3 lines, the process tag the 4th
    vi, _, en = problem.message.partition(" / ")
    assert vi and en and "Traceback" not in problem.message and "<Element" not in problem.message


def test_a_flow_out_of_an_exclusive_gateway_without_a_condition_names_the_flow(tmp_path):
    body = '''    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="g"/>
    <bpmn:exclusiveGateway id="g" name="Đạt?" default="f3"/>
    <bpmn:sequenceFlow id="f2" name="có" sourceRef="g" targetRef="end"/>
    <bpmn:sequenceFlow id="f3" sourceRef="g" targetRef="end2"/>
    <bpmn:endEvent id="end"/>
    <bpmn:endEvent id="end2"/>
'''
    [problem] = _problems(tmp_path, _process(body))
    assert (problem.line, problem.path) == (8, "f2")
    assert "the flow 'có' (f2) out of 'Đạt?' (g) has no condition and is not the gateway's " \
           "default: give it a condition, or make it the default flow" in problem.message


@pytest.mark.parametrize("gateway", ["exclusiveGateway", "inclusiveGateway"])
def test_camunda_conditions_are_given_back_in_the_engines_words(tmp_path, gateway):
    """`${!approved && amount > 5}` from Camunda: said to be JUEL, with the expression to
    write instead; an inclusive gateway's flows need conditions as an exclusive one's do."""
    body = f'''    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="g"/>
    <bpmn:{gateway} id="g" name="Đạt?" default="f3"/>
    <bpmn:sequenceFlow id="f2" sourceRef="g" targetRef="end">
      <bpmn:conditionExpression>${{!approved &amp;&amp; amount gt 5}}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f3" sourceRef="g" targetRef="end2"/>
    <bpmn:sequenceFlow id="f4" name="khác" sourceRef="g" targetRef="end2"/>
    <bpmn:endEvent id="end"/>
    <bpmn:endEvent id="end2"/>
'''
    first, second = _problems(tmp_path, _process(body))
    assert (first.line, first.path) == (8, "f2")
    assert "condition '${!approved && amount gt 5}' is written for Camunda (JUEL); the engine " \
           "reads the restricted Python of docs/scenarios.md: write not approved and amount " \
           "> 5" in first.message
    assert (second.line, second.path) == (12, "f4")
    assert "the flow 'khác' (f4) out of 'Đạt?' (g) has no condition" in second.message


def test_a_process_not_marked_executable_says_to_set_it_with_its_line(tmp_path):
    [problem] = _problems(tmp_path, _process(START.replace("t\"", "end\"") +
                                             '    <bpmn:endEvent id="end"/>\n',
                                             'isExecutable="false"', "xu_ly"))
    assert (problem.file.rsplit("/", 1)[-1], problem.line, problem.path) == \
        ("process.bpmn", 4, "xu_ly")
    assert 'is marked not executable: set isExecutable="true" on it' in problem.message


def test_two_executable_processes_ask_for_process_id_naming_both(tmp_path):
    one = _process(START.replace("t\"", "end\"") + '    <bpmn:endEvent id="end"/>\n')
    two = ('  <bpmn:process id="q" isExecutable="true"><bpmn:startEvent id="s2"/>'
           '<bpmn:sequenceFlow id="q1" sourceRef="s2" targetRef="e2"/><bpmn:endEvent id="e2"/>'
           '</bpmn:process>\n')
    [problem] = _problems(tmp_path, one + two)
    assert problem.file.endswith("scenario.yaml") and problem.path == "process_id"
    assert "has 2 executable processes (p (line 4), q (line 9)): say which one runs with " \
           "`process_id: p` in scenario.yaml" in problem.message


def test_a_process_id_naming_no_executable_process_says_which_there_are(tmp_path):
    bpmn = _process(START.replace("t\"", "end\"") + '    <bpmn:endEvent id="end"/>\n')
    [problem] = _problems(tmp_path, bpmn, "process_id: khong_co\n")
    assert problem.file.endswith("scenario.yaml") and problem.line == 6
    assert "has no executable process 'khong_co' (it has p): fix process_id" in problem.message


def test_an_id_used_twice_is_refused_with_both_lines(tmp_path):
    body = START.replace("t\"", "end\"") + '    <bpmn:endEvent id="end"/>\n'
    twice = _process(body) + '  <bpmn:process id="p" isExecutable="false"/>\n'
    problems = _problems(tmp_path, twice)
    [problem] = [p for p in problems if "already used" in p.message]
    assert (problem.line, problem.path) == (9, "p")
    assert "the id 'p' is already used on line 4: ids must be unique" in problem.message


CORPORA = Path(__file__).parent / "corpus"
# The MIWG reference models and 23 other tools' exports of them (SOURCE.md beside each).
MODELS = sorted(str(p.relative_to(CORPORA)) for p in CORPORA.rglob("*.bpmn"))
ACCEPTED_AS_THEY_ARE: set = set()
INTERNALS = re.compile(r"<Element|\w+Error\(|\{http|Traceback|object at 0x")


def _uploaded(tmp_path, raw: bytes) -> list:
    """The problems of a scenario zip holding this process.bpmn, read and checked as an
    inspector's upload is."""
    folder = write_scenario(tmp_path, "nhap", "dossier.received", "")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in folder.iterdir():
            zf.writestr(f"nhap/{path.name}",
                        raw if path.name == "process.bpmn" else path.read_bytes())
    try:
        service.check(archive.from_zip(buffer.getvalue()), VOCABULARY, {"trung-tam-phvhcc"})
    except ScenarioInvalid as exc:
        return exc.problems
    return []


@pytest.mark.parametrize("model", MODELS)
def test_other_modellers_files_get_every_problem_with_line_words_and_no_internals(tmp_path,
                                                                                   model):
    """The MIWG reference models, as other tools drew them, uploaded as they are: checking
    never crashes, and every problem names its file and line, in Vietnamese and English,
    without Python's words."""
    problems = _uploaded(tmp_path, (CORPORA / model).read_bytes())
    if not problems:
        assert model in ACCEPTED_AS_THEY_ARE  # and run end to end below
    for problem in problems:
        assert problem.line, problem
        vi, _, en = problem.message.partition(" / ")
        assert vi and en, problem
        assert not INTERNALS.search(problem.message), problem


def _readable(model: str) -> str | None:
    """The model's text if it is UTF-8 XML (the others are refused before any engine reads
    them: GenMyModel's Latin-1 file, IBM's namespace with spaces)."""
    from engine.xmlsafe import parse

    try:
        text = (CORPORA / model).read_bytes().decode("utf-8")
        parse(text)
    except (UnicodeDecodeError, etree.XMLSyntaxError):
        return None
    return text


READABLE = [model for model in MODELS if _readable(model) is not None]


@pytest.mark.parametrize("model", sorted(set(MODELS) - set(READABLE)))
def test_a_file_no_engine_reads_is_refused_at_upload_with_its_line(tmp_path, model):
    """GenMyModel's file declared UTF-8 but written in Latin-1, IBM's namespace with spaces."""
    problems = _uploaded(tmp_path, (CORPORA / model).read_bytes())
    assert len(problems) == 1 and problems[0].line, problems
    assert re.search(r"not UTF-8 text|not well-formed XML", problems[0].message), problems


@pytest.mark.parametrize("model", READABLE)
def test_the_workflow_engine_refuses_nothing_our_checks_passed(model):
    """Each process of a model (made executable) that SpiffWorkflow refuses to load has a
    problem of ours first: in the process holding the element it names, or anywhere in the
    file when it names none. A modeller always meets our words, not its."""
    from engine.scenarios.bpmn_checks import NS, check_bpmn

    text = _readable(model).replace('isExecutable="false"', 'isExecutable="true"')
    problems, _ = check_bpmn("process.bpmn", text.encode(), {"trung-tam-phvhcc"},
                             VOCABULARY.field_types())
    root = etree.fromstring(text.encode())
    processes = root.findall("bpmn:process", NS)
    everything = {el.get("id") for el in root.iter() if isinstance(el.tag, str)}
    in_any = {el.get("id") for process in processes for el in process.iter()
              if isinstance(el.tag, str)}
    # What the document declares once (messages, data stores) counts for every process.
    shared = everything - in_any
    for process in processes:
        try:
            service._parse_spec({"process.bpmn": text}, "process.bpmn", process.get("id"),
                                lambda name: name)
        except ScenarioInvalid as refused:
            named = refused.problems[0].path
            holder = next((p for p in processes if any(el.get("id") == named
                                                       for el in p.iter())), None)
            scope = everything if holder is None else \
                {el.get("id") for el in holder.iter() if isinstance(el.tag, str)} | shared
            assert [p for p in problems if p.path in scope], (process.get("id"),
                                                              refused.problems)


def _signature(text: str) -> list:
    """What the engine and the diagram read of a BPMN file: every element's namespace and
    name, its attributes with QName values resolved to their namespace, and its text."""
    from lxml import etree

    from engine.scenarios.namespaces import USUAL, qname_value

    usual = {prefix: uri for uri, prefix in USUAL.items()}

    def resolved(name: str, value: str, scope: dict) -> str:
        # A value with a usual prefix the file never binds (ModelFoundry's xsi:type
        # "bpmn:tExpression" under a default namespace) means the usual namespace: once
        # normalised, the prefix is bound to it.
        qname = qname_value(name, value, {**usual, **scope})
        return f"{{{qname[0]}}}{qname[1]}" if qname else value

    root = etree.fromstring(text.encode())
    return [(el.tag, sorted((k, resolved(k, v, el.nsmap)) for k, v in el.attrib.items()),
             (el.text or "").strip(), (el.tail or "").strip())
            for el in root.iter() if isinstance(el.tag, str)]


@pytest.mark.parametrize("model", READABLE)
def test_importing_normalises_prefixes_and_changes_nothing_else(model):
    """One prefix per namespace, the designer's usual ones (so bpmn-js can save the file);
    every element, attribute, value and text the same."""
    from engine.scenarios.namespaces import normalise, plan

    text = _readable(model)
    normalised, changes = normalise(text)
    assert plan(etree.fromstring(normalised.encode())) == {}
    assert normalise(normalised) == (normalised, [])  # once is enough
    assert _signature(normalised) == _signature(text)
    if changes:
        assert normalised != text


def test_a_prefix_the_designer_uses_is_freed_for_it(ioc):
    """camunda bound to Activiti's namespace, BPMN under two prefixes: the imported draft keeps
    each namespace under one prefix, Activiti's under its own name, and says so in its audit."""
    from engine.audit.models import AuditRecord

    bpmn = ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" '
            'xmlns:bpmn2="http://www.omg.org/spec/BPMN/20100524/MODEL" '
            'xmlns:camunda="http://activiti.org/bpmn" id="d" targetNamespace="t">\n'
            '  <process id="p" isExecutable="true">\n'
            '    <bpmn2:startEvent id="s" camunda:initiator="me"/>\n'
            '  </process>\n</definitions>\n')
    _, saved = imported_draft(ioc.db, "nhap-thu", bpmn)
    with ioc.db.read() as s:
        record = s.query(AuditRecord).filter(AuditRecord.action == "scenario.draft.created") \
            .order_by(AuditRecord.id.desc()).first()
    assert 'xmlns:camunda' not in saved and 'xmlns:activiti="http://activiti.org/bpmn"' in saved
    assert '<bpmn:startEvent id="s" activiti:initiator="me"/>' in saved
    assert record.details["namespaces"]["process.bpmn"] == [
        "(default):http://www.omg.org/spec/BPMN/20100524/MODEL → bpmn",
        "bpmn2:http://www.omg.org/spec/BPMN/20100524/MODEL → bpmn",
        "camunda:http://activiti.org/bpmn → activiti"]


def _only_executable(text: str, process_id: str) -> str:
    """The file with one process marked executable, as the refusal of a file with none or with
    several tells the modeller to do."""
    root = etree.fromstring(text.encode())
    for process in root.iterfind("{http://www.omg.org/spec/BPMN/20100524/MODEL}process"):
        process.set("isExecutable", "true" if process.get("id") == process_id else "false")
    return etree.tostring(root, encoding="unicode")


def _accepted(tmp_path) -> list[tuple[str, str]]:
    """Every (model, process) of the corpora that passes every check once that process alone
    is marked executable."""
    out = []
    for i, model in enumerate(READABLE):
        text = _readable(model)
        for j, process in enumerate(etree.fromstring(text.encode()).iterfind(
                "{http://www.omg.org/spec/BPMN/20100524/MODEL}process")):
            only = _only_executable(text, process.get("id")).encode()
            if not _uploaded(tmp_path / f"{i}-{j}", only):
                out.append((model, process.get("id")))
    return out


# The models the engine runs as other tools drew them: the sequence of plain tasks (A.1.0) as
# the reference, ADONIS, Bizagi and Modelio wrote it. The others use lanes, events and data
# that a province scenario says differently; each of their problems is named above.
RUNNABLE = [("miwg/A.1.0.bpmn", "WFP-6-"),
            ("tools/adonis-17.0/A.1.0-roundtrip.bpmn", "WFP-6-"),
            ("tools/bizagi-modeler-2.8.0.8/A.1.0-roundtrip.bpmn", "WFP-6-"),
            ("tools/modelio-3.5/A.1.0-export.bpmn", "MO-725e2f58-8d90-4b80-87dc-40d015c14372")]
ACCEPTED_AS_THEY_ARE.add("tools/modelio-3.5/A.1.0-export.bpmn")  # its process is executable


def test_the_models_the_engine_can_run_are_these(tmp_path):
    assert _accepted(tmp_path) == RUNNABLE


@pytest.mark.parametrize("model, process_id", RUNNABLE)
def test_a_model_the_engine_can_run_runs_end_to_end(ioc, source, tmp_path, model, process_id):
    """Imported as a draft, published, started by an event: each of its tasks reaches the
    owner's inbox in the drawn order, is completed by a civil servant, and the instance ends."""
    from engine.processes.models import COMPLETED, ProcessInstance
    from engine.scenarios import drafts
    from tests.time_helpers import Drive, local

    text = _only_executable(_readable(model), process_id)
    folder = write_scenario(tmp_path, "nhap-mo-hinh", "dossier.returned", text)
    with ioc.db.session() as s:
        draft = drafts.import_files(s, {p.name: p.read_text(encoding="utf-8")
                                        for p in folder.iterdir()}, actor="thanh-tra")
        drafts.publish(s, draft, ioc.vocabulary, actor="thanh-tra")
    drive = Drive(ioc.db, ioc.vocabulary, local("2026-03-02 09:00"), source[0])
    officer = drive.user("can-bo-mo-hinh", "civil_servant", "trung-tam-phvhcc")
    drive.send("dossier.returned", {"dossier_id": "HS-MIWG", "procedure": "1.004227",
                                    "unit": "phuong-thu-dau-mot"})
    names = []
    while open_tasks := [t for t in drive.tasks() if t.status == "open"]:
        [task] = open_tasks  # a sequence: one task at a time
        assert task.department_key == "trung-tam-phvhcc"
        names.append(task.name)
        drive.claim(officer, task.id)
        drive.complete(officer, task.id, {})
    assert names == ["Task 1", "Task 2", "Task 3"]
    with ioc.db.read() as s:
        [instance] = s.query(ProcessInstance).all()
    assert instance.status == COMPLETED
