"""Grid work: building sweeps, help requests and residents' reports (M8, M12, M14)."""
