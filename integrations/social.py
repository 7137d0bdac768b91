"""Social-media and news monitoring — feed of posts with matched keywords.

The monitoring platform (giám sát mạng xã hội, báo chí) pushes one page of its feed at a time to
`POST /integrations/social/posts`:

    {"posts": [{"id": "p-8801", "platform": "facebook", "url": "https://mxh.example/p-8801",
                "author": "Nguyễn Văn A", "text": "Đường ĐT743 ngập sâu…",
                "published_at": "2026-11-27T21:00:00+07:00",
                "matched_keywords": ["ngập đường Dĩ An", "ĐT743"], "reach": 1200}]}

A post matching several watched keywords is several signals: the vocabulary's `social.post` has
one `keyword`, so each matched keyword becomes its own event, id `<post id>#<keyword>` (a page
delivered again, or a post seen again on the next page, is a duplicate). The event's time is
`published_at`, so the hot-topic rule counts posts when they were published, not when the page
arrived. `platform` is one of the vocabulary's (any case). A bad post refuses that post only; the
answer's `index` is the post's position in `posts`. An empty page is acknowledged with zeros.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint

from engine.api import ApiProblem, json_body, require_source
from integrations import intake
from integrations import native as feed

bp = Blueprint("social", __name__, url_prefix="/integrations/social")

SOURCE = "/integrations/social"
PLATFORMS = ("facebook", "youtube", "tiktok", "zalo", "news", "forum")
# What the vocabulary calls the feed's fields, to name them back in the engine's refusals.
RENAMES = {"post_id": "id", "keyword": "matched_keywords"}


def _keywords(item: dict, problems: feed.Problems) -> list[str]:
    value = item.get("matched_keywords")
    if not isinstance(value, list) or not value:
        problems.append(("matched_keywords", "is required: a non-empty list of keywords"))
        return []
    out: list[str] = []
    for i, keyword in enumerate(value):
        if not isinstance(keyword, str) or not keyword.strip():
            problems.append((f"matched_keywords[{i}]", "must be a non-empty text"))
        elif " ".join(keyword.split()) not in out:  # the same keyword twice is one signal
            out.append(" ".join(keyword.split()))
    return out


def post_events(item: Any) -> tuple[list[dict], feed.Problems, str | None]:
    """One post's social.post events (one per matched keyword), or its problems; and its id."""
    problems = feed.not_an_object(item)
    if problems:
        return [], problems, None
    post_id = feed.text_field(item, "id", problems)
    platform = feed.text_field(item, "platform", problems)
    if platform is not None and platform.lower() not in PLATFORMS:
        problems.append(("platform", f"must be one of {', '.join(PLATFORMS)}, not {platform!r}"))
    moment = feed.moment_field(item, "published_at", problems)
    keywords = _keywords(item, problems)
    optional = {name: feed.text_field(item, name, problems, required=False)
                for name in ("text", "author", "url")}
    optional["reach"] = feed.count_field(item, "reach", problems, required=False)
    if problems:
        return [], problems, post_id
    common = {"post_id": post_id, "platform": platform.lower(),
              **{k: v for k, v in optional.items() if v is not None}}
    return [intake.cloud_event("social.post", f"{post_id}#{keyword}", SOURCE,
                               {**common, "keyword": keyword}, subject=post_id, time=moment)
            for keyword in keywords], [], post_id


@bp.post("/posts")
@require_source
def posts():
    """Store a feed page's posts as social.post events, one per matched keyword."""
    body = json_body()
    page = body.get("posts") if isinstance(body, dict) else None
    if not isinstance(page, list):
        intake.refuse([{"field": "posts", "message": "is required: a list of posts"}],
                      'the body must be a feed page {"posts": [...]}')
    if len(page) > feed.MAX_ITEMS:
        raise ApiProblem(413, "Content Too Large", f"at most {feed.MAX_ITEMS} posts per page")
    batch = feed.Batch(renames=RENAMES)
    for index, item in enumerate(page):
        events, problems, post_id = post_events(item)
        batch.take(index, events, problems, post_id)
    return feed.deliver(batch, single=False)
