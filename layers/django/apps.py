"""The Django app config of layers.django."""

from __future__ import annotations

from django.apps import AppConfig


class ChanlayersConfig(AppConfig):  # type: ignore[misc]
    """chanlayers' management commands."""

    name = "layers.django"
    label = "chanlayers"
    verbose_name = "chanlayers"
