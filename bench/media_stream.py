"""A large video streamed from its URL to the platform: throughput, and memory that stays flat.

    .venv/bin/python bench/media_stream.py                          # 2 GiB to YouTube
    .venv/bin/python bench/media_stream.py --size-mib 512 --no-length --platform linkedin

The simulator serves the media file (its bytes made as they are sent, never stored) and
plays the platform, which counts and hashes what arrives. The real connector streams the
file from one to the other: YouTube in resumable-upload chunks of ``--chunk-mib``, LinkedIn
as one streamed ``PUT`` (its cap raised to the file's size). Everything runs in this one
process on uvloop, so the peak RSS printed covers the media server, the connector and the
platform together: it must not grow with the file's size.

Printed: bytes, seconds, MB/s (10^6 bytes), the process's RSS before the upload and its peak
(``getrusage``), and whether the platform received the file's exact bytes (SHA-256). Results
go to ``bench/results/media_stream-<date>.json``; the run fails if the bytes differ.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvloop

from herald.config import Settings
from herald.domain import Channel, Content, Media, MediaKind, Platform, utcnow
from herald.platforms.registry import build_connectors
from herald.simulator import LatencyModel, Simulator, SimulatorConfig, media_sha256
from herald.types import PublishRequest

RESULTS = Path(os.environ.get("HERALD_BENCH_RESULTS", Path(__file__).parent / "results"))
MiB = 1024 * 1024
_PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def rss_mib() -> float:
    """The process's resident set now (``/proc/self/statm``)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE_KIB / 1024


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def settings(sim: Simulator, platform: Platform, size: int, chunk_mib: int) -> Settings:
    sections: dict[str, Any] = {k: dict(v) for k, v in sim.settings_overrides().items()}
    if platform is Platform.YOUTUBE:
        sections["youtube"].update(upload_chunk_bytes=chunk_mib * MiB, max_media_bytes=size)
    else:
        sections["linkedin"].update(max_media_bytes=size, timeout_s=3600.0)
    return Settings.model_validate(sections)


def request(sim: Simulator, platform: Platform, url: str, tag: str) -> PublishRequest:
    account = sim.add_account(platform)
    channel = Channel(
        id=f"ch_{platform.value}",
        platform=platform,
        external_id=account.external_id,
        name=account.name,
        timezone="UTC",
        credentials_ref="sim",
    )
    kind = MediaKind.VIDEO if platform is Platform.YOUTUBE else MediaKind.IMAGE
    return PublishRequest(
        delivery_id=f"dlv_{tag}",
        channel=channel,
        credentials=dict(account.credentials),
        content=Content(text=f"media stream {tag}\nbenchmark", media=(Media(url, kind),)),
        attempt=1,
        since=utcnow() - timedelta(seconds=1),
    )


async def upload(
    sim: Simulator, platform: Platform, size: int, args: argparse.Namespace, tag: str
) -> dict[str, Any]:
    kind = "video" if platform is Platform.YOUTUBE else "image"
    name = f"{tag}.{'mp4' if kind == 'video' else 'jpg'}"
    url = sim.media_url(kind, name, size=size, length=not args.no_length)
    connector = build_connectors(settings(sim, platform, size, args.chunk_mib))[platform]
    try:
        start = time.perf_counter()
        published = await connector.publish(request(sim, platform, url, tag))
        seconds = time.perf_counter() - start
    finally:
        await connector.aclose()
    [post] = [p for p in sim.audit.posts(platform) if p.post_id == published.external_id]
    return {
        "bytes": post.media_bytes,
        "seconds": seconds,
        "sha256_ok": post.media_sha256 == media_sha256(f"{kind}/{name}", size),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    config = SimulatorConfig.from_settings(
        Settings(), latency=LatencyModel(median_s=0.0, p99_s=0.0), seed=7
    )
    platform = Platform(args.platform)
    async with Simulator(config) as sim:
        await upload(sim, platform, 4 * args.chunk_mib * MiB, args, "warm-up")
        before = rss_mib()
        run = await upload(sim, platform, args.size_mib * MiB, args, "large")
    return {
        "platform": platform.value,
        "source_length": "none (chunked)" if args.no_length else "declared",
        "chunk_mib": args.chunk_mib if platform is Platform.YOUTUBE else None,
        **run,
        "mb_per_s": run["bytes"] / run["seconds"] / 1e6,
        "rss_before_mib": before,
        "peak_rss_mib": peak_rss_mib(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=2048, help="the file's size (2 GiB)")
    parser.add_argument("--chunk-mib", type=int, default=8, help="youtube.upload_chunk_bytes")
    parser.add_argument("--platform", choices=["youtube", "linkedin"], default="youtube")
    parser.add_argument("--no-length", action="store_true", help="the source sends chunked")
    args = parser.parse_args()
    figures = uvloop.run(main(args))
    print(
        f"{figures['platform']}: {figures['bytes']:,} bytes in {figures['seconds']:.1f} s, "
        f"{figures['mb_per_s']:.0f} MB/s; RSS before {figures['rss_before_mib']:.0f} MiB, "
        f"peak {figures['peak_rss_mib']:.0f} MiB; bytes exact: {figures['sha256_ok']}"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    record = {"args": vars(args), "figures": figures}
    (RESULTS / f"media_stream-{stamp}.json").write_text(json.dumps(record, indent=2))
    sys.exit(0 if figures["sha256_ok"] else 1)
