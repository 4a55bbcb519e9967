"""Series event types (API.md §15): the built-in directory, client-declared fields, and
the checks of flatJSON points against a type.

A series event's ``content`` is set by the server: ``{elementType, fields, required}``,
``fields`` starting with ``deltaTime`` (seconds after the event's ``time``, >= 0).
Every field is a number; an optional field may be null in a point.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

from pryvrt import errors
from pryvrt.storage.series_codec import Points

SERIES_PREFIX = "series:"
TYPE_PATTERN = re.compile(r"series:[a-z0-9-]{1,100}/[a-z0-9-]{1,100}")
FIELD_PATTERN = re.compile(r"[a-zA-Z][a-zA-Z0-9_]{0,63}")
MAX_FIELDS = 32
DELTA_TIME = "deltaTime"

# elementType → (fields after deltaTime, required among them).
DIRECTORY: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "mass/kg": (("value",), ("value",)),
    "count/generic": (("value",), ("value",)),
    "count/steps": (("value",), ("value",)),
    "frequency/bpm": (("value",), ("value",)),
    "temperature/c": (("value",), ("value",)),
    "pressure/mmhg": (("value",), ("value",)),
    "length/m": (("value",), ("value",)),
    "speed/m-s": (("value",), ("value",)),
    "energy/kcal": (("value",), ("value",)),
    "ratio/percent": (("value",), ("value",)),
    "ratio/generic": (("value", "relativeTo"), ("value", "relativeTo")),
    "blood-pressure/mmhg-bpm": (("systolic", "diastolic", "rate"), ("systolic", "diastolic")),
    "position/wgs84": (
        (
            "latitude",
            "longitude",
            "altitude",
            "horizontalAccuracy",
            "verticalAccuracy",
            "speed",
            "bearing",
        ),
        ("latitude", "longitude"),
    ),
}


def is_series(kind: str | None) -> bool:
    return kind is not None and kind.startswith(SERIES_PREFIX)


def content_for(kind: str, given: Any) -> dict[str, Any]:
    """The content the server stores for a new series event of type ``kind``: from the
    directory (``given``, if any, must not declare other fields), else declared by the
    client as ``{fields: [...], required?: [...]}`` (``deltaTime`` first or implied;
    ``required`` defaults to every field)."""
    if not TYPE_PATTERN.fullmatch(kind):
        raise errors.InvalidParametersFormat(
            "a series type is series:{class}/{format} (lower-case letters, digits, '-')",
            {"type": kind},
        )
    element = kind[len(SERIES_PREFIX) :]
    declared = given.get("fields") if isinstance(given, dict) else None
    if element in DIRECTORY:
        fields, required = DIRECTORY[element]
        content = _content(element, fields, required)
        if declared is not None and declared not in (content["fields"], list(fields)):
            raise errors.InvalidParametersFormat(
                f"the fields of {element} are set by the server: {content['fields']}",
                {"content.fields": "does not match the directory"},
            )
        return content
    if given is None or declared is None:
        raise errors.InvalidParametersFormat(
            f"{kind} is not in the server's directory: declare its numeric fields in"
            " content.fields",
            {"content.fields": "missing"},
        )
    if not isinstance(given, dict) or set(given) - {"fields", "required", "elementType"}:
        raise errors.InvalidParametersFormat(
            "a series content is {fields, required?}", {"content": "unexpected keys"}
        )
    names = _names(declared, "content.fields")
    if names and names[0] == DELTA_TIME:
        names = names[1:]
    if not names:
        raise errors.InvalidParametersFormat(
            "a series needs at least one field besides deltaTime", {"content.fields": "empty"}
        )
    wanted = given.get("required")
    needed = names if wanted is None else _names(wanted, "content.required")
    unknown = [r for r in needed if r != DELTA_TIME and r not in names]
    if unknown:
        raise errors.InvalidParametersFormat(
            f"required names fields that are not declared: {unknown}",
            {"content.required": unknown},
        )
    return _content(element, tuple(names), tuple(r for r in needed if r != DELTA_TIME))


def _names(value: Any, where: str) -> list[str]:
    if (
        not isinstance(value, list)
        or not all(isinstance(v, str) and FIELD_PATTERN.fullmatch(v) for v in value)
        or len(value) > MAX_FIELDS + 1
        or len(set(value)) != len(value)
        or DELTA_TIME in value[1:]
    ):
        raise errors.InvalidParametersFormat(
            f"{where}: a list of at most {MAX_FIELDS} distinct names (a letter, then letters,"
            " digits or '_'), deltaTime first if given",
            {where: "invalid"},
        )
    return list(value)


def _content(element: str, fields: tuple[str, ...], required: tuple[str, ...]) -> dict[str, Any]:
    return {
        "elementType": element,
        "fields": [DELTA_TIME, *fields],
        "required": [DELTA_TIME, *required],
    }


@dataclass(frozen=True, slots=True)
class Layout:
    """A series event's fields (``content.fields``, deltaTime first) and which are required."""

    fields: tuple[str, ...]
    required: frozenset[str]

    @classmethod
    def of(cls, content: Any) -> Layout:
        return cls(tuple(content["fields"]), frozenset(content["required"]))

    @property
    def width(self) -> int:
        return len(self.fields)


def bad_row(row: int, message: str, **data: Any) -> errors.ApiError:
    return errors.InvalidParametersFormat(f"points[{row}]: {message}", {"row": row, **data})


