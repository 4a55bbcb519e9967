"""Parameter types shared by methods (pydantic), and the id rules of API.md §4."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

# Matched with ``fullmatch``, never ``^...$``: Python's ``$`` also matches before a final
# newline, which let "null\n" pass (tests/test_names.py keeps ``$`` out of the package).
ID_PATTERN = re.compile(r"[a-zA-Z0-9._-]{1,100}")
RESERVED_IDS = frozenset(
    {
        "null",
        "*",
        "channels",
        "events",
        "folders",
        "tokens",
        "login",
        "logout",
        "user-info",
        "change-password",
        "batch",
        "socket.io",
        "bookmarks",
        "shares",
        "users",
        "health",
        "openapi.json",
    }
)


def check_item_id(value: str) -> str:
    """A client-chosen id; a violation is reported as INVALID_ITEM_ID, not a format error."""
    if not ID_PATTERN.fullmatch(value) or value in RESERVED_IDS:
        raise PydanticCustomError(
            "invalid_item_id",
            "ids are 1-100 characters among letters, digits, '.', '_' and '-',"
            " and not a reserved word",
        )
    return value


def _listify(value: Any) -> Any:
    """Query strings give one string where a list is expected; wrap it."""
    if isinstance(value, str):
        return [value]
    return value


def raw_max_length(limit: int) -> BeforeValidator:
    """``max_length`` on the value as sent: ``strip_whitespace`` would check it after
    trimming, so 300 trailing spaces would pass a 255 limit the OpenAPI document states."""

    def check(value: Any) -> Any:
        if isinstance(value, str) and len(value) > limit:
            raise PydanticCustomError(
                "string_too_long",
                "String should have at most {max_length} characters",
                {"max_length": limit},
            )
        return value

    return BeforeValidator(check)


# Free-form JSON (clientData, event content) nests at most this deep: deeper values could
# not be written back out (orjson stops at 255 levels) and nothing legitimate needs more.
MAX_JSON_DEPTH = 64


def check_json_depth(value: Any) -> Any:
    """Refuse free-form JSON nested deeper than MAX_JSON_DEPTH (scalars cost nothing)."""
    if not value or not isinstance(value, dict | list):
        return value  # a scalar, or an empty container: nothing nested
    level = [value]
    for _ in range(MAX_JSON_DEPTH + 1):
        level = [
            child
            for item in level
            if isinstance(item, dict | list)
            for child in (item.values() if isinstance(item, dict) else item)
        ]
        if not level:
            return value
    raise PydanticCustomError(
        "json_too_deep", "JSON nested deeper than {depth} levels", {"depth": MAX_JSON_DEPTH}
    )


AnyJson = Annotated[Any, AfterValidator(check_json_depth)]


class Params(BaseModel):
    """Base of every method's parameters: unknown keys are errors, not silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)


NewItemId = Annotated[
    str,
    AfterValidator(check_item_id),
    WithJsonSchema({"type": "string", "pattern": f"^{ID_PATTERN.pattern}$"}),
]
# An id named in a path or body to find an existing item.
ItemRef = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=255),
    raw_max_length(255),
]
# A time named in a query (fromTime, modifiedSince...): anything a JavaScript Date holds
# (±8.64e15 ms); stored times are narrower (event_fields.EventTime).
QUERY_TIME_LIMIT = 8.64e12
Timestamp = Annotated[float, Field(ge=-QUERY_TIME_LIMIT, le=QUERY_TIME_LIMIT, allow_inf_nan=False)]
# skip, limit: PostgreSQL's integer range (an OFFSET of 2^63 was a 500).
MAX_COUNT = 2**31 - 1
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
State = Literal["default", "trashed", "all"]
ClientData = Annotated[dict[str, Any], AfterValidator(check_json_depth)]
StrList = Annotated[list[str], BeforeValidator(_listify)]
Tag = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500), raw_max_length(500)
]
# Tags of an event, and of an events.get filter, are at most this many. events.get's filter
# is tested against every event with PostgreSQL's array overlap, which compares each tag of
# one side with each of the other and cannot be interrupted within a row: 100 000 tags
# stored against a 20 000-tag filter ran a minute past its request's 503.
MAX_TAGS = 100
Tags = Annotated[list[Tag], Field(max_length=MAX_TAGS)]
# Tags: trimmed, non-empty; from a query string too (one value → a list).
TagList = Annotated[list[Tag], BeforeValidator(_listify), Field(max_length=MAX_TAGS)]


class ChannelParams(Params):
    """Base of methods that act inside one channel (dispatch loads ``ctx.channel``)."""

    channelId: ItemRef


class NoParams(Params):
    pass


def merge_client_data(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """API.md §4: keys given replace, a key set to null is removed, others stay."""
    merged = dict(current)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged
