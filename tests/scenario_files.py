"""Scenario folders the process tests write: the files, a BPMN head, a correlated message."""
from __future__ import annotations

import textwrap
from pathlib import Path

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="defs" targetNamespace="https://ioc.test">
"""


def correlated_message(name: str, field: str = "dossier_id") -> str:
    """A message `msg` of event type `name`, correlated on the event's `field`."""
    return f"""  <bpmn:message id="msg" name="{name}"/>
  <bpmn:correlationProperty id="cp" name="{field}">
    <bpmn:correlationPropertyRetrievalExpression messageRef="msg">
      <bpmn:messagePath>{field}</bpmn:messagePath>
    </bpmn:correlationPropertyRetrievalExpression>
  </bpmn:correlationProperty>
"""


def write_scenario(root: Path, key: str, event: str, bpmn: str, *, version: int = 1,
                   data: str = '{dossier_id: "{event.dossier_id}"}',
                   subject: str | None = "{event.dossier_id}", sla: str = "") -> Path:
    """A scenario folder `root/key`: one rule starting `bpmn` on `event` with `data` (a YAML
    mapping of templates) and `subject`, owned by the Service Centre; `sla`: an sla.yaml."""
    folder = root / key
    folder.mkdir(parents=True)
    (folder / "scenario.yaml").write_text(textwrap.dedent(f"""\
        key: {key}
        version: {version}
        name: {{vi: Thử {key}, en: Test {key}}}
        owner: trung-tam-phvhcc
        severity: low
        """), encoding="utf-8")
    rule = textwrap.dedent(f"""\
        rules:
          - key: start
            when: {{event: {event}}}
            then:
              data: {data}
        """) + (f'      subject: "{subject}"\n' if subject else "")
    (folder / "rules.yaml").write_text(rule, encoding="utf-8")
    (folder / "process.bpmn").write_text(bpmn, encoding="utf-8")
    if sla:
        (folder / "sla.yaml").write_text(textwrap.dedent(sla), encoding="utf-8")
    return folder


def imported_draft(db, key: str, bpmn: str):
    """A draft of `key` imported (as a zip would be) with this process.bpmn and a manifest of
    the Service Centre; returns (draft id, the stored process.bpmn)."""
    from engine.scenarios import drafts

    manifest = f"key: {key}\nversion: 1\nname: {{vi: Nhập {key}, en: Import {key}}}\n" \
               "owner: trung-tam-phvhcc\nseverity: low\n"
    with db.session() as s:
        draft = drafts.import_files(s, {"scenario.yaml": manifest, "process.bpmn": bpmn},
                                    actor="user:inspector")
        return draft.id, draft.files["process.bpmn"]
