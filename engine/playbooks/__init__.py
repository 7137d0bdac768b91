"""Emergency playbooks (kịch bản ứng phó): scenarios a commander starts with a start form (area,
level, notes), or that a detection suggests to the commander, who starts or dismisses them."""
