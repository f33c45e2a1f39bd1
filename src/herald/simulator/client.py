"""A client for a simulator in another process: the in-process API, async, over the admin
port (see :mod:`.admin`).

    async with SimulatorClient(admin_url) as sim:
        account = await sim.add_account(Platform.FACEBOOK)
        summary = await sim.audit.summary()
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp

from herald.domain import MediaKind, Platform
from herald.simulator.accounts import SimAccount, UnknownAccount
from herald.simulator.audit import PostRecord, Refusal, RequestRecord, Violation, matching
from herald.simulator.config import FaultConfig
from herald.simulator.lifecycle import Lifecycle
from herald.simulator.server import SimulatorUrls

__all__ = ["RemoteAudit", "SimulatorClient", "SimulatorClientError"]


class SimulatorClientError(RuntimeError):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"simulator admin API answered {status}: {body}")
        self.status = status
        self.body = body


class _Transport:
    def __init__(self, admin_url: str, session: aiohttp.ClientSession | None) -> None:
        self.base = admin_url.rstrip("/")
        self._session = session
        self._owned = session is None

    async def get(self, path: str, **params: str) -> Any:
        """The JSON answer to ``GET path`` with ``params`` as its query."""
        return await self._request("GET", path, params=params)

    async def send(self, method: str, path: str, body: Any = None) -> Any:
        """The JSON answer to ``method path`` with ``body``, if any, as JSON."""
        return await self._request(method, path, json=body)

    async def _request(self, method: str, path: str, **options: Any) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        async with self._session.request(method, self.base + path, **options) as response:
            text = await response.text()
            if response.status >= 400:
                raise SimulatorClientError(response.status, text)
            return await response.json() if text else None

    async def aclose(self) -> None:
        if self._owned and self._session is not None:
            await self._session.close()
        self._session = None


#: The lists ``GET /_sim/audit`` answers with, each unless asked not to.
_SECTIONS = ("posts", "violations", "refusals")


def _platform(raw: Platform | str | None) -> Platform | None:
    return None if raw is None else Platform(raw)


class RemoteAudit:
    """The simulator's :class:`~.audit.Audit`, read over HTTP."""

    def __init__(self, transport: _Transport) -> None:
        self._t = transport

    async def _read(self, section: str | None = None) -> dict[str, Any]:
        """The audit's summary and ``section`` (a list), without the other lists: after a
        benchmark the post list is long."""
        skip = {name: "false" for name in _SECTIONS if name != section}
        answer: dict[str, Any] = await self._t.get("/_sim/audit", **skip)
        return answer

    async def summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = (await self._read())["summary"]
        return summary

    async def posts(
        self, platform: Platform | str | None = None, account: str | None = None
    ) -> list[PostRecord]:
        posts = [PostRecord.from_dict(item) for item in (await self._read("posts"))["posts"]]
        return matching(posts, _platform(platform), account)

    async def duplicates(self) -> int:
        return int((await self.summary())["duplicates"])

    async def violations(self, platform: Platform | str | None = None) -> list[Violation]:
        raw = (await self._read("violations"))["violations"]
        return matching([Violation.from_dict(item) for item in raw], _platform(platform))

    async def refusals(
        self, platform: Platform | str | None = None, account: str | None = None
    ) -> list[Refusal]:
        raw = (await self._read("refusals"))["refusals"]
        return matching([Refusal.from_dict(item) for item in raw], _platform(platform), account)

    async def requests(
        self, platform: Platform | str | None = None, account: str | None = None
    ) -> list[RequestRecord]:
        params = {}
        if platform is not None:
            params["platform"] = Platform(platform).value
        if account is not None:
            params["account"] = account
        raw = await self._t.get("/_sim/audit/requests", **params)
        return [RequestRecord.from_dict(item) for item in raw["requests"]]

    async def reset(self) -> None:
        await self._t.send("POST", "/_sim/audit/reset")


