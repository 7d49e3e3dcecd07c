"""AllowedHostsOriginValidator reads Django's ALLOWED_HOSTS and DEBUG as Channels' does."""

from __future__ import annotations

import pytest
from channels.security.websocket import (
    AllowedHostsOriginValidator as ChannelsAllowedHostsOriginValidator,
)
from django.test import override_settings

from consumers import AllowedHostsOriginValidator
from consumers.asgi import Receive, Scope, Send


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("not reached")


@pytest.mark.parametrize(
    ("hosts", "debug"),
    [(["chat.example", ".example.org"], False), ([], True), ([], False), (["*"], True)],
)
def test_allowed_hosts_come_from_django_settings(hosts: list[str], debug: bool) -> None:
    with override_settings(ALLOWED_HOSTS=hosts, DEBUG=debug):
        ours = AllowedHostsOriginValidator(app).allowed_origins
        theirs = ChannelsAllowedHostsOriginValidator(app).allowed_origins
    assert ours == list(theirs)
