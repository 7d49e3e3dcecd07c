"""channels' name helpers on every layer: require_*, the deprecated valid_*, the template."""

from __future__ import annotations

import pytest

from layers.exceptions import InvalidChannelName
from layers.inmemory import InMemoryChannelLayer


async def test_deprecated_valid_name_helpers_warn_and_check() -> None:
    layer = InMemoryChannelLayer()
    with pytest.warns(DeprecationWarning, match="require_valid_channel_name"):
        assert layer.valid_channel_name("a.b!c") is True
    with pytest.warns(DeprecationWarning, match="require_valid_group_name"):
        assert layer.valid_group_name("room-1") is True
    with pytest.warns(DeprecationWarning, match="deprecated"), pytest.raises(InvalidChannelName):
        layer.valid_group_name("bad!")
    await layer.close()


async def test_invalid_name_error_template_and_list_check() -> None:
    layer = InMemoryChannelLayer()
    text = layer.invalid_name_error.format("Group")
    assert text.startswith("Group name must be a valid unicode string with length < 100 ")
    assert layer.match_type_and_length("x" * 99)
    assert not layer.match_type_and_length("x" * 100)
    assert not layer.match_type_and_length(b"x")
    assert layer.valid_channel_names(["a", "b!c"])
    with pytest.raises(TypeError, match="non-empty list"):
        layer.valid_channel_names([])
    with pytest.raises(InvalidChannelName):
        layer.valid_channel_names(["ok", "not ok"])
    await layer.close()
