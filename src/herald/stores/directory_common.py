"""What both directories decide alike."""

from __future__ import annotations

from herald.domain import WorkspaceHome
from herald.errors import Conflict

__all__ = ["busy_move", "check_move"]


def check_move(home: WorkspaceHome, to: str) -> None:
    """A move is begun once, to another region: a second ``begin_move`` to the same region
    (a move command run again after it was interrupted) is allowed, to carry it on."""
    if home.region == to:
        raise Conflict(f"workspace {home.workspace_id!r} already lives in {to}")
    if home.moving_to is not None and home.moving_to != to:
        raise Conflict(
            f"workspace {home.workspace_id!r} is being moved to {home.moving_to}: finish or "
            "undo that move first"
        )


def busy_move(workspace_id: str) -> str:
    return (
        f"another run is moving workspace {workspace_id!r} (or giving its move up) now: wait "
        "for it to end; run this again only if it died"
    )
