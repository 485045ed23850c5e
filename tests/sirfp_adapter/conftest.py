"""Fixtures of the sirfp_adapter tests."""

from __future__ import annotations

import pytest

try:  # before anything imports torchvision (smp and timm do): see sirfp_adapter.zoo
    from sirfp_adapter.zoo import ensure_torchvision
except ImportError:  # no torch: the tests that need it skip
    pass
else:
    ensure_torchvision()


@pytest.fixture
def one_thread():
    """Run torch on one thread: the pruning tests use tiny models, where thread
    start-up and contention on a busy 2-core machine cost far more than they save."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
