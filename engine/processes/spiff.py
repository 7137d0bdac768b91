"""SpiffWorkflow, configured once for the engine: parser, serializer, script engine.

User tasks use Camunda's `camunda:formData` (a form format the bpmn-js Camunda moddle edits);
message events use plain BPMN message definitions, whose payload merges into the instance data and
whose correlation properties are evaluated on the message itself (Camunda's variant wraps the
payload and breaks that).
"""
from __future__ import annotations

from copy import deepcopy
from functools import lru_cache

from SpiffWorkflow.bpmn.parser.BpmnParser import full_tag
from SpiffWorkflow.bpmn.parser.event_parsers import (
    BoundaryEventParser,
    EndEventParser,
    IntermediateCatchEventParser,
    IntermediateThrowEventParser,
    StartEventParser,
)
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.config import (
    MessageEventDefinition as BpmnMessageEventDefinition,
)
from SpiffWorkflow.bpmn.serializer.default import MessageEventDefinitionConverter
from SpiffWorkflow.bpmn.specs.defaults import (
    BoundaryEvent,
    EndEvent,
    IntermediateCatchEvent,
    IntermediateThrowEvent,
    StartEvent,
)
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.camunda.parser import CamundaParser
from SpiffWorkflow.camunda.serializer import DEFAULT_CONFIG as CAMUNDA_CONFIG
from SpiffWorkflow.camunda.specs.event_definitions import (
    MessageEventDefinition as CamundaMessageEventDefinition,
)

from engine.expressions import make_script_engine


class ScenarioParser(CamundaParser):
    """Camunda user-task forms and business rule tasks (DMN), standard BPMN events."""

    OVERRIDE_PARSER_CLASSES = {
        **CamundaParser.OVERRIDE_PARSER_CLASSES,
        full_tag("startEvent"): (StartEventParser, StartEvent),
        full_tag("endEvent"): (EndEventParser, EndEvent),
        full_tag("intermediateCatchEvent"): (IntermediateCatchEventParser, IntermediateCatchEvent),
        full_tag("intermediateThrowEvent"): (IntermediateThrowEventParser, IntermediateThrowEvent),
        full_tag("boundaryEvent"): (BoundaryEventParser, BoundaryEvent),
    }


def _serializer_config() -> dict:
    config = deepcopy(CAMUNDA_CONFIG)
    config.pop(CamundaMessageEventDefinition)
    config[BpmnMessageEventDefinition] = MessageEventDefinitionConverter
    return config


@lru_cache(maxsize=1)
def serializer() -> BpmnWorkflowSerializer:
    """The serializer for our specs and workflow states (one per process)."""
    return BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(_serializer_config()))


def spec_to_dict(top_spec, subprocess_specs: dict) -> dict:
    """Serialize a process spec (and its subprocess specs) once, for the scenario version."""
    ser = serializer()
    return {"spec": ser.to_dict(top_spec),
            "subprocess_specs": {k: ser.to_dict(v) for k, v in subprocess_specs.items()}}


def spec_from_dict(spec: dict) -> tuple:
    """The (top spec, subprocess specs) objects of a stored spec; shareable by many workflows."""
    ser = serializer()
    spec = deepcopy(spec)  # the deserializer pops keys from the dicts it is given
    return (ser.from_dict(spec["spec"]),
            {k: ser.from_dict(v) for k, v in spec["subprocess_specs"].items()})


def new_workflow(specs: tuple, timeout_s: float) -> BpmnWorkflow:
    """A fresh workflow of (top spec, subprocess specs) objects (see spec_from_dict)."""
    top, subs = specs
    return BpmnWorkflow(top, subs, script_engine=make_script_engine(timeout_s))


def dump_state(workflow: BpmnWorkflow) -> dict:
    """The workflow's own state, without the spec that every instance of a version shares."""
    state = serializer().to_dict(workflow)
    state.pop("spec", None)
    state.pop("subprocess_specs", None)
    return state


def load_state(spec: dict, state: dict, timeout_s: float) -> BpmnWorkflow:
    """Rebuild a workflow from its stored state and its version's spec."""
    # The deserializer pops keys from the dicts it is given: hand it copies.
    workflow = serializer().from_dict(deepcopy({**state, "spec": spec["spec"],
                                                "subprocess_specs": spec["subprocess_specs"]}))
    workflow.script_engine = make_script_engine(timeout_s)
    return workflow
