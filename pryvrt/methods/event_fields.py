"""The event fields clients send (create, start, update, batch) and how they are stored.

Typed values come in two forms, stored as one: the seed form
``"value": {"type": "position:WGS84", "value": "40.71, -73.99"}`` and the later form
``"type": "mass/kg", "content": 90``. Both land in the columns ``type`` (the type string)
and ``value`` (the content, any JSON). Answers carry both views: ``"type": T`` and
``"value": {"type": T, "value": content}``; an untyped event has neither key.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StringConstraints

from pryvrt import errors
from pryvrt.methods.params import (
    AnyJson,
    ClientData,
    ItemRef,
    NewItemId,
    Params,
    Tags,
    merge_client_data,
    raw_max_length,
)
from pryvrt.methods.series_types import content_for, is_series
from pryvrt.storage.events import Event

TypeName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), raw_max_length(200)
]
Description = Annotated[str, StringConstraints(max_length=100_000)]
# Bounded so that time + duration stays a finite, exact-enough float (±3000 years).
EventTime = Annotated[float, Field(ge=-1e11, le=1e11, allow_inf_nan=False)]
Duration = Annotated[float, Field(ge=0, le=2e11, allow_inf_nan=False)]


class TypedValue(Params):
    """The seed form of a typed value: ``{"type": "class:format", "value": <any JSON>}``."""

    type: TypeName
    value: AnyJson = None


class ValueForms(Params):
    """``type`` + ``content``, or ``value: {type, value}``: never both in one call."""

    type: TypeName | None = None
    content: AnyJson = None
    value: TypedValue | None = None

    def typed_content(self, current: Event | None = None) -> tuple[str | None, Any]:
        """(type, content) after this call: a partial update keeps what it does not name.
        Every creation and update calls it, so the rules of the two forms live here (not in
        a per-model validator, which a 10 000-event batch would run 10 000 times)."""
        given = self.model_fields_set
        if self.value is not None and {"type", "content"} & given:
            raise errors.InvalidParametersFormat(
                "give either value: {type, value} or type and content, not both",
                {"value": "not with type or content"},
            )
        if "value" in given:
            return (None, None) if self.value is None else (self.value.type, self.value.value)
        kind = current.type if current is not None else None
        content = current.content if current is not None else None
        if "type" in given:
            kind = self.type
            if kind is None:
                content = None
        if "content" in given:
            content = self.content
        if kind is None and content is not None:
            raise errors.InvalidParametersFormat(
                "content needs a type", {"content": "an event with content needs a type"}
            )
        return kind, content


class EventFields(ValueForms):
    """Fields of a new event (create, start, batch)."""

    id: NewItemId | None = None
    time: EventTime | None = None
    folderId: ItemRef | None = None
    tags: Tags = Field(default_factory=list)
    description: Description | None = None
    clientData: ClientData = Field(default_factory=dict)


def unique_tags(tags: list[str]) -> list[str]:
    return list(dict.fromkeys(tags))


def new_event(
    fields: EventFields,
    event_id: str,
    channel_id: str,
    *,
    at: float,
    is_period: bool,
    duration: float | None,
    now: float,
    by: str,
) -> Event:
    """A new event from the fields a client sent, created by ``by`` (an accessId) at ``now``."""
    kind, content = fields.typed_content()
    if is_series(kind):
        # API.md §15: the server sets the content, and the duration follows the points.
        assert kind is not None
        if is_period:
            raise errors.InvalidOperation(
                "the duration of a series event follows its points: leave duration out",
                {"type": kind},
            )
        content = content_for(kind, content)
        is_period, duration = True, 0.0
    return Event(
        id=event_id,
        channel_id=channel_id,
        time=at,
        is_period=is_period,
        duration=duration if is_period else None,
        folder_id=fields.folderId,
        type=kind,
        content=content,
        tags=unique_tags(fields.tags),
        description=fields.description,
        client_data=merge_client_data({}, fields.clientData),
        attachments=[],
        trashed=False,
        modified=now,
        created=now,
        created_by=by,
        modified_by=by,
    )
