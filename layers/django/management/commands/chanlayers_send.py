"""manage.py chanlayers_send: push a message to a channel or a group from the shell."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ....exceptions import ChannelLayerError
from ....sync import SyncChannelLayer


class Command(BaseCommand):  # type: ignore[misc]
    """Send one message through a CHANNEL_LAYERS alias."""

    help = (
        "Send a message to a channel or a group through a channel layer. Example: "
        'manage.py chanlayers_send --group room-42 \'{"type": "chat.message", "text": "hi"}\''
    )

    def add_arguments(self, parser: CommandParser) -> None:
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--channel", help="a channel name")
        target.add_argument("--group", help="a group name")
        parser.add_argument("message", help='a JSON object with a "type"')
        parser.add_argument("--alias", default="default", help="CHANNEL_LAYERS alias")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            message = json.loads(options["message"])
        except ValueError as exc:
            raise CommandError(f"message is not JSON: {exc}") from None
        try:
            with SyncChannelLayer(options["alias"]) as layer:
                if options["group"] is not None:
                    layer.group_send(options["group"], message)
                else:
                    layer.send(options["channel"], message)
        except (ChannelLayerError, TypeError, ValueError) as exc:
            raise CommandError(f"{type(exc).__name__}: {exc}") from None
        where = f"group {options['group']}" if options["group"] else f"channel {options['channel']}"
        self.stdout.write(f"sent to {where}")
