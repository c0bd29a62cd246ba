"""Gates: faces on file, resident codes, policy, decisions and the access record."""
