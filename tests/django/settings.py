"""Minimal Django settings for the Channels integration tests (tests/django/conftest.py)."""

SECRET_KEY = "chanlayers-tests-only"
INSTALLED_APPS = ["channels", "layers.django"]
USE_TZ = True

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "layers.inmemory.InMemoryChannelLayer",
        "CONFIG": {"capacity": 50},
        # channels.layers.channel_layers.make_test_backend("default") builds from this.
        "TEST_CONFIG": {"capacity": 7, "expiry": 5},
    },
}
