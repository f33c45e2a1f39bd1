"""The ConcurrencyCaps contract: every implementation (memory, Redis) passes these tests.

All or none across the keys of one request, a release frees, a lease that ends unrenewed
frees (its holder died), a renewal keeps, and the wait a full cap names. A tier provides its
caps through a ``new_caps`` fixture: an async function making empty caps, granting at once,
with a lease of ``lease_s`` seconds (10 unless asked), parametrized over the kinds it runs on;
``tests.conftest.caps_maker`` builds each kind. Times are Unix seconds passed in: no test
waits for a lease.
"""

from __future__ import annotations

import pytest

from herald.types import CapClaim, CapsFull, ConcurrencyCaps, Permit


def cap(key="k", limit=1):
    return CapClaim(key, limit)


class CapsContract:
    @pytest.fixture
    async def caps(self, new_caps):
        return await new_caps()

    async def test_is_concurrency_caps(self, caps):
        assert isinstance(caps, ConcurrencyCaps)
        assert caps.lease_s == 10.0

    async def test_admits_up_to_the_cap_then_names_the_full_cap(self, caps):
        for t in (0.0, 3.0):
            assert isinstance(await caps.acquire([cap(limit=2)], "h", t), Permit)
        full = await caps.acquire([cap(limit=2)], "h", 5.0)
        # Nobody releases: a slot frees when the lease taken at t=0 ends, at t=10.
        assert full == CapsFull(5.0, ("k",))

    async def test_a_permit_names_its_holder_and_every_key(self, caps):
        permit = await caps.acquire([cap("a"), cap("b", 3)], "engine-1", 0.0)
        assert isinstance(permit, Permit)
        assert permit.id.startswith("engine-1:")
        assert set(permit.keys) == {"a", "b"}

    async def test_keys_are_counted_apart(self, caps):
        assert isinstance(await caps.acquire([cap("a")], "h", 0.0), Permit)
        assert isinstance(await caps.acquire([cap("b")], "h", 0.0), Permit)
        assert isinstance(await caps.acquire([cap("a")], "h", 0.0), CapsFull)

    async def test_all_or_none_across_keys(self, caps):
        assert isinstance(await caps.acquire([cap("tight")], "h", 0.0), Permit)
        full = await caps.acquire([cap("loose", 3), cap("tight")], "h", 1.0)
        assert isinstance(full, CapsFull)
        assert full.keys == ("tight",)
        # The refused request took nothing on "loose": its three slots are all free.
        for _ in range(3):
            assert isinstance(await caps.acquire([cap("loose", 3)], "h", 2.0), Permit)
        assert isinstance(await caps.acquire([cap("loose", 3)], "h", 2.0), CapsFull)

    async def test_every_full_key_is_named_with_the_longest_wait(self, caps):
        await caps.acquire([cap("a")], "h", 0.0)
        await caps.acquire([cap("b")], "h", 4.0)
        full = await caps.acquire([cap("a"), cap("b"), cap("c")], "h", 5.0)
        assert full == CapsFull(9.0, ("a", "b"))  # b's lease ends at 14

    async def test_release_frees_every_slot_of_the_permit(self, caps):
        permit = await caps.acquire([cap("a"), cap("b")], "h", 0.0)
        await caps.release([permit])
        assert isinstance(await caps.acquire([cap("a")], "h", 1.0), Permit)
        assert isinstance(await caps.acquire([cap("b")], "h", 1.0), Permit)

    async def test_releasing_twice_frees_one_slot_only(self, caps):
        first = await caps.acquire([cap(limit=2)], "h", 0.0)
        await caps.release([first])
        await caps.acquire([cap(limit=2)], "h", 1.0)
        await caps.acquire([cap(limit=2)], "h", 1.0)
        await caps.release([first])  # gone already: the two slots now held stay held
        assert isinstance(await caps.acquire([cap(limit=2)], "h", 2.0), CapsFull)

    async def test_a_lease_that_ends_unrenewed_frees_its_slot(self, caps):
        assert isinstance(await caps.acquire([cap()], "dead", 0.0), Permit)
        assert isinstance(await caps.acquire([cap()], "h", 9.9), CapsFull)
        assert isinstance(await caps.acquire([cap()], "h", 10.0), Permit)

    async def test_renewal_keeps_the_slot_for_another_lease(self, caps):
        permit = await caps.acquire([cap("a"), cap("b")], "h", 0.0)
        await caps.renew([permit], 8.0)
        assert await caps.acquire([cap("a")], "h", 12.0) == CapsFull(6.0, ("a",))
        assert isinstance(await caps.acquire([cap("b")], "h", 18.0), Permit)

    async def test_renewal_takes_back_a_slot_the_caps_lost(self, caps):
        # Its holder was too late (or the caps' server restarted): the request is still in
        # flight, so counting it again is the truth.
        permit = await caps.acquire([cap()], "h", 0.0)
        await caps.renew([permit], 11.0)
        assert isinstance(await caps.acquire([cap()], "h", 12.0), CapsFull)

    async def test_an_empty_request_takes_nothing(self, caps):
        permit = await caps.acquire([], "h", 0.0)
        assert isinstance(permit, Permit)
        assert permit.keys == ()
        await caps.release([permit])
        await caps.renew([permit], 1.0)
