"""Accounts, passwords, sessions, roles and grid scopes, and the audit log."""
