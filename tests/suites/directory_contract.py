"""The Directory contract: the memory and PostgreSQL directories give the same answers.

A tier provides an open, empty directory through a ``directory`` fixture.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from herald.domain import ApiKey, KeyHome, WorkspaceHome
from herald.errors import Conflict, NotFound
from herald.types import Directory

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def home(workspace_id="ws_a", region="eu-west-1", minutes=0):
    return WorkspaceHome(workspace_id, region, T0 + timedelta(minutes=minutes))


def key(prefix="hk_00000001", key_id="key_1", workspace_id="ws_a"):
    return ApiKey(key_id, workspace_id, prefix, "first key", created_at=T0)


class DirectoryContract:
    async def test_is_a_directory(self, directory):
        assert isinstance(directory, Directory)

    async def test_a_workspace_is_found_with_its_region(self, directory):
        await directory.add_workspace(home())
        assert await directory.workspace("ws_a") == home()
        assert await directory.workspace("ws_unknown") is None

    async def test_a_workspace_is_added_once(self, directory):
        await directory.add_workspace(home())
        with pytest.raises(Conflict):
            await directory.add_workspace(home(region="us-east-1"))
        assert (await directory.workspace("ws_a")).region == "eu-west-1"

    async def test_workspaces_are_listed_oldest_first_per_region(self, directory):
        await directory.add_workspace(home("ws_b", "us-east-1", minutes=2))
        await directory.add_workspace(home("ws_c", "eu-west-1", minutes=3))
        await directory.add_workspace(home("ws_a", "eu-west-1", minutes=1))
        assert [h.workspace_id for h in await directory.workspaces()] == ["ws_a", "ws_b", "ws_c"]
        assert [h.workspace_id for h in await directory.workspaces("eu-west-1")] == [
            "ws_a",
            "ws_c",
        ]
        assert await directory.workspaces("ap-south-1") == []

    async def test_a_key_is_found_by_prefix_and_by_id_with_its_region(self, directory):
        await directory.add_workspace(home())
        await directory.add_key(key(), "d" * 64)
        expected = KeyHome("hk_00000001", "key_1", "ws_a", "eu-west-1", "d" * 64)
        assert await directory.key("hk_00000001") == expected
        assert await directory.key_by_id("key_1") == expected
        assert await directory.key("hk_ffffffff") is None
        assert await directory.key_by_id("key_unknown") is None

    async def test_a_key_of_an_unknown_workspace_is_refused(self, directory):
        with pytest.raises(NotFound):
            await directory.add_key(key(workspace_id="ws_none"), "d" * 64)
        assert await directory.key("hk_00000001") is None

    async def test_a_prefix_is_given_once(self, directory):
        await directory.add_workspace(home())
        await directory.add_key(key(), "d" * 64)
        with pytest.raises(Conflict):
            await directory.add_key(key(key_id="key_2"), "e" * 64)
        assert (await directory.key("hk_00000001")).key_id == "key_1"

    async def test_a_revoked_key_stays_known_as_revoked(self, directory):
        await directory.add_workspace(home())
        await directory.add_key(key(), "d" * 64)
        await directory.revoke_key("key_1")
        await directory.revoke_key("key_unknown")  # nothing to do
        assert (await directory.key("hk_00000001")).revoked

    async def test_removing_a_workspace_forgets_its_keys(self, directory):
        await directory.add_workspace(home())
        await directory.add_workspace(home("ws_b"))
        await directory.add_key(key(), "d" * 64)
        await directory.add_key(key("hk_00000002", "key_2", "ws_b"), "e" * 64)
        await directory.remove_workspace("ws_a")
        await directory.remove_workspace("ws_unknown")
        assert await directory.workspace("ws_a") is None
        assert await directory.key("hk_00000001") is None
        assert (await directory.key("hk_00000002")).workspace_id == "ws_b"

    async def test_a_move_marks_the_workspace_and_its_keys_until_it_ends(self, directory):
        await directory.add_workspace(home())
        await directory.add_key(key(), "d" * 64)
        moving = await directory.begin_move("ws_a", "us-east-1")
        assert (moving.region, moving.moving_to) == ("eu-west-1", "us-east-1")
        assert (await directory.key("hk_00000001")).moving_to == "us-east-1"
        # Run again after an interruption: the same move carries on.
        assert await directory.begin_move("ws_a", "us-east-1") == moving
        done = await directory.end_move("ws_a", moved=True)
        assert (done.region, done.moving_to) == ("us-east-1", None)
        found = await directory.key("hk_00000001")
        assert (found.region, found.moving_to) == ("us-east-1", None)

    async def test_a_move_undone_leaves_the_workspace_where_it_was(self, directory):
        await directory.add_workspace(home())
        await directory.begin_move("ws_a", "us-east-1")
        done = await directory.end_move("ws_a", moved=False)
        assert (done.region, done.moving_to) == ("eu-west-1", None)

    async def test_a_move_to_its_own_region_or_a_second_destination_is_refused(self, directory):
        await directory.add_workspace(home())
        with pytest.raises(Conflict):
            await directory.begin_move("ws_a", "eu-west-1")
        await directory.begin_move("ws_a", "us-east-1")
        with pytest.raises(Conflict):
            await directory.begin_move("ws_a", "ap-south-1")
        with pytest.raises(NotFound):
            await directory.begin_move("ws_none", "us-east-1")
        with pytest.raises(NotFound):
            await directory.end_move("ws_none", moved=True)

    async def test_one_run_of_a_move_at_a_time(self, directory):
        await directory.add_workspace(home())
        async with directory.move_lock("ws_a"):
            with pytest.raises(Conflict, match="another run"):
                async with directory.move_lock("ws_a"):
                    pass
            async with directory.move_lock("ws_b"):  # another workspace's: its own
                pass
        async with directory.move_lock("ws_a"):  # released when the run ended
            pass
