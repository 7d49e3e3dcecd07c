"""The soak run's accounting: every message delivered once, rule drops counted, RSS read."""

from __future__ import annotations

import secrets

import pytest

from bench.soak import HEADER, soak
from layers.inmemory import InMemoryChannelLayer
from layers.redis import RedisChannelLayer


@pytest.mark.parametrize("backend", ["inmemory", "redis"])
async def test_a_short_soak_accounts_for_every_message(
    backend: str, request: pytest.FixtureRequest
) -> None:
    # A small capacity, so the laggard group member fills up and drops by rule.
    if backend == "redis":
        url = request.getfixturevalue("redis_url")
        prefix = f"soak{secrets.token_hex(4)}"
        report = await soak(
            backend, lambda: RedisChannelLayer(hosts=[url], prefix=prefix, capacity=20), 1.0
        )
    else:
        report = await soak(backend, lambda: InMemoryChannelLayer(capacity=20), 1.0)
    assert report.sent > 100
    assert report.lost == 0
    assert report.duplicated == 0
    assert report.delivered_total == report.sent
    assert report.dropped_by_rule > 0, "the laggard never filled up"
    assert report.rss_start > 0
    assert report.rss_end > 0
    assert len(report.row().split()) == len(HEADER.split())
