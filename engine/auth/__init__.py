"""Users, roles, API tokens and what each role may do."""
