"""docs/api.md, generated from the method registry, the HTTP routes and the error classes.

Run ``python -m pryvrt.docs`` (or ``scripts/gen-api-docs``) after adding or changing a
method: ``tests/test_api_docs.py`` fails while the committed file differs from what this
module writes. Nothing here is written per method but the examples' parameter values
(``EXAMPLES``); a method without one gets an example built from its required parameters.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
from pydantic import AliasChoices, BaseModel

from pryvrt import API_VERSION, errors
from pryvrt.methods.registry import REGISTRY, Auth, Method
from pryvrt.methods.scope import IfNone, Reach
from pryvrt.transports.http import ROUTES, SERVICE_ROUTES, Route

OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "api.md"
COMMAND = "scripts/gen-api-docs"
BASE = "http://127.0.0.1:3000"

# Sections in this order; a resource not listed comes after them, alphabetically.
SECTIONS = ("users", "admin", "tokens", "bookmarks", "channels", "folders", "events", "batch")

# Parameter values for the examples (HTTP and Socket.IO). A method missing here gets its
# required parameters with the values of ``BY_NAME`` (or of their type).
EXAMPLES: dict[str, dict[str, Any]] = {
    "users.create": {"username": "alice", "password": "correct-horse", "email": "a@example.org"},
    "admin.login": {"userName": "alice", "password": "correct-horse", "appId": "my-app"},
    "admin.updateUserInfo": {"language": "fr"},
    "admin.changePassword": {"oldPassword": "correct-horse", "newPassword": "battery-staple"},
    "bookmarks.create": {
        "name": "Bob's diary",
        "url": "http://127.0.0.1:3000/bobby/",
        "accessToken": "TOKEN",
    },
    "bookmarks.update": {"id": "BOOKMARK", "name": "Bob"},
    "bookmarks.delete": {"id": "BOOKMARK"},
    "tokens.getOrCreatePersonal": {"name": "my-app"},
    "tokens.create": {
        "name": "roses-for-bob",
        "permissions": [{"channelId": "diary", "level": "read", "tags": ["roses"]}],
        "shareWith": "bobby",
    },
    "tokens.update": {
        "id": "TOKEN",
        "permissions": [{"channelId": "diary", "level": "contribute"}],
    },
    "tokens.delete": {"id": "TOKEN"},
    "tokens.checkApp": {
        "requestingAppId": "heart-notes",
        "requestedPermissions": [{"channelId": "heart", "level": "contribute"}],
    },
    "access.request": {
        "requestingAppId": "heart-notes",
        "requestedPermissions": [
            {"channelId": "heart", "defaultName": "Heart", "level": "contribute"}
        ],
        "deviceName": "my phone",
        "returnURL": "https://heart-notes.example/back",
    },
    "access.poll": {"key": "KEY"},
    "access.review": {"key": "KEY"},
    "access.accept": {"key": "KEY"},
    "access.refuse": {"key": "KEY"},
    "shares.accept": {"id": "SHARE", "name": "Alice's roses"},
    "shares.decline": {"id": "SHARE"},
    "channels.get": {"state": "all"},
    "channels.create": {"id": "diary", "name": "Diary"},
    "channels.update": {"channelId": "diary", "name": "My diary"},
    "channels.delete": {"channelId": "diary"},
    "folders.get": {"channelId": "diary", "timeCountBase": 1767225600},
    "folders.create": {"channelId": "diary", "id": "work", "name": "Work"},
    "folders.update": {"channelId": "diary", "id": "work", "name": "Job"},
    "folders.move": {"channelId": "diary", "id": "calls", "parentId": "work"},
    "folders.delete": {"channelId": "diary", "id": "work", "mergeEventsWithParent": True},
    "events.get": {
        "channelId": "diary",
        "fromTime": 1767225600,
        "toTime": 1767312000,
        "onlyFolders": ["work"],
        "limit": 50,
    },
    "events.getOne": {"channelId": "diary", "id": "note-1"},
    "events.getRunning": {"channelId": "diary"},
    "events.create": {
        "channelId": "diary",
        "id": "note-1",
        "type": "note/txt",
        "content": "Hello",
        "tags": ["home"],
    },
    "events.start": {"channelId": "diary", "folderId": "work"},
    "events.stop": {"channelId": "diary", "time": 1767229200},
    "events.update": {"channelId": "diary", "id": "note-1", "description": "edited"},
    "events.delete": {"channelId": "diary", "id": "note-1"},
    "events.batch": {
        "channelId": "diary",
        "events": [
            {"clientId": "a", "folderId": "work", "time": 1767225600, "duration": 1800},
            {"clientId": "b", "type": "mass/kg", "content": 71.5, "time": 1767227400},
        ],
    },
    "events.addAttachments": {"channelId": "diary", "id": "note-1"},
    "events.getAttachment": {"channelId": "diary", "id": "note-1", "fileName": "photo.jpg"},
    "events.deleteAttachment": {"channelId": "diary", "id": "note-1", "fileName": "photo.jpg"},
    "events.addSeriesPoints": {
        "channelId": "diary",
        "id": "heart",
        "format": "flatJSON",
        "fields": ["deltaTime", "value"],
        "points": [[0, 62], [0.5, 63.5], [1, 63]],
    },
    "events.getSeries": {
        "channelId": "diary",
        "id": "heart",
        "fromDeltaTime": 0,
        "maxPoints": 1000,
    },
    "series.batch": {
        "format": "seriesBatch",
        "data": [
            {
                "channelId": "diary",
                "eventId": "heart",
                "data": {
                    "format": "flatJSON",
                    "fields": ["deltaTime", "value"],
                    "points": [[2, 64]],
                },
            }
        ],
    },
    "batch": {
        "calls": [
            {"method": "channels.create", "params": {"name": "Work"}},
            {"method": "events.get", "params": {"channelId": "diary", "limit": 5}},
        ]
    },
}

BY_NAME: dict[str, Any] = {
    "channelId": "diary",
    "folderId": "work",
    "parentId": "work",
    "eventId": "note-1",
    "name": "Name",
    "time": 1767225600,
    "fileName": "photo.jpg",
}
BY_TYPE: dict[str, Any] = {
    "string": "value",
    "integer": 1,
    "number": 1.5,
    "boolean": True,
    "array": [],
    "object": {},
}

AUTH_TEXT = {
    Auth.NONE: "none",
    Auth.SESSION: "an admin session (`admin.login`)",
    Auth.PERSONAL: "an admin session or a personal token",
    Auth.TOKENS: "an admin session, a personal token or an app token (its own shared tokens)",
}

REACH_TEXT = {
    Reach.CHANNEL: "on the whole channel",
    Reach.ANYWHERE: "somewhere in the channel (the answer holds only what it reaches)",
    Reach.FOLDER: "on the folder `{param}` names",
    Reach.FOLDERS: "on each folder `{param}` names (none: the answer holds what it reaches)",
    Reach.ITEMS: "on the folder of each item of `{param}`",
    Reach.EVENT: "on the addressed event's folder",
}


# -- the parts ----------------------------------------------------------------------------


def routes_of(method_id: str) -> list[tuple[Route, bool]]:
    """(route, is a user's route) for every HTTP route of the method."""
    found = [(r, False) for r in SERVICE_ROUTES if r.method_id == method_id]
    return found + [(r, True) for r in ROUTES if r.method_id == method_id]


def http_path(route: Route, user_route: bool) -> str:
    path = route.path if not user_route else "/{username}" + route.path
    return path if path in ("/", "/{username}/") else path.rstrip("/")


def credential_text(method: Method) -> str:
    if method.auth is not Auth.ACCESS:
        text = AUTH_TEXT[method.auth]
    elif method.need is None:
        text = "any token or session"
    else:
        target = method.need.target
        where = REACH_TEXT[target.reach].format(param=target.param)
        if target.reach is Reach.FOLDER and target.if_none is IfNone.NO_FOLDER:
            where += " (none: the events with no folder)"
        elif target.reach is Reach.FOLDER and target.if_none is IfNone.ROOT:
            where += " (none: the whole channel)"
        text = f"any token or session with **{method.need.level.api_name}** {where}"
    if method.anonymous is not None:
        text += "; or none, with a `readToken`"
    return text


def type_text(schema: dict[str, Any]) -> str:
    """A JSON schema as a short type: ``string``, ``array of string``, ``"a" | "b"``..."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in schema:
        kinds = [type_text(s) for s in schema["anyOf"]]
        return " or ".join(dict.fromkeys(kinds))
    if "enum" in schema:
        return " \\| ".join(f"`{orjson.dumps(v).decode()}`" for v in schema["enum"])
    kind = schema.get("type")
    if kind == "array":
        return f"array of {type_text(schema.get('items', {}))}"
    if kind is None:
        return "any JSON"
    return str(kind)


def limits_text(schema: dict[str, Any]) -> str:
    """Length, range and pattern constraints, in words."""
    for option in schema.get("anyOf", ()):
        if option.get("type") not in (None, "null"):
            schema = {**option, **{k: v for k, v in schema.items() if k != "anyOf"}}
    parts = []
    if "minLength" in schema or "maxLength" in schema:
        parts.append(f"{schema.get('minLength', 0)} to {schema.get('maxLength', '…')} characters")
    if "minimum" in schema or "maximum" in schema:
        low, high = schema.get("minimum"), schema.get("maximum")
        parts.append(f"{number_text(low)} to {number_text(high)}")
    if "maxItems" in schema:
        parts.append(f"at most {schema['maxItems']} items")
    if "pattern" in schema and "maxLength" not in schema:
        parts.append(f"matches `{schema['pattern']}`")
    return "; ".join(parts)


def number_text(value: float | None) -> str:
    if value is None:
        return "…"
    if float(value).is_integer() and abs(value) < 1e10:
        return str(int(value))
    return f"{value:.3g}".replace("e+", "e")


def aliases(model: type[BaseModel], name: str) -> list[str]:
    field = model.model_fields.get(name)
    alias = field.validation_alias if field is not None else None
    if isinstance(alias, AliasChoices):
        return [str(a) for a in alias.choices if a != name]
    return []


def parameter_rows(method: Method, routes: list[tuple[Route, bool]]) -> list[str]:
    schema = method.params.model_json_schema()
    required = set(schema.get("required", ()))
    rows = []
    for name, prop in schema.get("properties", {}).items():
        rows.append(
            f"| `{name}` | {placement(name, routes)} | {type_text(prop)} | "
            f"{required_text(name in required, prop)} | {notes_text(method, name, prop)} |"
        )
    return rows


def placement(name: str, routes: list[tuple[Route, bool]]) -> str:
    """Where a parameter goes over HTTP: the path, the query (GET, DELETE) or the body."""
    places = []
    for route, _ in routes:
        if "{" + name + "}" in route.path:
            places.append("path")
        elif route.body_key == name:
            places.append("body (the whole body)")
        else:
            places.append("query" if route.verb in ("GET", "DELETE") else "body")
    return " or ".join(dict.fromkeys(places)) or "params"


def required_text(required: bool, prop: dict[str, Any]) -> str:
    if required:
        return "yes"
    if prop.get("default") is not None:
        return f"no (default `{orjson.dumps(prop['default']).decode()}`)"
    return "no"


def notes_text(method: Method, name: str, prop: dict[str, Any]) -> str:
    notes = [prop.get("description", ""), limits_text(prop)]
    notes += [f"also spelled `{a}` (one of the two)" for a in aliases(method.params, name)]
    return "; ".join(n for n in notes if n)


def example_params(method: Method) -> dict[str, Any]:
    if method.id in EXAMPLES:
        return EXAMPLES[method.id]
    schema = method.params.model_json_schema()
    props = schema.get("properties", {})
    params = {}
    for name in schema.get("required", ()):
        prop = props.get(name, {})
        kind = prop.get("type") or next(
            (s.get("type") for s in prop.get("anyOf", ()) if s.get("type") != "null"), "string"
        )
        params[name] = BY_NAME.get(name, BY_TYPE.get(kind, "value"))
    return params


def curl_example(method: Method, route: Route, user_route: bool, params: dict[str, Any]) -> str:
    """One curl command calling ``route`` with ``params`` (path, then query or body)."""
    rest = dict(params)
    path = route.path
    for name in [p.strip("{}") for p in route.path.split("/") if p.startswith("{")]:
        path = path.replace("{" + name + "}", str(rest.pop(name, name.upper())))
    url = BASE + (("/alice" + path) if user_route else path)
    if url.endswith("/") and url != BASE + "/alice/":
        url = url.rstrip("/")
    lines = []
    if route.verb in ("GET", "DELETE"):
        query = "&".join(
            f"{k}={v}" if not isinstance(v, list) else "&".join(f"{k}={i}" for i in v)
            for k, v in rest.items()
        )
        verb = "" if route.verb == "GET" else "-X DELETE "
        lines.append(f'curl -s {verb}"{url}{"?" + query if query else ""}"')
    else:
        lines.append(f"curl -s -X {route.verb} {url}")
    if method.auth is not Auth.NONE:
        lines.append('-H "Authorization: $SESSION"')
    if route.uploads and not route.params_part:
        lines.append("-F 'file=@photo.jpg;type=image/jpeg'")
    elif route.verb not in ("GET", "DELETE"):
        body = rest.get(route.body_key) if route.body_key else rest
        if body:
            text = orjson.dumps(body).decode()
            lines.append("-H 'Content-Type: application/json'")
            lines.append(f"-d '{text}'")
    return " \\\n  ".join(lines)


def socket_example(method: Method, params: dict[str, Any]) -> str:
    text = orjson.dumps(params).decode()
    return f'socket.emit("{method.id}", {text}, (error, result) => {{ /* ... */ }});'


def method_section(method: Method) -> list[str]:
    doc = (method.handler.__doc__ or method.summary).strip().replace("``", "`")
    paragraphs = [" ".join(line.strip() for line in p.splitlines()) for p in doc.split("\n\n")]
    routes = routes_of(method.id)
    lines = [f"#### `{method.id}`", "", *"\n\n".join(paragraphs).splitlines(), ""]
    for route, user_route in routes:
        status = f" → {route.status}" if route.status != 200 else ""
        note = " (multipart: a JSON part with the event, then files)" if route.params_part else ""
        if route.uploads and not route.params_part:
            note = " (multipart/form-data, every part a file)"
        if route.download:
            note = " (answers the file's bytes)"
        lines.append(f"- HTTP: `{route.verb} {http_path(route, user_route)}`{status}{note}")
    if not routes:
        lines.append("- HTTP: none")
    transports = (
        "Socket.IO and batch: yes"
        if method.socket
        else "Socket.IO and batch: no (it carries a file: HTTP only)"
    )
    lines.append(f"- {transports}")
    lines.append(f"- Credential: {credential_text(method)}")
    lines.append("")
    rows = parameter_rows(method, routes)
    if rows:
        lines += [
            "| parameter | in | type | required | notes |",
            "|---|---|---|---|---|",
            *rows,
            "",
        ]
    else:
        lines += ["No parameters.", ""]
    error_links = ", ".join(f"[`{e}`](#{e.lower()})" for e in method.errors)
    lines += [f"Errors: {error_links}.", ""]
    params = example_params(method)
    lines.append("Example:")
    lines.append("")
    lines.append("```sh")
    if routes:
        route, user_route = routes[0]
        lines.append(curl_example(method, route, user_route, params))
    lines.append("```")
    if method.socket:
        lines += ["", "```js", socket_example(method, params), "```"]
    lines.append("")
    return lines


def error_classes() -> list[type[errors.ApiError]]:
    return [
        c
        for c in vars(errors).values()
        if isinstance(c, type) and issubclass(c, errors.ApiError) and c is not errors.ApiError
    ]


def errors_section() -> list[str]:
    by_id: dict[str, list[type[errors.ApiError]]] = {}
    for cls in error_classes():
        by_id.setdefault(cls.id, []).append(cls)
    lines = [
        "## Errors",
        "",
        'Every error is `{"id", "message", "data"?}` with the HTTP status below; over'
        " Socket.IO and in a batch the same object arrives as the ack's first argument or the"
        " item's `error`.",
        "",
        "| id | HTTP status | when |",
        "|---|---|---|",
    ]
    for error_id, classes in sorted(by_id.items()):
        statuses = " / ".join(str(s) for s in sorted({c.status for c in classes}))
        when = "; ".join(
            dict.fromkeys(c.__doc__ or "" for c in classes if (c.__doc__ or "") != error_id)
        )
        anchor = f'<a id="{error_id.lower()}"></a>'
        lines.append(f"| {anchor}`{error_id}` | {statuses} | {when} |")
    lines.append("")
    return lines


def types_section(methods: Iterable[Method]) -> list[str]:
    """The object types parameters refer to (pydantic ``$defs``)."""
    defs: dict[str, dict[str, Any]] = {}
    for method in methods:
        defs.update(method.params.model_json_schema().get("$defs", {}))
    if not defs:
        return []
    lines = ["## Parameter types", ""]
    for name, schema in sorted(defs.items()):
        required = set(schema.get("required", ()))
        lines += [
            f'### <a id="{name.lower()}"></a>`{name}`',
            "",
            "| field | type | required | notes |",
            "|---|---|---|---|",
        ]
        for field, prop in schema.get("properties", {}).items():
            need = "yes" if field in required else "no"
            lines.append(f"| `{field}` | {type_text(prop)} | {need} | {limits_text(prop)} |")
        lines.append("")
    return lines


def section_order(method: Method) -> tuple[int, str, int]:
    resource = method.id.split(".")[0]
    rank = SECTIONS.index(resource) if resource in SECTIONS else len(SECTIONS)
    route_rank = next(
        (i for i, r in enumerate((*SERVICE_ROUTES, *ROUTES)) if r.method_id == method.id),
        len(ROUTES) + len(SERVICE_ROUTES),
    )
    return rank, resource, route_rank


HEADER = f"""# API reference

<!-- Generated by `{COMMAND}` (python -m pryvrt.docs) from the method registry: do not
edit by hand. tests/test_api_docs.py fails when this file is out of date. -->

API version {API_VERSION}. Every method below is one entry of the server's method registry
(`pryvrt/methods/`); HTTP, Socket.IO and batch calls all go through it, with the same
parameters, permissions, results and errors. The machine-readable form of the HTTP routes
is `GET /openapi.json`.

**Addressing.** A user's API lives under `/{{username}}/` (`{BASE}/alice/channels`), or
under the host `alice.example.org` when `PRYVRT_DOMAIN=example.org` is set, or anywhere
with `?userName=alice`. The examples use `alice`, a channel `diary` and a folder `work`.

**Credentials.** `Authorization: <token or session id>` (`Bearer <id>` works too) or
`?auth=<id>`. An admin session comes from `admin.login`; tokens from `tokens.create` and
`tokens.getOrCreatePersonal`. In the examples `$SESSION` holds a session id and `TOKEN` a
token id.

**Parameters.** "params" parameters go in the query string for `GET` and `DELETE` (repeat
a key, or use `key[]`, for a list) and in the JSON body otherwise; "path" ones in the path.
Over Socket.IO, all of them go in one object: `socket.emit(methodId, params, ack)` answers
`ack(error, result)` (see [realtime.md](realtime.md)). In a batch (`POST /{{username}}/`),
each call is `{{"method", "params"}}`.

**Answers.** JSON; creates answer 201. Timestamps are seconds since the Unix epoch.
Unknown paths answer 404 `UNKNOWN_RESOURCE` and a verb a path does not take 405
`METHOD_NOT_ALLOWED` with an `Allow` header, both as JSON.
"""


def render() -> str:
    methods = sorted(REGISTRY.values(), key=section_order)
    lines = [*HEADER.splitlines(), ""]
    lines += ["## Methods", ""]
    current = None
    for method in methods:
        resource = method.id.split(".")[0]
        if resource != current:
            current = resource
            ids = ", ".join(f"`{m.id}`" for m in methods if m.id.split(".")[0] == resource)
            lines += [f"### {resource}", "", ids, ""]
        lines += method_section(method)
    lines += errors_section()
    lines += types_section(methods)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write docs/api.md (``--check``: exit 1 if it is out of date, writing nothing)."""
    args = sys.argv[1:] if argv is None else argv
    text = render()
    if "--check" in args:
        current = OUTPUT.read_text() if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT} is out of date: run {COMMAND}", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT} ({len(REGISTRY)} methods)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
