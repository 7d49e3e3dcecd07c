"""The IPC region against another local user: squatting, links, foreign files, sockets.

Each test acts as a second identity (tests/security/users.py: uid 65534 while the
suite runs as root). The regions' root (/dev/shm in use) is a fresh world-writable,
sticky directory per test, as /dev/shm is, so no test touches the real one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from layers.config import layer_from_url
from layers.exceptions import ConfigError
from layers.ipc import IPCChannelLayer, access
from tests.helpers import msg, recv
from tests.security.users import NOBODY, OTHER, as_user, need_root, ok, start_as_user

GROUP = 4242  # a gid only the tests use; root may set any


@pytest.fixture
def shm(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A stand-in for /dev/shm: mode 1777, owned by root; removed afterwards."""
    need_root()
    where = Path(tempfile.mkdtemp(prefix="chanlayers-sec-", dir="/dev/shm"))
    where.chmod(0o1777)
    monkeypatch.setattr(access, "_root", lambda: where)
    yield where
    shutil.rmtree(where)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


async def test_another_users_directory_is_skipped_never_used(
    shm: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The attack: make the victim's directory first, open to all, and wait.
    ok(
        as_user(
            f"""
            base = Path({str(shm)!r}) / "chanlayers-0"
            (base / "r").mkdir(parents=True)
            for d in (base, base / "r"):
                d.chmod(0o777)
            (base / "r" / "region").write_bytes(b"")
            (base / "r" / "region").chmod(0o666)
            """
        )
    )
    with caplog.at_level(logging.WARNING, logger="layers.ipc"):
        layer = IPCChannelLayer(name="r")
    ours = shm / "chanlayers-0.1"
    try:
        assert layer.stats()["region_path"] == str(ours / "r")
        await layer.send("c", msg(1))
        assert (await recv(layer, "c"))["seq"] == 1
        assert (shm / "chanlayers-0" / "r" / "region").stat().st_size == 0
        assert f"ignoring {shm}/chanlayers-0, which another user made" in caplog.text
        assert "owned by uid 65534" in caplog.text
        assert (mode(ours), mode(ours / "r"), mode(ours / "r" / "region")) == (0o700,) * 2 + (
            0o600,
        )
        # A second process of this user settles on the same directory.
        again = IPCChannelLayer(name="r")
        assert again.stats()["region_users"] == 2
        await again.close()
    finally:
        await layer.close()
    assert not (ours / "r").exists()
    assert ours.is_dir()  # a base is kept, so every process finds the same one


@pytest.mark.parametrize("planted", ["region", "lock"])
async def test_a_planted_link_is_never_followed(shm: Path, planted: str) -> None:
    victim = shm / "victim"
    victim.write_bytes(b"precious")
    where = access.default_directory("r")
    where.mkdir(mode=0o700)
    (where / planted).symlink_to(victim)
    with pytest.raises(ConfigError, match=f"{where}/{planted} .*: it is a symbolic link"):
        IPCChannelLayer(name="r")
    assert victim.read_bytes() == b"precious"
    shutil.rmtree(where)


async def test_a_linked_or_foreign_region_directory_is_refused(shm: Path) -> None:
    mine = shm / "mine"
    mine.mkdir(mode=0o700)
    ok(
        as_user(
            f"""
            shm = Path({str(shm)!r})
            (shm / "link").symlink_to(shm / "mine")
            (shm / "theirs").mkdir(mode=0o700)
            """
        )
    )
    with pytest.raises(ConfigError, match=f"{shm}/link .*symbolic link"):
        IPCChannelLayer(path=shm / "link")
    with pytest.raises(ConfigError, match=f"{shm}/theirs .*owned by uid {NOBODY}, not by uid 0"):
        IPCChannelLayer(path=shm / "theirs")
    (shm / "open").mkdir()
    (shm / "open").chmod(0o777)
    with pytest.raises(ConfigError, match=f"{shm}/open .*mode 0777 lets other users in"):
        IPCChannelLayer(path=shm / "open")
    # A file in a directory of ours that someone else owns.
    (mine / "region").write_bytes(b"")
    os.chown(mine / "region", NOBODY, NOBODY)
    with pytest.raises(ConfigError, match=f"{mine}/region .*owned by uid {NOBODY}"):
        IPCChannelLayer(path=mine)


async def test_another_user_can_neither_read_nor_enter_a_region(shm: Path) -> None:
    async with IPCChannelLayer(name="r") as layer:
        await layer.send("c", msg(1))
        waiting = asyncio.create_task(layer.receive("other"))  # makes a wake-up socket
        await asyncio.sleep(0.05)
        where = Path(layer.stats()["region_path"])
        out = as_user(
            f"""
            where = Path({str(where)!r})
            for attempt in (
                lambda: os.listdir(where.parent),
                lambda: os.listdir(where),
                lambda: open(where / "region", "rb"),
                lambda: os.mkdir(where / "members" / "x"),
            ):
                try:
                    attempt()
                    print("allowed")
                except PermissionError:
                    print("denied")
            """
        )
        assert ok(out).split() == ["denied"] * 4
        waiting.cancel()
        assert (await recv(layer, "c"))["seq"] == 1


async def test_a_region_shared_with_a_group_on_purpose(shm: Path) -> None:
    async with IPCChannelLayer(name="g", group=GROUP) as layer:
        where = Path(layer.stats()["region_path"])
        assert where.parent.name == f"chanlayers-g{GROUP}"
        by_url = layer_from_url(f"ipc://g?group={GROUP}")
        assert by_url.stats()["region_users"] == 2
        await by_url.close()
        waiting = asyncio.create_task(layer.receive("c"))  # woken by the member below
        await asyncio.sleep(0.05)
        member = as_user(
            f"""
            async def main():
                async with IPCChannelLayer(name="g", group={GROUP}) as layer:
                    await layer.send("c", {{"type": "t", "from": os.getuid()}})
            asyncio.run(main())
            """,
            groups=(GROUP,),
            shm=shm,
        )
        ok(member)
        assert (await asyncio.wait_for(waiting, 5))["from"] == NOBODY
        (live,) = (where / "members").iterdir()
        assert (live.lstat().st_gid, mode(live)) == (GROUP, 0o640)
        assert (os.lstat(where).st_gid, mode(where)) == (GROUP, 0o2770)
        assert (mode(where / "region"), mode(where / "lock")) == (0o660, 0o660)
        # A user outside the group gets nowhere.
        outsider = as_user(
            f"""
            try:
                os.listdir({str(where)!r})
            except PermissionError:
                print("denied")
            """,
            uid=OTHER,
        )
        assert ok(outsider).split() == ["denied"]
    with pytest.raises(ConfigError, match="group 'no-such-group-here' does not exist"):
        IPCChannelLayer(name="g", group="no-such-group-here")


async def test_a_member_file_of_another_user_is_left_alone(shm: Path) -> None:
    # Issue 17.2: run as nobody, a root-owned file in members/ raised PermissionError.
    region = shm / "nobodys"
    (region / "members").mkdir(parents=True, mode=0o700)
    for d in (region, region / "members"):
        os.chown(d, NOBODY, NOBODY)
        d.chmod(0o700)
    (region / "members" / "0123456789ab").write_bytes(b"")
    (region / "members" / "0123456789ab").chmod(0o600)
    out = as_user(
        f"""
        async def main():
            layer = IPCChannelLayer(path={str(region)!r})
            await layer.send("c", {{"type": "t"}})
            print((await layer.receive("c"))["type"])
            await layer.close()
        asyncio.run(main())
        """
    )
    assert ok(out).split() == ["t"]
    assert f"left {region}/members/0123456789ab alone" in out.stderr


def test_abstract_socket_names_of_another_user_block_nothing(shm: Path) -> None:
    # Issue 17.3: another user bound "<client id>.1" in the abstract namespace first,
    # and the receive() of a second event loop failed with EADDRINUSE.
    layer = IPCChannelLayer(name="r")
    squatter = start_as_user(
        f"""
        held = []
        for n in range(4):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            s.bind(b"\\0chanlayers-ipc/{layer.client_id}." + str(n).encode())
            held.append(s)
        print("bound", flush=True)
        import time; time.sleep(60)
        """
    )
    try:
        assert squatter.stdout is not None
        assert squatter.stdout.readline().strip() == "bound", squatter.stderr

        async def wait_then_send(seq: int) -> None:
            waiting = asyncio.create_task(layer.receive("c"))
            await asyncio.sleep(0.05)
            await layer.send("c", msg(seq))
            assert (await asyncio.wait_for(waiting, 5))["seq"] == seq

        for seq in range(3):  # three event loops, three wake-up sockets
            asyncio.run(wait_then_send(seq))
        asyncio.run(layer.close())
    finally:
        squatter.kill()
        squatter.communicate()


async def test_another_user_cannot_bind_or_reach_a_wake_up_socket(shm: Path) -> None:
    async with IPCChannelLayer(name="r") as layer:
        waiting = asyncio.create_task(layer.receive("c"))
        await asyncio.sleep(0.05)
        wake = Path(layer.stats()["region_path"]) / "wake"
        (mine,) = wake.iterdir()
        assert stat.S_ISSOCK(mine.lstat().st_mode)
        assert mine.name == f"{layer.client_id}.0"
        out = as_user(
            f"""
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            for attempt in (
                lambda: s.bind({str(wake / (layer.client_id + ".1"))!r}),
                lambda: s.sendto(b"w", {str(mine)!r}),
            ):
                try:
                    attempt()
                    print("allowed")
                except PermissionError:
                    print("denied")
            """
        )
        assert ok(out).split() == ["denied", "denied"]
        await layer.send("c", msg(7))
        assert (await asyncio.wait_for(waiting, 5))["seq"] == 7
    assert not wake.exists()
