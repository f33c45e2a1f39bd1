"""CSV import (whole file validated first, all or nothing, errors per line) and export."""

from __future__ import annotations

import csv
import io
import tracemalloc

import pytest

from herald.domain import Platform
from herald.service import import_work
from herald.service.csv_lines import Lines
from herald.service.import_work import Pacer
from herald.service.post_csv import BLANK_PAUSE
from tests.api.conftest import assert_problem, imported, later
from tests.api.test_posts import SPRING, Y


async def upload(tenant, text: str | bytes, content_type: str = "text/csv"):
    data = text.encode() if isinstance(text, str) else text
    return await tenant.client.post(
        "/v1/posts/import", headers={**tenant.headers, "content-type": content_type}, content=data
    )


async def stored(store, tenant) -> int:
    return len(await store.list_posts(tenant.workspace_id, limit=100_000))


async def import_posts(tenant, job: dict, **params) -> list[dict]:
    """Every post the import stored, page by page, in file order."""
    found, cursor = [], None
    while True:
        query = params | ({"cursor": cursor} if cursor else {})
        page = await tenant.get(job["posts_url"], params=query)
        assert page.status_code == 200, page.text
        found += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return found


def assert_failed(job: dict, field: str | None = None) -> dict:
    assert job["state"] == "failed", job
    assert job["detail"], job
    assert job["finished_at"] is not None
    assert job["progress"]["posts_written"] == 0
    if field is not None:
        assert field in [e["field"] for e in job["errors"]], job
    return job


async def test_import_stores_every_row(tenant, app, api_store):
    fb = await tenant.channel(Platform.FACEBOOK)
    ig = await tenant.channel(Platform.INSTAGRAM, timezone="America/New_York")
    yt = await tenant.channel(Platform.YOUTUBE)
    await tenant.put(
        f"/v1/channels/{fb['id']}/schedule", {"slots": [{"day": "monday", "time": "09:00"}]}
    )
    rows = [
        [
            "channel_ids",
            "text",
            "link",
            "media_urls",
            "media_kinds",
            "scheduled_at",
            "local_time",
            "timezone",
            "next_free_slot",
            "youtube_title",
            "youtube_media_urls",
        ],
        [
            fb["id"],
            "plain, with a comma",
            "https://acme.test",
            "",
            "",
            f"{Y}-03-01T09:00:00Z",
            "",
            "",
            "",
            "",
            "",
        ],
        [
            f"{fb['id']};{ig['id']}",
            "with a photo",
            "",
            "https://cdn.test/a.jpg",
            "",
            "",
            f"{Y}-03-01T09:00",
            "",
            "",
            "",
            "",
        ],
        [
            ig["id"],
            "multi\nline caption",
            "",
            "https://cdn.test/a.jpg https://cdn.test/b.mp4",
            "image video",
            "",
            f"{Y}-03-01T09:00",
            "Europe/Paris",
            "",
            "",
            "",
        ],
        [
            f"{ig['id']} {yt['id']}",
            "cross",
            "",
            "https://cdn.test/c.jpg",
            "",
            f"{Y}-03-02T09:00:00Z",
            "",
            "",
            "",
            "My video",
            "https://cdn.test/v.mp4",
        ],
        [fb["id"], "queued", "", "", "", "", "", "", "yes", "", ""],
        [fb["id"], "queued too", "", "", "", "", "", "", "true", "", ""],
    ]
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    job = await imported(tenant, app, out.getvalue())
    assert job["state"] == "succeeded", job
    assert job["progress"] == {
        "rows_total": 6,
        "rows_validated": 6,
        "posts_written": 6,
        "deliveries": 8,
    }
    assert (job["errors"], job["detail"]) == ([], None)
    posts = await import_posts(tenant, job, limit=4)  # two pages
    assert [p["line"] for p in posts] == [2, 3, 4, 6, 7, 8]  # row 4 spans two lines
    second = posts[1]["post"]["deliveries"]
    times = {d["channel_id"]: d["scheduled_at"] for d in second}
    assert times[fb["id"]] == f"{Y}-03-01T08:00:00Z"  # Paris, UTC+1 in winter
    assert times[ig["id"]] == f"{Y}-03-01T14:00:00Z"  # New York, UTC-5
    kinds = [m["kind"] for m in posts[2]["post"]["content"]["media"]]
    assert kinds == ["image", "video"]
    assert posts[3]["post"]["overrides"]["youtube"]["title"] == "My video"
    queued = [p["post"]["deliveries"][0]["scheduled_at"] for p in posts[4:]]
    assert len(set(queued)) == 2  # two rows, two different slots
    assert await stored(api_store, tenant) == 6
    # Made due: each delivery's next attempt is its due time, as for a post made one by one.
    assert all(
        d["next_attempt_at"] == d["scheduled_at"] for p in posts for d in p["post"]["deliveries"]
    )


