"""What every connector does to a post's content before anything is sent."""

from __future__ import annotations

from collections.abc import Callable

from herald.domain import Content
from herald.errors import ContentInvalid, ContentRejected

__all__ = ["ensure_valid", "with_link"]


def with_link(text: str, link: str | None) -> str:
    """The text with the link on its own paragraph, for post types that cannot carry a link.

    Used for Facebook and LinkedIn photo posts, Instagram captions and YouTube descriptions,
    so a link the user wrote is never silently dropped.
    """
    if not link:
        return text
    return f"{text}\n\n{link}" if text else link


def ensure_valid(validate: Callable[[Content], None], content: Content, platform: str) -> None:
    """Run the connector's own validation again at publish time, before any request.

    Content is validated when stored; a configuration change (or a stored post from an older
    version) can still make it unpublishable, and that is a permanent refusal.
    """
    try:
        validate(content)
    except ContentInvalid as exc:
        raise ContentRejected(f"{platform}: {exc.message}", platform=platform) from exc
