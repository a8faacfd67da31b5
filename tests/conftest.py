"""Shared test set-up: hypothesis profiles sized for a 2-core CI machine, one torch thread."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "thorough", max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("DIRECTIONKIT_HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """torch at one thread for the test: tiny matmuls and convolutions gain nothing from
    threads and lose a lot when the other core is busy (``usefixtures`` in a module)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