def parse_points(layout: Layout, fields: Any, points: Any, limit: int) -> Points:
    """flatJSON ``fields`` and ``points`` → a float64 matrix in the layout's column order
    (null optional values as NaN), or a 400 naming the first bad row.

    ``fields`` may come in any order and leave out optional fields, never a required one.
    The common case (every value a number) is checked at C speed: the sets of row types,
    row lengths and value types, then one numpy conversion; anything else takes the
    row-by-row path that names the row."""
    names = _request_fields(layout, fields)
    if isinstance(points, np.ndarray):  # decoded by series_json: rows of finite numbers
        return _checked_matrix(layout, names, points, limit)
    if not isinstance(points, list):
        raise errors.InvalidParametersFormat("points must be a list", {"points": "not a list"})
    if len(points) > limit:
        raise bad_row(
            limit,
            f"more than {limit} points in one request (PRYVRT_MAX_SERIES_POINTS)",
            limit=limit,
        )
    width = len(names)
    matrix: Points | None = None
    if set(map(type, points)) <= {list} and set(map(len, points)) <= {width}:
        if set(map(type, chain.from_iterable(points))) <= {int, float}:
            try:
                flat = np.fromiter(chain.from_iterable(points), np.float64, len(points) * width)
            except OverflowError:  # an integer beyond float range
                flat = None
            if flat is not None:
                matrix = flat.reshape(len(points), width)
    if matrix is None:
        matrix = _rows_one_by_one(layout, names, points)
    elif not np.isfinite(matrix).all():
        row = int(np.flatnonzero(~np.isfinite(matrix).all(axis=1))[0])
        raise bad_row(row, "values must be finite numbers")
    negative = matrix[:, 0] < 0
    if negative.any():
        row = int(np.flatnonzero(negative)[0])
        raise bad_row(row, "deltaTime must be >= 0 (points follow the event's time)")
    return _to_layout(layout, names, matrix)


def _checked_matrix(layout: Layout, names: list[str], matrix: Points, limit: int) -> Points:
    """``parse_points`` of points already decoded as a matrix of finite numbers (rows of
    equal length): the same checks, in the same order, as for lists."""
    if len(matrix) > limit:
        raise bad_row(
            limit,
            f"more than {limit} points in one request (PRYVRT_MAX_SERIES_POINTS)",
            limit=limit,
        )
    if matrix.shape[1] != len(names):
        raise bad_row(0, f"each point is a list of {len(names)} values (one per field)")
    negative = matrix[:, 0] < 0
    if negative.any():
        row = int(np.flatnonzero(negative)[0])
        raise bad_row(row, "deltaTime must be >= 0 (points follow the event's time)")
    return _to_layout(layout, names, matrix)


def _request_fields(layout: Layout, fields: Any) -> list[str]:
    if (
        not isinstance(fields, list)
        or not all(isinstance(f, str) for f in fields)
        or len(set(fields)) != len(fields)
    ):
        raise errors.InvalidParametersFormat(
            "fields must be a list of distinct field names", {"fields": "invalid"}
        )
    unknown = [f for f in fields if f not in layout.fields]
    missing = [f for f in layout.fields if f in layout.required and f not in fields]
    if unknown or missing:
        raise errors.InvalidParametersFormat(
            f"fields must name deltaTime and every required field of this series"
            f" ({', '.join(layout.fields)}; required: {', '.join(sorted(layout.required))})",
            {"fields": {"unknown": unknown, "missing": missing}},
        )
    return list(fields)


def _rows_one_by_one(layout: Layout, names: list[str], points: list[Any]) -> Points:
    width = len(names)
    required = [name in layout.required for name in names]
    out = np.empty((len(points), width))
    for row, point in enumerate(points):
        if not isinstance(point, list) or len(point) != width:
            raise bad_row(row, f"each point is a list of {width} values (one per field)")
        for column, value in enumerate(point):
            if value is None:
                if required[column]:
                    raise bad_row(row, f"{names[column]} is required", field=names[column])
                out[row, column] = np.nan
            elif type(value) in (int, float):
                try:
                    number = float(value)
                except OverflowError:
                    number = float("inf")
                if not np.isfinite(number):
                    raise bad_row(
                        row, f"{names[column]} must be a finite number", field=names[column]
                    )
                out[row, column] = number
            else:
                raise bad_row(row, f"{names[column]} must be a number", field=names[column])
    return out


def _to_layout(layout: Layout, names: list[str], matrix: Points) -> Points:
    """Columns reordered to the layout; optional fields left out become NaN."""
    if names == list(layout.fields):
        return np.ascontiguousarray(matrix)
    out = np.full((len(matrix), layout.width), np.nan)
    for column, name in enumerate(names):
        out[:, layout.fields.index(name)] = matrix[:, column]
    return out


def refuse_series_change(
    current_type: str | None,
    current_content: Any,
    new_type: str | None,
    new_content: Any,
    duration_given: bool,
) -> None:
    """events.update: a series event keeps its type and content (server-set) and its
    duration (its points'); another event cannot become a series (it has no points)."""
    if not (is_series(current_type) or is_series(new_type)):
        return
    if (current_type, current_content) != (new_type, new_content):
        raise errors.InvalidOperation(
            "the type and content of a series event are fixed, and an event cannot become"
            " a series: create a series event instead",
            {"type": current_type},
        )
    if duration_given:
        raise errors.InvalidOperation(
            "the duration of a series event follows its points", {"type": current_type}
        )
