"""Each platform's content rules, and the text each one sends for a post: no HTTP here.

The API checks a post against every target platform's rules before anything is stored
(:data:`VALIDATORS`, raising :class:`~herald.errors.ContentInvalid` with the field); the
connector applies the same rules again before sending (:func:`ensure_valid`). The text
functions say what a connector sends, and so what a look-up searches for among the
channel's posts. This module imports no HTTP client, so checking a post costs no aiohttp.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from types import MappingProxyType

from herald.domain import Content, MediaKind, Platform
from herald.errors import ContentInvalid, ContentRejected

__all__ = [
    "INSTAGRAM_MAX_CAPTION_CHARS",
    "INSTAGRAM_MAX_HASHTAGS",
    "INSTAGRAM_MAX_MEDIA",
    "LINKEDIN_MAX_COMMENTARY_CHARS",
    "VALIDATORS",
    "YOUTUBE_MAX_DESCRIPTION_BYTES",
    "YOUTUBE_MAX_TITLE_CHARS",
    "Validator",
    "ensure_valid",
    "escape_little_text",
    "facebook_message",
    "instagram_caption",
    "linkedin_commentary",
    "validate_facebook",
    "validate_instagram",
    "validate_linkedin",
    "validate_youtube",
    "with_link",
    "youtube_description",
    "youtube_title",
]

#: Raises :class:`~herald.errors.ContentInvalid` for content a platform refuses.
Validator = Callable[[Content], None]


def with_link(text: str, link: str | None) -> str:
    """The text with the link on its own paragraph, for post types that cannot carry a link.

    Used for Facebook and LinkedIn photo posts, Instagram captions and YouTube descriptions,
    so a link the user wrote is never silently dropped.
    """
    if not link:
        return text
    return f"{text}\n\n{link}" if text else link


def ensure_valid(validate: Validator, content: Content, platform: str) -> None:
    """Run the platform's rules again at publish time, before any request.

    Content is validated when stored; a configuration change (or a stored post from an older
    version) can still make it unpublishable, and that is a permanent refusal.
    """
    try:
        validate(content)
    except ContentInvalid as exc:
        raise ContentRejected(f"{platform}: {exc.message}", platform=platform) from exc


# -- Facebook ---------------------------------------------------------------------------------
def facebook_message(content: Content) -> str:
    """The post's text as sent: a feed post carries the link itself, a photo post cannot."""
    return with_link(content.text, content.link) if content.media else content.text


def validate_facebook(content: Content) -> None:
    if any(m.kind is MediaKind.VIDEO for m in content.media):
        raise ContentInvalid("Facebook video posts are not supported yet", field="media")
    if not (content.text.strip() or content.link or content.media):
        raise ContentInvalid("a Facebook post needs text, a link or images", field="text")


# -- Instagram --------------------------------------------------------------------------------
INSTAGRAM_MAX_MEDIA = 10
INSTAGRAM_MAX_CAPTION_CHARS = 2200
INSTAGRAM_MAX_HASHTAGS = 30
_HASHTAG = re.compile(r"#\w+")


def instagram_caption(content: Content) -> str:
    return with_link(content.text, content.link)


def validate_instagram(content: Content) -> None:
    count = len(content.media)
    if count == 0:
        raise ContentInvalid("an Instagram post needs at least one image or video", field="media")
    if count > INSTAGRAM_MAX_MEDIA:
        raise ContentInvalid(
            f"an Instagram carousel takes at most {INSTAGRAM_MAX_MEDIA} items, got {count}",
            field="media",
        )
    caption = instagram_caption(content)
    if len(caption) > INSTAGRAM_MAX_CAPTION_CHARS:
        raise ContentInvalid(
            f"Instagram caption is {len(caption)} characters (text and link); "
            f"the limit is {INSTAGRAM_MAX_CAPTION_CHARS}",
            field="text",
        )
    tags = len(_HASHTAG.findall(caption))
    if tags > INSTAGRAM_MAX_HASHTAGS:
        raise ContentInvalid(
            f"Instagram caption has {tags} hashtags; the limit is {INSTAGRAM_MAX_HASHTAGS}",
            field="text",
        )


