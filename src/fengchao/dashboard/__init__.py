"""The community at a glance and the daily report (M16)."""
