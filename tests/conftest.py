"""Shared test configuration: a deterministic hypothesis profile (numba compiles, so no deadline)."""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "mewcp",
    derandomize=True,
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile("mewcp")
