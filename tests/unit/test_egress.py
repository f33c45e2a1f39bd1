"""Egress: Herald connects where a tenant points it only if the address is public, or one the
operator allowed; names are resolved once and what is connected to is what was checked."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from pydantic import ValidationError

from herald.config import LinkedInSettings, Settings
from herald.egress.http import GuardedConnector, GuardedResolver, guarded_session
from herald.egress.policy import EgressPolicy
from herald.errors import ContentRejected, EgressRefused
from herald.platforms.http import HttpClient
from tests.unit.test_platform_fakes import download

REFUSED = [
    "127.0.0.1",  # loopback
    "127.255.255.254",
    "10.1.2.3",  # private
    "172.16.0.1",
    "192.168.0.10",
    "169.254.169.254",  # link-local: cloud metadata
    "100.64.0.1",  # shared address space (CGNAT)
    "0.0.0.0",  # unspecified
    "224.0.0.251",  # multicast
    "240.0.0.1",  # reserved
    "255.255.255.255",
    "192.0.2.10",  # documentation
    "198.18.0.1",  # benchmarking
    "::1",
    "::",
    "fe80::1",  # link-local
    "fe80::1%eth0",  # with its zone
    "fc00::1",  # unique local
    "fec0::1",  # site-local (deprecated, never public)
    "ff02::1",  # multicast
    "::ffff:127.0.0.1",  # IPv4-mapped loopback
    "::ffff:169.254.169.254",  # IPv4-mapped metadata
    "2002:a9fe:a9fe::",  # 6to4 of 169.254.169.254
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
    "not an address",
]
PUBLIC = ["8.8.8.8", "151.101.1.69", "2606:4700::1111", "::ffff:8.8.8.8", "2002:808:808::"]


@pytest.mark.parametrize("address", REFUSED)
def test_addresses_that_are_not_public_are_refused(address):
    assert not EgressPolicy().allows(address)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address):
    assert EgressPolicy().allows(address)


def test_an_operator_allows_networks_one_by_one():
    policy = EgressPolicy.allowing("127.0.0.1/32", "10.20.0.0/16")
    assert policy.allows("127.0.0.1")
    assert policy.allows("::ffff:127.0.0.1")  # the IPv4 address it reaches is allowed
    assert policy.allows("10.20.3.4")
    assert not policy.allows("127.0.0.2")
    assert not policy.allows("10.21.0.1")


def test_settings_take_networks_from_the_environment_and_refuse_a_blanket(monkeypatch):
    monkeypatch.setenv("HERALD_EGRESS__ALLOW_CIDRS", "127.0.0.1/32, 10.20.0.0/16")
    policy = EgressPolicy.from_settings(Settings().egress)
    assert policy.allows("10.20.3.4")
    assert not policy.allows("10.21.0.1")
    for blanket in ("0.0.0.0/0", "::/0"):
        with pytest.raises(ValidationError, match="every address"):
            Settings(egress={"allow_cidrs": [blanket]})
    with pytest.raises(ValidationError):
        Settings(egress={"allow_cidrs": ["10.0.0.1/8"]})  # host bits set: a typo, not a network


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1/x", "http://[::1]:8080/", "http://169.254.169.254/latest/", "/x"]
)
def test_literal_addresses_in_urls_are_checked_before_any_request(url):
    with pytest.raises(EgressRefused, match=r"^address not allowed$"):
        EgressPolicy().check_url(url)


async def test_registration_refuses_names_that_resolve_to_refused_addresses():
    with pytest.raises(EgressRefused):
        await EgressPolicy().check_name("localhost")
    with pytest.raises(EgressRefused):
        await EgressPolicy().check_name("[::1]")
    await EgressPolicy.allowing("127.0.0.0/8", "::1/128").check_name("localhost")
    await EgressPolicy().check_name("hooks.acme.test")  # no answer now: checked at each send


# -- connections ---------------------------------------------------------------------------------
class Flipping(AbstractResolver):
    """A resolver that answers ``first`` once and ``then`` every time after (DNS rebinding)."""

    def __init__(self, first: str, then: str) -> None:
        self.answers = [first, then]
        self.asked = 0

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        address = self.answers[min(self.asked, 1)]
        self.asked += 1
        return [
            ResolveResult(
                hostname=host, host=address, port=port, family=socket.AF_INET, proto=0, flags=0
            )
        ]

    async def close(self) -> None:
        pass


class Receiver:
    """An HTTP server on one loopback address, counting what reaches it."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.hits = 0
        self.port = 0

    async def handle(self, _request: web.Request) -> web.Response:
        self.hits += 1
        return web.Response(body=b"media bytes")