async def test_errors_are_reported_per_line_and_nothing_is_imported(tenant, other, app, api_store):
    mine = await tenant.channel(Platform.FACEBOOK)
    ig = await tenant.channel(Platform.INSTAGRAM)
    theirs = await other.channel()
    text = (
        "channel_ids,text,scheduled_at,local_time,timezone,media_urls,media_kinds\n"
        f"{mine['id']},fine,{later()},,,,\n"
        f"{theirs['id']},not mine,{later()},,,,\n"
        f"{ig['id']},no media,{later()},,,,\n"
        f"{mine['id']},gap,,{Y}-03-{SPRING}T02:30,Europe/Paris,,\n"
        f"{mine['id']},past,2001-01-01T00:00:00Z,,,,\n"
        f"{mine['id']},bad zone,,{Y}-03-01T09:00,Mars/Base,,\n"
        f"{mine['id']},bad kind,{later()},,,https://cdn.test/a.jpg,gif\n"
        f"{mine['id']},no time,,,,,\n"
        f"{mine['id']},bad time,tomorrow,,,,\n"
        ",no channel,{later()},,,,\n"
        f"{mine['id']},fine again,{later()},,,,\n"
    )
    job = assert_failed(await imported(tenant, app, text))
    found = {(e["line"], e["field"]) for e in job["errors"]}
    expected = {
        (3, "channel_ids"),
        (4, "media_urls"),
        (6, "scheduled_at"),
        (7, "timezone"),
        (8, "media_kinds"),
        (9, "scheduled_at"),
        (10, "scheduled_at"),
        (11, "channel_ids"),
    }
    assert expected <= found, found
    assert not any(e["line"] in (2, 12) for e in job["errors"])
    gap = [e for e in job["errors"] if e["line"] == 5]
    assert [e["field"] for e in gap] == ["local_time"], job["errors"]
    assert job["progress"]["rows_total"] == 11
    assert "nothing was imported" in job["detail"]
    assert await stored(api_store, tenant) == 0
    assert await import_posts(tenant, job) == []
    assert theirs["id"] in str(job["errors"])  # reported as not found, like any unknown id


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (b"text,scheduled_at\nhello,2030-01-01T00:00:00Z\n", "channel_ids"),
        (b"channel_ids,colour\nch_1,red\n", "colour"),
        (b"channel_ids,text,text\nch_1,a,b\n", "text"),
        (b"", "channel_ids"),
        (b"\xff\xfechannel_ids\nch_1\n", "body"),
        (b"42", "42"),
    ],
)
async def test_a_file_whose_header_is_wrong_is_refused_at_once(tenant, app, api_store, data, field):
    """Not a CSV of posts at all: a 422 naming the column, and no job."""
    problem = assert_problem(await upload(tenant, data), 422, field)
    assert [e["line"] for e in problem["errors"]] == [1] * len(problem["errors"])
    assert (await tenant.get("/v1/imports")).json()["items"] == []
    assert await stored(api_store, tenant) == 0


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (b"channel_ids,text\n\xff\xfe,x\n", "body"),
        (b"channel_ids,text\nch_1,x,extra\n", "body"),
        (b"channel_ids\n\n\n", "body"),
        (b'channel_ids,text\nch_1,"unterminated\n', "body"),
    ],
)
async def test_malformed_files(tenant, app, api_store, data, field):
    assert_failed(await imported(tenant, app, data), field)
    assert await stored(api_store, tenant) == 0


