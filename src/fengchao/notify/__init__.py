"""Notifications: the inbox, group-chat robots, the outbox and `fengchao worker`."""
