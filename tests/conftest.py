"""Fixtures shared by several test modules."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

# Hypothesis' per-example deadline is a timing assertion: on a shared, loaded
# machine it fails tests whose behaviour is right. Speed lives in benchmarks/.
settings.register_profile("wsproto_core", deadline=None)
settings.load_profile("wsproto_core")


@pytest.fixture
def redis_url() -> str:
    """``WSPROTO_CORE_REDIS_URL``: skip without it, but fail under CI, where ``.ci/run`` starts redis-server."""
    url = os.environ.get("WSPROTO_CORE_REDIS_URL")
    if not url:
        if os.environ.get("CI") or os.environ.get("WSPROTO_CORE_CI"):
            pytest.fail("CI is set but WSPROTO_CORE_REDIS_URL is not: .ci/run starts redis-server and exports it")
        pytest.skip(
            "no Redis: start redis-server on a free port and set WSPROTO_CORE_REDIS_URL=redis://127.0.0.1:PORT/0"
        )
    return url