async def test_file_problems_are_named_at_their_line(tenant, app):
    """Read one line at a time, the file still names each problem at its exact line."""
    utf8 = assert_failed(await imported(tenant, app, b"channel_ids,text\nch_1,ok\nch_1,\xff\n"))
    assert [(e["line"], e["field"]) for e in utf8["errors"]] == [(3, "body")]
    bom = b"\xef\xbb\xbfchannel_ids,text\r\nch_nope,x\r\n"  # a BOM, CRLF: read as usual
    assert [e["line"] for e in assert_failed(await imported(tenant, app, bom))["errors"]] == [2]
    mac = b"channel_ids,text\rch_nope,x\rch_nope,y\r"  # lone CRs end lines too
    assert {e["line"] for e in assert_failed(await imported(tenant, app, mac))["errors"]} == {2, 3}


async def test_an_unterminated_quote_is_named_at_the_line_where_its_row_starts(
    tenant, app, api_store
):
    """The reader only notices at the end of the file; the person must look at line 3."""
    rows = ["channel_ids,text", "ch_1,fine", 'ch_1,"never closed', "ch_1,more", "ch_1,and more"]
    job = assert_failed(await imported(tenant, app, "\n".join(rows) + "\n"), "body")
    assert [e["line"] for e in job["errors"]] == [3]
    assert "starts on line 3" in job["errors"][0]["message"]
    assert await stored(api_store, tenant) == 0


async def test_import_limits(tenant, app, api_store):
    channel = await tenant.channel()
    settings = app.state.services.settings
    rows = "".join(
        f"{channel['id']},row {i},{later()}\n" for i in range(settings.api.import_max_rows + 1)
    )
    too_many = await imported(tenant, app, "channel_ids,text,scheduled_at\n" + rows)
    assert "more than" in assert_failed(too_many, "body")["detail"]
    assert_problem(await upload(tenant, "channel_ids\nx\n", "application/json"), 415)
    huge = b"channel_ids,text\n" + b"x" * (settings.api.import_max_bytes + 1)
    assert_problem(await upload(tenant, huge), 413)
    assert await stored(api_store, tenant) == 0


async def test_export_lists_every_delivery_with_its_state(tenant, other):
    a = await tenant.channel()
    b = await tenant.channel(Platform.LINKEDIN)
    first = await tenant.post_on([a, b], content={"text": 'first, with "quotes"\nand lines'})
    second = await tenant.post_on([a])
    await tenant.post(f"/v1/posts/{second['id']}/cancel")
    await other.post_on([await other.channel()])
    response = await tenant.get("/v1/posts/export")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 3
    assert {r["post_id"] for r in rows} == {first["id"], second["id"]}
    assert rows[0]["text"] == 'first, with "quotes"\nand lines'
    assert {(r["post_id"], r["status"]) for r in rows} == {
        (first["id"], "scheduled"),
        (second["id"], "cancelled"),
    }
    filtered = await tenant.get("/v1/posts/export", params={"status": "cancelled"})
    assert len(list(csv.DictReader(io.StringIO(filtered.text)))) == 1


async def test_export_pages_through_many_posts(tenant, app, api_store):
    channel = await tenant.channel()
    text = "channel_ids,text,scheduled_at\n" + "".join(
        f"{channel['id']},row {i},{later()}\n" for i in range(1200)
    )
    assert (await imported(tenant, app, text))["state"] == "succeeded"
    response = await tenant.get("/v1/posts/export")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 1200
    assert len({r["post_id"] for r in rows}) == 1200


