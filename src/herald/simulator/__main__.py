"""``python -m herald.simulator [CONFIG.json] [--host H] [--port NAME=PORT ...]``

Starts the simulator, prints one JSON line with its URLs on stdout once every port listens,
and serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path

from herald.simulator.config import SimulatorConfig
from herald.simulator.server import PORT_NAMES, Simulator, serve


def _port(raw: str) -> tuple[str, int]:
    name, _, port = raw.partition("=")
    if name not in PORT_NAMES or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected NAME=PORT with NAME in {PORT_NAMES}")
    return name, int(port)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m herald.simulator", description=__doc__)
    parser.add_argument("config", nargs="?", type=Path, help="SimulatorConfig as JSON")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", action="append", type=_port, default=[], metavar="NAME=PORT")
    return parser


def _announce(sim: Simulator) -> None:
    sys.stdout.write(sim.urls.model_dump_json() + "\n")
    sys.stdout.flush()


async def _run(config: SimulatorConfig, host: str, ports: dict[str, int]) -> None:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await serve(config, host=host, ports=ports, on_ready=_announce)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    config = (
        SimulatorConfig.model_validate_json(args.config.read_text())
        if args.config is not None
        else SimulatorConfig()
    )
    asyncio.run(_run(config, args.host, dict(args.port)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
