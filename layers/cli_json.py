"""The JSON form of messages on the command line (bytes as {"$bytes": "<base64>"})."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from .cli_errors import UsageError

__all__ = ["dump_message", "from_json", "parse_message", "to_json"]


BYTES_KEY = "$bytes"
DICT_KEY = "$dict"
_RESERVED = frozenset({BYTES_KEY, DICT_KEY})


def to_json(value: Any) -> Any:
    """A message value as JSON-able data: bytes become {"$bytes": "<base64>"}.

    A dict that would read back as one of the special forms (its only key is
    "$bytes" or "$dict") is wrapped as {"$dict": {...}}, so from_json(to_json(m)) == m.
    """
    if isinstance(value, bytes | bytearray):
        return {BYTES_KEY: base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        plain = {key: to_json(item) for key, item in value.items()}
        if len(plain) == 1 and next(iter(plain)) in _RESERVED:
            return {DICT_KEY: plain}
        return plain
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    return value


def from_json(value: Any, path: str = "message") -> Any:
    """Undo to_json: {"$bytes": "<base64>"} becomes bytes, {"$dict": {...}} a plain dict."""
    if isinstance(value, dict):
        if len(value) == 1:
            key, item = next(iter(value.items()))
            if key == BYTES_KEY:
                if not isinstance(item, str):
                    raise UsageError(f'{path} = {{"$bytes": ...}} needs a base64 string')
                try:
                    return base64.b64decode(item, validate=True)
                except (binascii.Error, ValueError):
                    raise UsageError(f"{path}: {item[:40]!r} is not valid base64") from None
            if key == DICT_KEY:
                if not isinstance(item, dict):
                    raise UsageError(f'{path} = {{"$dict": ...}} needs a JSON object')
                return {k: from_json(v, f"{path}[{k!r}]") for k, v in item.items()}
        return {k: from_json(v, f"{path}[{k!r}]") for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(item, f"{path}[{i}]") for i, item in enumerate(value)]
    return value


def _refuse_constant(name: str) -> Any:
    # NaN and Infinity are not JSON (RFC 8259); receive would print them back as such.
    raise ValueError(f"{name} is not JSON (write null or a string)")


def parse_message(text: str, where: str) -> dict[str, Any]:
    """One message from its JSON text; where says what to blame ('stdin line 3')."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{where}: not JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:
        raise UsageError(f"{where}: the JSON nests too deeply") from None
    except ValueError as exc:  # NaN or Infinity
        raise UsageError(f"{where}: {exc}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{where}: a message must be a JSON object, got {type(value).__name__}")
    try:
        message: dict[str, Any] = from_json(value)
    except UsageError as exc:
        raise UsageError(str(exc) if where == "message" else f"{where}: {exc}") from None
    return message


def dump_message(message: dict[str, Any]) -> str:
    """One message as one line of JSON (bytes as {"$bytes": "<base64>"})."""
    return json.dumps(to_json(message))
