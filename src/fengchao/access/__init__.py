"""Gates: credentials (the resident code), pass permissions, decisions and the access record."""
