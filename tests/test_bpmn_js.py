"""What bpmn-js writes differently is put back before the engine reads a diagram."""
from __future__ import annotations

from engine.scenarios import bpmn_js, service
from tests.conftest import SCENARIOS

# As bpmn-js 18 exports a correlation property (seen in the browser test of every shipped file).
EXPORTED = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d">
  <bpmn:message id="msg_completed" name="dossier.completed" />
  <bpmn:correlationProperty id="cp_dossier_id" name="dossier_id">
    <bpmn:correlationPropertyRetrievalExpression messageRef="msg_completed">
      <bpmn:formalExpression>dossier_id</bpmn:formalExpression>
    </bpmn:correlationPropertyRetrievalExpression>
  </bpmn:correlationProperty>
  <bpmn:sequenceFlow id="f"><bpmn:conditionExpression>x</bpmn:conditionExpression>
  </bpmn:sequenceFlow>
</bpmn:definitions>"""


def test_a_message_path_exported_as_formal_expression_is_put_back():
    repaired = bpmn_js.repair(EXPORTED)
    assert "<bpmn:messagePath>dossier_id</bpmn:messagePath>" in repaired
    assert "formalExpression" not in repaired
    assert "<bpmn:conditionExpression>x</bpmn:conditionExpression>" in repaired


def test_a_diagram_with_nothing_to_repair_is_returned_as_it_was():
    for folder in service.folders(SCENARIOS):
        text = (folder / "process.bpmn").read_text(encoding="utf-8")
        assert bpmn_js.repair(text) is text
    assert bpmn_js.repair("<not xml") == "<not xml"
