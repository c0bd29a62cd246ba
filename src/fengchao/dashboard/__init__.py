"""Overview and reports (M16): the community at a glance and the daily report."""