# -- LinkedIn ---------------------------------------------------------------------------------
LINKEDIN_MAX_COMMENTARY_CHARS = 3000
#: "Little text" reserves these; each is sent backslash-escaped so the text arrives as written.
_RESERVED = frozenset("\\|{}@[]()<>#*_~")
_ESCAPED = str.maketrans({ch: f"\\{ch}" for ch in _RESERVED})


def escape_little_text(text: str) -> str:
    return text.translate(_ESCAPED)


def linkedin_commentary(content: Content) -> str:
    """The escaped commentary as sent: an image post carries the link in its text."""
    text = with_link(content.text, content.link) if content.media else content.text
    return escape_little_text(text)


def validate_linkedin(content: Content) -> None:
    if any(m.kind is MediaKind.VIDEO for m in content.media):
        raise ContentInvalid("LinkedIn video posts are not supported yet", field="media")
    if len(content.media) > 1:
        raise ContentInvalid(
            f"LinkedIn posts take at most one image, got {len(content.media)}", field="media"
        )
    if not (content.text.strip() or content.link or content.media):
        raise ContentInvalid("a LinkedIn post needs text, a link or an image", field="text")
    size = len(linkedin_commentary(content))
    if size > LINKEDIN_MAX_COMMENTARY_CHARS:
        raise ContentInvalid(
            f"LinkedIn commentary is {size} characters once reserved characters are escaped; "
            f"the limit is {LINKEDIN_MAX_COMMENTARY_CHARS}",
            field="text",
        )


# -- YouTube ----------------------------------------------------------------------------------
YOUTUBE_MAX_TITLE_CHARS = 100
YOUTUBE_MAX_DESCRIPTION_BYTES = 5000


def youtube_title(content: Content) -> str:
    """``title``, else the first line of the text cut at 100 characters, without < and >."""
    if content.title is not None and content.title.strip():
        return content.title
    first = next((line for line in content.text.splitlines() if line.strip()), "")
    return first.replace("<", "").replace(">", "").strip()[:YOUTUBE_MAX_TITLE_CHARS].strip()


def youtube_description(content: Content) -> str:
    return with_link(content.text, content.link)


def validate_youtube(content: Content) -> None:
    videos = sum(1 for m in content.media if m.kind is MediaKind.VIDEO)
    if videos != 1:
        raise ContentInvalid(
            f"a YouTube upload needs exactly one video, got {videos}", field="media"
        )
    if len(content.media) > 1:
        raise ContentInvalid("a YouTube upload takes no images besides its video", field="media")
    title = youtube_title(content)
    if not title:
        raise ContentInvalid(
            "a YouTube video needs a title: set title or write text", field="title"
        )
    if len(title) > YOUTUBE_MAX_TITLE_CHARS:
        raise ContentInvalid(
            f"YouTube title is {len(title)} characters; the limit is {YOUTUBE_MAX_TITLE_CHARS}",
            field="title",
        )
    if "<" in title or ">" in title:
        raise ContentInvalid("YouTube titles cannot contain < or >", field="title")
    size = len(youtube_description(content).encode())
    if size > YOUTUBE_MAX_DESCRIPTION_BYTES:
        raise ContentInvalid(
            f"YouTube description is {size} bytes (text and link); "
            f"the limit is {YOUTUBE_MAX_DESCRIPTION_BYTES}",
            field="text",
        )


#: Each platform's content rules, the very ones its connector applies again before sending.
#: The API checks posts with them before anything is stored.
VALIDATORS: Mapping[Platform, Validator] = MappingProxyType(
    {
        Platform.FACEBOOK: validate_facebook,
        Platform.INSTAGRAM: validate_instagram,
        Platform.LINKEDIN: validate_linkedin,
        Platform.YOUTUBE: validate_youtube,
    }
)