class SimulatorClient(Lifecycle):
    def __init__(self, admin_url: str, *, session: aiohttp.ClientSession | None = None) -> None:
        self._t = _Transport(admin_url, session)
        self.audit = RemoteAudit(self._t)

    async def stop(self) -> None:
        """Close the HTTP session, if this client opened it."""
        await self._t.aclose()

    async def health(self) -> bool:
        return bool((await self._t.get("/_sim/health"))["ok"])

    async def urls(self) -> SimulatorUrls:
        return SimulatorUrls.model_validate(await self._t.get("/_sim/urls"))

    async def settings_overrides(self) -> dict[str, dict[str, str]]:
        overrides: dict[str, dict[str, str]] = await self._t.get("/_sim/settings-overrides")
        return overrides

    async def add_account(self, platform: Platform | str, name: str | None = None) -> SimAccount:
        body = {"platform": Platform(platform).value, "name": name}
        return SimAccount.from_dict(await self._t.send("POST", "/_sim/accounts", body))

    async def accounts(self, platform: Platform | str | None = None) -> list[SimAccount]:
        params = {} if platform is None else {"platform": Platform(platform).value}
        raw = await self._t.get("/_sim/accounts", **params)
        return [SimAccount.from_dict(item) for item in raw["accounts"]]

    async def revoke(self, platform: Platform | str, external_id: str) -> None:
        await self._account_call(platform, external_id, "revoke")

    async def reauthorize(self, platform: Platform | str, external_id: str) -> dict[str, str]:
        raw = await self._account_call(platform, external_id, "reauthorize")
        return dict(raw["credentials"])

    async def faults(self, platform: Platform | str) -> FaultConfig:
        raw = await self._t.get("/_sim/faults")
        return FaultConfig.model_validate(raw[Platform(platform).value])

    async def set_faults(self, platform: Platform | str, faults: FaultConfig) -> None:
        body = {"platform": Platform(platform).value, "faults": faults.model_dump(mode="json")}
        await self._t.send("PUT", "/_sim/faults", body)

    async def media_url(self, kind: MediaKind | str, name: str, *, size: int | None = None) -> str:
        params = {"kind": MediaKind(kind).value, "name": name}
        if size is not None:
            params["bytes"] = str(size)
        return str((await self._t.get("/_sim/media-url", **params))["url"])

    async def take_down(self, platform: Platform | str, *, for_s: float | None = None) -> None:
        """Crash the platform's server: its port refuses connections, until ``for_s`` seconds
        have passed (if given) or :meth:`bring_up`."""
        body = {} if for_s is None else {"seconds": for_s}
        await self._t.send("POST", f"/_sim/platforms/{Platform(platform).value}/down", body)

    async def bring_up(self, platform: Platform | str) -> None:
        await self._t.send("POST", f"/_sim/platforms/{Platform(platform).value}/up")

    async def is_down(self, platform: Platform | str) -> bool:
        return bool((await self._t.get("/_sim/platforms"))[Platform(platform).value]["down"])

    async def advance_clock(self, seconds: float) -> float:
        raw = await self._t.send("POST", "/_sim/clock/advance", {"seconds": seconds})
        return float(raw["now"])

    async def engagement_truth(
        self,
        platform: Platform | str,
        external_id: str,
        *,
        week_of: float | None = None,
        content: str | None = None,
        length: int | None = None,
    ) -> list[float]:
        """:meth:`Simulator.engagement_truth` of a simulator in its own process."""
        params = {"week_of": week_of, "content": content, "length": length}
        path = f"/_sim/engagement/{Platform(platform).value}/{external_id}/truth"
        raw = await self._t.get(path, **{k: str(v) for k, v in params.items() if v is not None})
        return [float(value) for value in raw["hours"]]

    async def expected_engagement(
        self, platform: Platform | str, post_id: str, *, age_s: float | None = None
    ) -> float:
        """:meth:`Simulator.expected_engagement` of a simulator in its own process."""
        path = f"/_sim/engagement/{Platform(platform).value}/posts/{quote(post_id, safe='')}"
        params = {} if age_s is None else {"age_s": str(age_s)}
        return float((await self._t.get(path, **params))["expected"])

    async def _account_call(self, platform: Platform | str, external_id: str, action: str) -> Any:
        kind = Platform(platform)
        path = f"/_sim/accounts/{kind.value}/{external_id}/{action}"
        try:
            return await self._t.send("POST", path)
        except SimulatorClientError as exc:
            if exc.status == 404:
                raise UnknownAccount(kind, external_id) from exc
            raise
