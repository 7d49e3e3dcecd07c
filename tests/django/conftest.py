"""Django configured for tests/django only, and unconfigured again afterwards.

Configuring Django is process-global: done at import time here, it would hold for every
test collected in the same session, and layers.get_channel_layer() in other test
directories would read these CHANNEL_LAYERS instead of their own environment. So the
settings are applied by a module-scoped autouse fixture and removed on teardown.
"""

from __future__ import annotations

from collections.abc import Iterator

import django
import pytest
from channels.layers import channel_layers
from django.conf import settings
from django.utils.functional import empty

import layers.config
from tests.django import settings as test_settings


def _test_settings() -> dict[str, object]:
    return {name: getattr(test_settings, name) for name in dir(test_settings) if name.isupper()}


@pytest.fixture(scope="module", autouse=True)
def django_settings() -> Iterator[None]:
    """Configure Django from tests/django/settings.py for the tests of one module."""
    if settings.configured:
        pytest.fail(
            "Django settings were configured before tests/django set up its own "
            "(is DJANGO_SETTINGS_MODULE set, or did another test configure Django?)",
            pytrace=False,
        )
    settings.configure(**_test_settings())
    django.setup()  # populates the app registry once per process; later calls are no-ops
    try:
        yield
    finally:
        # Back to "not configured", so no other test directory sees these settings.
        settings._wrapped = empty
        channel_layers.backends = {}
        layers.config.reset_channel_layers()
