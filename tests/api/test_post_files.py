"""CSV import (whole file validated first, all or nothing, errors per line) and export."""

from __future__ import annotations

import csv
import io

import pytest

from herald.domain import Platform
from tests.api.conftest import assert_problem, later
from tests.api.test_posts import SPRING, Y


async def upload(tenant, text: str | bytes, content_type: str = "text/csv"):
    data = text.encode() if isinstance(text, str) else text
    return await tenant.client.post(
        "/v1/posts/import", headers={**tenant.headers, "content-type": content_type}, content=data
    )


async def stored(store, tenant) -> int:
    return len(await store.list_posts(tenant.workspace_id, limit=100_000))


async def test_import_stores_every_row(tenant, api_store):
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
    response = await upload(tenant, out.getvalue())
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["imported"] == 6
    assert [p["line"] for p in body["posts"]] == [2, 3, 4, 6, 7, 8]  # row 4 spans two lines
    second = body["posts"][1]["post"]["deliveries"]
    times = {d["channel_id"]: d["scheduled_at"] for d in second}
    assert times[fb["id"]] == f"{Y}-03-01T08:00:00Z"  # Paris, UTC+1 in winter
    assert times[ig["id"]] == f"{Y}-03-01T14:00:00Z"  # New York, UTC-5
    kinds = [m["kind"] for m in body["posts"][2]["post"]["content"]["media"]]
    assert kinds == ["image", "video"]
    assert body["posts"][3]["post"]["overrides"]["youtube"]["title"] == "My video"
    queued = [p["post"]["deliveries"][0]["scheduled_at"] for p in body["posts"][4:]]
    assert len(set(queued)) == 2  # two rows, two different slots
    assert await stored(api_store, tenant) == 6


async def test_errors_are_reported_per_line_and_nothing_is_imported(tenant, other, api_store):
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
    response = await upload(tenant, text)
    problem = assert_problem(response, 422)
    found = {(e["line"], e["field"]) for e in problem["errors"]}
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
    assert not any(e["line"] in (2, 12) for e in problem["errors"])
    gap = [e for e in problem["errors"] if e["line"] == 5]
    assert [e["field"] for e in gap] == ["local_time"], problem["errors"]
    assert await stored(api_store, tenant) == 0
    assert theirs["id"] in str(problem["errors"])  # reported as not found, like any unknown id


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (b"text,scheduled_at\nhello,2030-01-01T00:00:00Z\n", "channel_ids"),
        (b"channel_ids,colour\nch_1,red\n", "colour"),
        (b"channel_ids,text,text\nch_1,a,b\n", "text"),
        (b"channel_ids,text\n\xff\xfe,x\n", "body"),
        (b"channel_ids,text\nch_1,x,extra\n", "body"),
        (b"", "channel_ids"),
        (b"channel_ids\n\n\n", "body"),
        (b'channel_ids,text\nch_1,"unterminated\n', "body"),
    ],
)
async def test_malformed_files(tenant, api_store, data, field):
    assert_problem(await upload(tenant, data), 422, field)
    assert await stored(api_store, tenant) == 0


async def test_an_unterminated_quote_is_named_at_the_line_where_its_row_starts(tenant, api_store):
    """The reader only notices at the end of the file; the person must look at line 3."""
    rows = ["channel_ids,text", "ch_1,fine", 'ch_1,"never closed', "ch_1,more", "ch_1,and more"]
    problem = assert_problem(await upload(tenant, "\n".join(rows) + "\n"), 422, "body")
    assert [e["line"] for e in problem["errors"]] == [3]
    assert "starts on line 3" in problem["errors"][0]["message"]
    assert await stored(api_store, tenant) == 0


async def test_import_limits(tenant, app, api_store):
    channel = await tenant.channel()
    settings = app.state.services.settings
    rows = "".join(
        f"{channel['id']},row {i},{later()}\n" for i in range(settings.api.import_max_rows + 1)
    )
    assert_problem(await upload(tenant, "channel_ids,text,scheduled_at\n" + rows), 422, "body")
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


async def test_export_pages_through_many_posts(tenant, api_store):
    channel = await tenant.channel()
    text = "channel_ids,text,scheduled_at\n" + "".join(
        f"{channel['id']},row {i},{later()}\n" for i in range(1200)
    )
    assert (await upload(tenant, text)).status_code == 201
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
