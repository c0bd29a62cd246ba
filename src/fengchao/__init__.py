"""Fengchao (蜂巢): a platform that runs a residential community through an outbreak."""

__version__ = "0.1.0"
