"""Shared fixtures: a fake upstream and a proxy on ephemeral 127.0.0.1 ports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.proxy import running_upstream


@pytest.fixture
def fake() -> FakeUpstream:
    return FakeUpstream()


@pytest.fixture
async def upstream_url(fake: FakeUpstream) -> AsyncIterator[str]:
    async with running_upstream(fake) as url:
        yield url


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "resources"
    directory.mkdir()
    return directory
