"""Start the chat demo under uvicorn: pick the layer, check it, run N worker processes."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass

from layers import layer_from_url
from layers.cli_commands import CommandFailed
from layers.config import available_backends, install_hint

from .app import ALLOWED_HOSTS_ENV, LOCAL_HOSTS

__all__ = ["DemoPlan", "group_send_hint", "plan", "probe_layer", "serve"]

IPC_URL = "ipc://chanlayers-demo"
APP = "consumers.demo.app:make_app"


@dataclass(frozen=True)
class DemoPlan:
    """What serve() will run: the layer URL, how many workers, and notes for the user."""

    layer: str
    workers: int
    notes: tuple[str, ...]


def plan(layer: str | None, workers: int, environ: dict[str, str] | None = None) -> DemoPlan:
    """The layer from --layer, $CHANNEL_LAYER_URL, ipc:// if available, else memory://."""
    environ = dict(os.environ) if environ is None else environ
    url = layer or environ.get("CHANNEL_LAYER_URL")
    notes: list[str] = []
    if not url:
        url = IPC_URL if "ipc://" in available_backends() else "memory://"
    scheme = url.partition("://")[0].lower()
    if scheme in {"memory", "inmemory"} and workers > 1:
        notes.append(
            f"{url} lives inside one process, so the demo runs 1 worker, not {workers}; "
            "for chat across worker processes use --layer ipc://... or redis://host:6379"
        )
        workers = 1
    return DemoPlan(url, workers, tuple(notes))


async def _probe(url: str) -> None:
    async with layer_from_url(url) as layer:
        # A round trip: a wrong host or password fails here, once, not in every worker.
        await layer.group_channels("room.lobby")


def probe_layer(url: str) -> None:
    """Build the layer, talk to it once and close it; its ChannelLayerError if that fails."""
    asyncio.run(_probe(url))


def group_send_hint(layer: str) -> str:
    """A group-send command that works as printed, in a new shell without the venv on PATH."""
    script = os.path.join(os.path.dirname(sys.executable), "chanlayers")
    program = [script] if os.access(script, os.X_OK) else [sys.executable, "-m", "layers"]
    message = '{"type": "chat.message", "text": "hi", "user": "ops"}'
    return shlex.join([*program, "group-send", "room.lobby", message, "--layer", layer])


def _websocket_impl() -> str:
    """uvicorn's ws= choice: websockets' sans-I/O protocol where this uvicorn has it."""
    import uvicorn.config

    missing = [name for name in ("websockets",) if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError("websockets")
    return "websockets-sansio" if "websockets-sansio" in uvicorn.config.WS_PROTOCOLS else "auto"


def serve(
    host: str, port: int, workers: int, layer: str | None, say: Callable[[str], None] = print
) -> None:
    """Run the chat demo until interrupted (uvicorn handles SIGINT/SIGTERM)."""
    try:
        import uvicorn

        ws = _websocket_impl()
    except ImportError as error:
        raise CommandFailed(
            f"the chat demo server needs {error.name or 'uvicorn'}, which is not installed: "
            f"{install_hint('server')}"
        ) from None
    chosen = plan(layer, workers)
    probe_layer(chosen.layer)
    # Each worker process builds its own layer from the environment it inherits.
    os.environ["CHANNEL_LAYER_URL"] = chosen.layer
    os.environ.pop("CHANNEL_LAYERS", None)
    if ALLOWED_HOSTS_ENV in os.environ:
        pass
    elif host in {"0.0.0.0", "::", ""}:
        say(
            f"note: the chat accepts pages from {', '.join(LOCAL_HOSTS)} only; set "
            f"{ALLOWED_HOSTS_ENV}=<name other browsers use> to let them in"
        )
    else:
        os.environ[ALLOWED_HOSTS_ENV] = ",".join(sorted({*LOCAL_HOSTS, host}))
    for note in chosen.notes:
        say(f"note: {note}")
    shown = "localhost" if host in {"127.0.0.1", "::1"} else host
    say(
        f"chat demo on {chosen.layer} with {chosen.workers} worker(s): open "
        f"http://{shown}:{port}/ in two browsers (Ctrl-C stops)"
    )
    if chosen.layer.partition("://")[0].lower() in {"memory", "inmemory"}:
        say("(memory:// is private to the server process: chanlayers group-send cannot reach it)")
    else:
        say(f"from another terminal: {group_send_hint(chosen.layer)}")
    sys.stdout.flush()
    uvicorn.run(
        APP,
        factory=True,
        host=host,
        port=port,
        workers=chosen.workers,
        ws=ws,
        lifespan="on",
        log_level="info",
        access_log=False,
    )