@pytest.fixture
async def receivers() -> AsyncIterator[dict[str, Receiver]]:
    """One receiver on 127.0.0.2 (standing for a public host) and one on 127.0.0.1 (an
    internal service), on the same port."""
    found = {host: Receiver(host) for host in ("127.0.0.2", "127.0.0.1")}
    runners = []
    port = 0
    for receiver in found.values():
        app = web.Application()
        app.router.add_get("/{tail:.*}", receiver.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, receiver.host, port)
        await site.start()
        port = port or runner.addresses[0][1]
        receiver.port = port
        runners.append(runner)
    try:
        yield found
    finally:
        for runner in runners:
            await runner.cleanup()


async def test_a_name_that_resolves_elsewhere_the_second_time_never_gets_through(receivers):
    public, internal = receivers["127.0.0.2"], receivers["127.0.0.1"]
    policy = EgressPolicy.allowing("127.0.0.2/32")  # 127.0.0.2 plays a public host
    resolver = Flipping("127.0.0.2", "127.0.0.1")
    url = f"http://media.example:{public.port}/video.mp4"
    for _ in range(2):  # a session each: nothing cached between them
        async with guarded_session(policy, resolver=resolver) as session:
            if resolver.asked == 0:
                async with session.get(url) as resp:
                    assert await resp.read() == b"media bytes"
            else:
                with pytest.raises(EgressRefused):
                    await session.get(url)
    assert resolver.asked == 2
    assert (public.hits, internal.hits) == (1, 0)


async def test_a_literal_address_is_refused_before_connecting(receivers):
    internal = receivers["127.0.0.1"]
    async with guarded_session(EgressPolicy()) as session:
        with pytest.raises(EgressRefused):
            await session.get(f"http://127.0.0.1:{internal.port}/")
        with pytest.raises(EgressRefused):
            await session.get(f"http://[::ffff:127.0.0.1]:{internal.port}/")
    assert internal.hits == 0


async def test_the_connector_refuses_a_peer_not_allowed_whatever_resolved_the_name(receivers):
    """The last word is the address the socket reached, checked before the request is
    written: here a resolver that knows nothing of the policy points at loopback."""
    internal = receivers["127.0.0.1"]
    connector = GuardedConnector(EgressPolicy(), resolver=Flipping("127.0.0.1", "127.0.0.1"))
    async with aiohttp.ClientSession(connector=connector) as session:
        with pytest.raises(EgressRefused):
            await session.get(f"http://internal.example:{internal.port}/")
    assert internal.hits == 0


async def test_the_guarded_resolver_refuses_a_name_with_any_refused_address():
    class Both(Flipping):
        async def resolve(self, host, port=0, family=socket.AF_INET):
            public = await super().resolve(host, port, family)
            return [*public, {**public[0], "host": "10.0.0.8"}]

    guarded = GuardedResolver(EgressPolicy(), Both("8.8.8.8", "8.8.8.8"))
    with pytest.raises(EgressRefused):
        await guarded.resolve("cdn.example")


# -- media downloads -----------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["127.0.0.1", "169.254.169.254", "10.0.0.5"])
async def test_a_media_url_to_an_internal_address_is_refused_in_the_same_words(where, receivers):
    port = receivers["127.0.0.1"].port
    client = HttpClient("linkedin", LinkedInSettings(timeout_s=2.0, connect_timeout_s=1.0))
    try:
        with pytest.raises(ContentRejected) as refused:
            await download(client, f"http://{where}:{port}/image.jpg")
    finally:
        await client.aclose()
    assert refused.value.message == "linkedin: media URL refused: address not allowed"
    assert receivers["127.0.0.1"].hits == 0


async def test_a_media_url_the_operator_allowed_is_downloaded(receivers):
    port = receivers["127.0.0.1"].port
    client = HttpClient("youtube", LinkedInSettings(), egress=EgressPolicy.allowing("127.0.0.1/32"))
    try:
        assert await download(client, f"http://127.0.0.1:{port}/v.mp4") == b"media bytes"
    finally:
        await client.aclose()


async def test_the_platform_session_is_not_the_media_session(receivers):
    """The platform's own base URL is the operator's to choose (the simulator on loopback):
    the policy guards only where tenants point."""
    port = receivers["127.0.0.1"].port
    url = f"http://127.0.0.1:{port}/x"
    client = HttpClient("linkedin", LinkedInSettings(base_url=url), egress=EgressPolicy())
    try:
        assert (await client.request("GET", url)).status == 200  # the platform: reached
        with pytest.raises(ContentRejected):
            await download(client, url)  # a tenant's media URL: refused
    finally:
        await client.aclose()
    assert receivers["127.0.0.1"].hits == 1
