"""Sampling rounds, sites, slots, tubes, lab results and coverage (M9)."""
