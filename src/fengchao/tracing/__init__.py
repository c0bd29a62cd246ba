"""Contact tracing (流调溯源): cases, contacts and the actions that protect them (M15)."""
