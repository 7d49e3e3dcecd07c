"""The codec: wire format, refusals, encryption."""

from __future__ import annotations

import functools
import time

import msgpack
import pytest

from layers import codec as codec_module
from layers.codec import Codec, validate_message
from layers.exceptions import ConfigError, InvalidMessage, UndecodableMessage


def test_round_trip_plain_and_encrypted() -> None:
    message = {"type": "t", "b": b"\x00", "n": [1, 2.5, None, True], "d": {"k": "v"}}
    for codec in (Codec(), Codec(symmetric_encryption_keys=["k-sixteen-bytes-at-least"])):
        assert codec.decode(codec.encode(message)) == message


def test_plain_payload_is_msgpack() -> None:
    payload = Codec().encode({"type": "t", "b": b"x"})
    assert msgpack.unpackb(payload, raw=False) == {"type": "t", "b": b"x"}


def test_encrypted_payload_hides_the_plaintext() -> None:
    payload = Codec(symmetric_encryption_keys=["k-sixteen-bytes-at-least"]).encode(
        {"type": "t", "secret": "hunter2"}
    )
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
    encoded = Codec(symmetric_encryption_keys=["a-sixteen-bytes-at-least"]).encode({"type": "t"})
    with pytest.raises(UndecodableMessage, match="decryption"):
        Codec(symmetric_encryption_keys=["b-sixteen-bytes-at-least"]).decode(encoded)
    flipped = encoded[:20] + bytes([encoded[20] ^ 1]) + encoded[21:]
    with pytest.raises(UndecodableMessage, match="decryption"):
        Codec(symmetric_encryption_keys=["a-sixteen-bytes-at-least"]).decode(flipped)


def test_keys_may_be_bytes_and_rotate() -> None:
    old = Codec(symmetric_encryption_keys=[b"old-sixteen-bytes-at-least"])
    both = Codec(
        symmetric_encryption_keys=["new-sixteen-bytes-at-least", b"old-sixteen-bytes-at-least"]
    )
    assert both.decode(old.encode({"type": "t"})) == {"type": "t"}
    with pytest.raises(ConfigError, match="non-empty"):
        Codec(symmetric_encryption_keys=[""])


def test_size_limit_counts_the_encrypted_size() -> None:
    plain_len = len(Codec().encode({"type": "t", "b": "x" * 200}))
    assert plain_len < 256
    with pytest.raises(Exception, match="max_message_size is 256"):
        Codec(max_message_size=256, symmetric_encryption_keys=["k-sixteen-bytes-at-least"]).encode(
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


KEY = "k-sixteen-bytes-at-least"


@pytest.mark.parametrize("secret", ["a", "fifteen-bytes!!", b"\x00" * 15])
def test_a_secret_too_short_to_be_one_is_refused_without_showing_it(secret: str | bytes) -> None:
    with pytest.raises(ConfigError, match="too short to be a secret .*secrets.token_urlsafe") as e:
        Codec(symmetric_encryption_keys=[secret])
    assert "fifteen-bytes!!" not in str(e.value)
    Codec(symmetric_encryption_keys=["sixteen-bytes!!!"])  # 16 is enough


def test_ciphertext_older_than_the_expiry_is_a_replay() -> None:
    sender = Codec(symmetric_encryption_keys=[KEY])
    receiver = Codec(symmetric_encryption_keys=[KEY], max_age=60 + 60)
    payload = sender.encode({"type": "t"})
    assert receiver.decode(payload) == {"type": "t"}
    assert receiver.decode(payload, now=time.time() + 119) == {"type": "t"}
    with pytest.raises(UndecodableMessage, match="replay"):
        receiver.decode(payload, now=time.time() + 125)
    assert sender.decode(payload, now=time.time() + 10**6) == {"type": "t"}  # no max_age


def test_the_receivers_size_limit_applies_to_what_it_reads() -> None:
    big = Codec(max_message_size=1 << 20).encode({"type": "t", "b": b"x" * 5000})
    with pytest.raises(UndecodableMessage, match="over max_message_size"):
        Codec(max_message_size=4096).decode(big)


@pytest.mark.parametrize(
    ("forged", "why"),
    [
        ({b"type": "t"}, '"type" key'),
        ({"type": "t", b"raw-key": 1}, "keys must be str"),
        (
            {"type": "t", "deep": functools.reduce(lambda inner, _: [inner], range(900), [])},
            "nests",
        ),
    ],
)
def test_forged_payloads_that_break_the_message_rules_are_undecodable(
    forged: object, why: str
) -> None:
    # Written straight into the backend by someone with write access: no sender checked it.
    payload = msgpack.packb(forged, use_bin_type=True)
    with pytest.raises(UndecodableMessage, match=why):
        Codec().decode(payload)


def test_encrypted_payload_carries_its_destination_sealed() -> None:
    codec = Codec(symmetric_encryption_keys=["k-sixteen-bytes-at-least"])
    message = {"type": "t"}
    assert codec.unseal(codec.encode(message, "payments")) == (("c", "payments"), message)
    assert codec.unseal(codec.encode(message, group="room")) == (("g", "room"), message)
    assert codec.unseal(codec.encode(message)) == (("", ""), message)
    assert b"payments" not in codec.encode(message, "payments")
    # Plaintext carries none: anyone could write one.
    assert Codec().unseal(Codec().encode(message, "payments")) == (None, message)


def test_a_payload_decoded_again_is_checked_once_and_each_copy_is_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every member of a group in a process receives the same payload object.
    codec = Codec(symmetric_encryption_keys=[KEY])
    flat = codec.encode({"type": "t", "n": 1, "text": "hi"})
    nested = codec.encode({"type": "t", "rows": [[1, 2]], "meta": {"a": "b"}})
    checks, decrypts = [], []
    real_check, real_decrypt = codec_module.validate_message, codec._fernet.decrypt  # type: ignore[union-attr]
    monkeypatch.setattr(
        codec_module, "validate_message", lambda m: checks.append(m) or real_check(m)
    )
    monkeypatch.setattr(
        codec._fernet, "decrypt", lambda *a, **k: decrypts.append(a) or real_decrypt(*a, **k)
    )
    for payload in (flat, nested):
        checks.clear()
        decrypts.clear()
        copies = [codec.decode(payload) for _ in range(4)]
        assert len(checks) == 1
        assert len(decrypts) == 1
        assert all(copy == copies[0] for copy in copies)
        assert len({id(copy) for copy in copies}) == 4
        copies[0]["type"] = "changed"
        copies[1].setdefault("extra", 1)
        assert codec.decode(payload) == copies[3]
        assert copies[3]["type"] == "t"
    copies[2]["rows"][0].append(3)
    copies[2]["meta"]["a"] = "c"
    assert copies[3]["rows"] == [[1, 2]]
    assert copies[3]["meta"] == {"a": "b"}
    # Another object with the same bytes is decoded (and checked) afresh.
    checks.clear()
    assert codec.decode(bytes(bytearray(flat))) == {"type": "t", "n": 1, "text": "hi"}
    assert len(checks) == 1
