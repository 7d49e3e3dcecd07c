"""The codec: wire format, refusals, encryption."""

from __future__ import annotations

import msgpack
import pytest

from layers.codec import Codec, validate_message
from layers.exceptions import ConfigError, InvalidMessage, UndecodableMessage


def test_round_trip_plain_and_encrypted() -> None:
    message = {"type": "t", "b": b"\x00", "n": [1, 2.5, None, True], "d": {"k": "v"}}
    for codec in (Codec(), Codec(symmetric_encryption_keys=["k"])):
        assert codec.decode(codec.encode(message)) == message


def test_plain_payload_is_msgpack() -> None:
    payload = Codec().encode({"type": "t", "b": b"x"})
    assert msgpack.unpackb(payload, raw=False) == {"type": "t", "b": b"x"}


def test_encrypted_payload_hides_the_plaintext() -> None:
    payload = Codec(symmetric_encryption_keys=["k"]).encode({"type": "t", "secret": "hunter2"})
    assert b"hunter2" not in payload
    assert b"secret" not in payload


@pytest.mark.parametrize(
    "payload",
    [
        msgpack.packb({"type": "t", "x": msgpack.ExtType(42, b"os.system")}),
        msgpack.packb({"type": "t", "when": msgpack.Timestamp(1, 0)}),
        b"\xc7\x00\x05",  # a zero-length ext
    ],
)
def test_ext_types_are_refused(payload: bytes) -> None:
    with pytest.raises(UndecodableMessage, match="not a valid message"):
        Codec().decode(payload)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\xc1",
        b"\x83",  # truncated map
        msgpack.packb(["type", "t"]),
        msgpack.packb({"no": "type"}),
        msgpack.packb({1: 2}),
        b"\x91" * 5000 + b"\xc0",  # deeper than the decoder's stack
        msgpack.packb({"type": "t"}) + b"\x00",  # trailing bytes
    ],
)
def test_foreign_payloads_are_undecodable(payload: bytes) -> None:
    with pytest.raises(UndecodableMessage):
        Codec().decode(payload)


def test_wrong_key_and_tampering_are_undecodable() -> None:
    encoded = Codec(symmetric_encryption_keys=["a"]).encode({"type": "t"})
    with pytest.raises(UndecodableMessage, match="decryption"):
        Codec(symmetric_encryption_keys=["b"]).decode(encoded)
    flipped = encoded[:20] + bytes([encoded[20] ^ 1]) + encoded[21:]
    with pytest.raises(UndecodableMessage, match="decryption"):
        Codec(symmetric_encryption_keys=["a"]).decode(flipped)


def test_keys_may_be_bytes_and_rotate() -> None:
    old = Codec(symmetric_encryption_keys=[b"old"])
    both = Codec(symmetric_encryption_keys=["new", b"old"])
    assert both.decode(old.encode({"type": "t"})) == {"type": "t"}
    with pytest.raises(ConfigError, match="non-empty"):
        Codec(symmetric_encryption_keys=[""])


def test_size_limit_counts_the_encrypted_size() -> None:
    plain_len = len(Codec().encode({"type": "t", "b": "x" * 200}))
    assert plain_len < 256
    with pytest.raises(Exception, match="max_message_size is 256"):
        Codec(max_message_size=256, symmetric_encryption_keys=["k"]).encode(
            {"type": "t", "b": "x" * 200}
        )


def test_str_subclasses_are_accepted() -> None:
    class SafeString(str):
        pass

    assert validate_message({"type": SafeString("t"), "html": SafeString("<b>")})


def test_validation_error_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        validate_message({"type": "t", "x": {1.5: "float key"}})
    with pytest.raises(InvalidMessage, match="dict"):
        validate_message(None)
