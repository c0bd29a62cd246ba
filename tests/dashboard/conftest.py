"""Fixtures shared with the slices the dashboard reads."""

from tests.sampling.conftest import sampler, site  # noqa: F401  (a round and its sampler)