@pytest.mark.parametrize(
    "text", ['=HYPERLINK("http://evil.example","x")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(1)"]
)
async def test_export_neutralises_cells_a_spreadsheet_would_run(tenant, text):
    """A tenant's text opened in a spreadsheet must stay text (OWASP, CSV injection): the
    export starts such a cell with a quote; the post itself keeps the text as written."""
    channel = await tenant.channel()
    post = await tenant.post_on([channel], content={"text": text})
    rows = list(csv.DictReader(io.StringIO((await tenant.get("/v1/posts/export")).text)))
    assert [r["text"] for r in rows] == [f"'{text}"]
    assert (await tenant.get(f"/v1/posts/{post['id']}")).json()["content"]["text"] == text


class StepWatch:
    """The most rows an import reads between two ticks of its pacer. A tick is where reading
    gives the event loop back once its time slice has passed (test_the_pacer_* below), so
    this bounds a step of the loop by rows, which a busy machine cannot make flaky."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._most = self._rows = 0
        row_read, tick = Lines.row_read, Pacer.tick

        def counted_row(lines: Lines) -> None:
            self._rows += 1
            row_read(lines)

        async def counted_tick(pacer: Pacer) -> None:
            self._most, self._rows = self.most_rows, 0
            await tick(pacer)

        monkeypatch.setattr(Lines, "row_read", counted_row)
        monkeypatch.setattr(Pacer, "tick", counted_tick)

    @property
    def most_rows(self) -> int:
        return max(self._most, self._rows)


class _Stopwatch:
    """perf_counter as the pacer reads it, moved by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def perf_counter(self) -> float:
        return self.now


async def test_the_pacer_gives_the_loop_back_once_its_slice_has_passed(monkeypatch):
    clock, slept = _Stopwatch(), []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(import_work, "time", clock)
    monkeypatch.setattr(import_work.asyncio, "sleep", sleep)
    pacer = Pacer(share=0.5, slice_s=0.002)
    clock.now += 0.001
    await pacer.tick()
    assert slept == []  # within its slice: it works on
    clock.now += 0.0015
    await pacer.tick()
    # 2.5 ms of work at half the time: as long away, and its next slice starts afresh.
    assert slept == [pytest.approx(0.0025)]
    clock.now += 0.001
    await pacer.tick()
    assert len(slept) == 1


async def test_a_file_of_blank_lines_is_read_in_short_steps_and_refused(
    tenant, app, api_store, monkeypatch
):
    """Blank lines make no row: 16 MiB of them used to be read in one step of the event loop
    (14 s, every other request waiting). A file may hold as many as rows, read a stretch at
    a time."""
    channel = await tenant.channel()
    data = b"channel_ids,text,scheduled_at\n" + b"\n" * 4_194_304
    data += f"{channel['id']},hi,{later()}\n".encode()
    watch = StepWatch(monkeypatch)
    job = await imported(tenant, app, data)
    assert "blank lines" in assert_failed(job, "body")["detail"]
    assert watch.most_rows <= 1 + BLANK_PAUSE <= 1_000, watch.most_rows  # not the whole file
    assert await stored(api_store, tenant) == 0


async def test_a_file_of_lone_crs_is_read_a_line_at_a_time(tenant, app, api_store, monkeypatch):
    """A lone CR ends a line, but no newline byte comes: a file of them used to be split whole
    while the upload was answered (16 MiB: 620 MB and a 1.2 s step). Its lines are split off
    as they are read."""
    data = b"channel_ids\r" + b"ch_1\r" * 1_048_576
    watch = StepWatch(monkeypatch)
    tracemalloc.start()
    try:
        answer = await upload(tenant, data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert answer.status_code == 202, answer.text
    await app.state.services.imports.runner.join(answer.json()["id"])
    assert peak < 4 * len(data), peak  # the body, as the client and the server hold it
    job = (await tenant.get(answer.headers["location"])).json()
    assert "more than" in assert_failed(job, "body")["detail"]
    assert watch.most_rows <= 2, watch.most_rows  # the header and a row, then one at a time
