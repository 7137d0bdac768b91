"""Public warnings (cảnh báo công khai): CAP 1.2 alerts a commander drafts from a playbook run and
approves; only then are they published, on an Atom feed the citizens' app polls and to webhook
subscribers. Updates and cancellations reference the alert they change."""
