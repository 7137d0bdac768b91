"""A small event vocabulary for the rule tests (event type → field → JSON type)."""

DOSSIER = {"dossier_id": "string", "procedure": "string", "unit": "string", "officer": "string"}
VOCABULARY = {
    "dossier.supplement_requested": DOSSIER,
    "dossier.returned": {
        **DOSSIER, "reason": "string", "days_late": "integer", "fee": "number", "urgent": "boolean",
    },
    "hotline.ticket.created": {
        "ticket_id": "string", "category": "string", "ward": "string", "description": "string",
        "location": "object",
    },
}
