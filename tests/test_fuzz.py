"""Schemathesis against a live server, driven by the server's own ``/openapi.json``.

The real app listens on a real loopback port, served from a thread with its own event loop
(schemathesis and ``requests`` are synchronous). A user, a session, a personal token and
some data (channels, folders, events, a bookmark, a shared token) give the generated paths
real ids to hit. Every operation then gets a bounded number of positive (schema-valid) and
negative (schema-breaking) examples, derandomized so runs are reproducible. Each response
must: not be a 5xx, have a status code the document lists, have the documented content type,
and match the documented schema (errors: ``{id, message, data?}``); a negative example must
be refused with a 4xx.

The second test does the same for Socket.IO, which has no document to drive schemathesis:
every method callable over a socket gets generated params (values of each field's JSON type,
real ids, odd values), and every call must be acked, with a result or a client error.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from pryvrt.config import Settings
from pryvrt.methods.registry import REGISTRY
from tests.conftest import Api, free_port
from tests.sockets import connect

POSITIVE_EXAMPLES = 15
NEGATIVE_EXAMPLES = 8
# Each example is sent with one of these, drawn with the case: mostly the owner's session,
# sometimes a personal token or a read-only shared token (the permission paths).
CREDENTIALS = ("session", "session", "personal", "shared")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# ``positive_data_acceptance`` is left out on purpose: a schema-valid body still names ids
# that do not exist, periods that overlap, passwords that are wrong... — a 4xx is right there.
NEGATIVE_CHECKS = [*CHECKS, negative_data_rejection]


def run_order(label: str) -> int:
    """Reads and writes first, then deletions from the innermost item out (attachments,
    then events, folders, tokens..., channels last: they hold everything else), then logout,
    which ends the session most requests use."""
    if label == "POST /{username}/logout":
        return 4
    if label == "DELETE /{username}/channels/{channelId}":
        return 3
    if label.startswith("DELETE "):
        return 1 if label.endswith("{fileName}") else 2
    return 0


class ServerThread:
    """The real aiohttp app on a loopback port, served by a thread's own event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: Any = None

    def start(self) -> None:
        from aiohttp import web

        from pryvrt.app import create_app

        async def start() -> None:
            self.runner = web.AppRunner(create_app(self.settings), access_log=None)
            await self.runner.setup()
            await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

        self.thread.start()
        asyncio.run_coroutine_threadsafe(start(), self.loop).result(60)

    def stop(self) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    settings = Settings(
        database_url=database_url,
        data_dir=Path(tmp_path_factory.mktemp("fuzz")),
        password_hash_fast=True,
        # Fuzzed logins fail by the dozen: the throttle would make every later one a 429.
        login_max_failures=1_000_000,
        login_max_failures_per_ip=1_000_000,
        token_max_failures_per_ip=1_000_000,
        # Fuzzed limits and batches stay small enough for a shared 2-core machine.
        max_events_limit=200,
        max_batch_calls=50,
        max_batch_events=200,
    )
    thread = ServerThread(settings)
    thread.start()
    yield thread
    thread.stop()


@dataclass
class Fixture:
    """Real ids of one user's data, offered to the generated path parameters."""

    username: str
    session: str
    personal: str
    shared: str = ""
    ids: dict[str, list[str]] = field(default_factory=dict)


def _post(url: str, body: Any, auth: str | None = None) -> Any:
    headers = {"Authorization": auth} if auth else {}
    reply = requests.post(url, json=body, headers=headers, timeout=10)
    assert reply.status_code in (200, 201), (url, reply.status_code, reply.text)
    return reply.json()


def seed(base: str) -> Fixture:
    username = "fuzz" + secrets.token_hex(3)
    _post(f"{base}/users", {"username": username, "password": "fuzz-password"})
    session = _post(f"{base}/{username}/login", {"userName": username, "password": "fuzz-password"})
    fx = Fixture(username, session["sessionID"], "")
    fx.personal = _post(f"{base}/{username}/tokens/personal", {"name": "fuzz"}, fx.session)["id"]
    api = f"{base}/{username}"
    channels = [
        _post(f"{api}/channels", {"id": "diary", "name": "Diary"}, fx.session)["id"],
        _post(f"{api}/channels", {"id": "work", "name": "Work"}, fx.session)["id"],
    ]
    folders = [
        _post(f"{api}/diary/folders", {"id": "home", "name": "Home"}, fx.session)["id"],
        _post(f"{api}/diary/folders/home", {"id": "garden", "name": "Garden"}, fx.session)["id"],
    ]
    events = [
        _post(
            f"{api}/diary/events",
            {"id": "note", "value": {"type": "note/txt", "value": "hello"}, "time": 1000.0},
            fx.session,
        )["id"],
        _post(
            f"{api}/diary/events",
            {"id": "walk", "folderId": "home", "time": 2000.0, "duration": 60.0},
            fx.session,
        )["id"],
    ]
    fx.shared = shared = _post(
        f"{api}/tokens",
        {"name": "shared", "permissions": [{"channelId": "diary", "level": "read"}]},
        fx.session,
    )["id"]
    bookmark = _post(
        f"{api}/bookmarks",
        {"name": "elsewhere", "url": "https://example.org/", "accessToken": "t0k3n"},
        fx.session,
    )
    with open(__file__, "rb") as content:  # any bytes will do
        attached = requests.post(
            f"{api}/diary/events/note",
            files={"file": ("photo.jpg", content, "image/jpeg")},
            headers={"Authorization": fx.session},
            timeout=10,
        )
    assert attached.status_code == 200, attached.text
    fx.ids = {
        "channelId": channels,
        "parentId": folders,
        "folders": folders,
        "events": events,
        "tokens": [shared],
        "bookmarks": [bookmark["id"]],
        "name": ["fuzz", "other"],
        "fileName": ["photo.jpg"],
    }
    return fx


@dataclass
class Tally:
    examples: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    # operation label → statuses seen
    by_operation: dict[str, set[int]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def fuzz_operation(
    operation: Any, mode: GenerationMode, fx: Fixture, base: str, tally: Tally, examples: int
) -> None:
    """Run ``examples`` cases of one operation; record failures instead of stopping."""
    checks = NEGATIVE_CHECKS if mode is GenerationMode.NEGATIVE else CHECKS
    path_names = [p.name for p in operation.path_parameters]
    # An ``{id}`` is a folder, event, token or bookmark id after the segment naming which.
    segments = operation.path.split("/")
    kind = segments[segments.index("{id}") - 1] if "{id}" in segments else ""
    pools = {**fx.ids, "id": fx.ids.get(kind, ["x"])}
    # Each path parameter: a real id about half of the time, else whatever was generated.
    picks = st.fixed_dictionaries(
        {
            name: st.one_of(st.sampled_from(pools.get(name, ["x"])), st.none())
            for name in path_names
            if name != "username"
        }
    )
    session = requests.Session()
    seen: list[str] = []

    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        case=operation.as_strategy(generation_mode=mode),
        pick=picks,
        credential=st.sampled_from(CREDENTIALS),
    )
    def run(case: Any, pick: dict[str, str | None], credential: str) -> None:
        if "username" in path_names:
            case.path_parameters["username"] = fx.username
        for name, value in pick.items():
            if value is not None and mode is GenerationMode.POSITIVE:
                case.path_parameters[name] = value
        headers = {"Authorization": getattr(fx, credential)}
        try:
            response = case.call(base_url=base, session=session, headers=headers, timeout=15)
        except requests.RequestException as exc:
            tally.failures.append(
                f"{operation.label} [{mode.value}, {credential}]: no answer: {exc!r}"
            )
            return
        tally.examples += 1
        tally.by_status[response.status_code] = tally.by_status.get(response.status_code, 0) + 1
        tally.by_operation.setdefault(operation.label, set()).add(response.status_code)
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except (FailureGroup, AssertionError) as exc:
            message = f"{operation.label} [{mode.value}, {credential}]: {exc}"
            if len(seen) < 3:
                seen.append(message)
                tally.failures.append(message[:3000])

    try:
        run()
    except Unsatisfiable:
        # Nothing to break: an operation without parameters has no negative examples.
        assert mode is GenerationMode.NEGATIVE, operation.label


def test_every_operation_answers_without_5xx_and_as_documented(
    server: ServerThread, capsys: pytest.CaptureFixture[str]
) -> None:
    base = server.url
    fx = seed(base)
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    operations.sort(key=lambda op: run_order(op.label))
    tally = Tally()
    for operation in operations:
        fuzz_operation(operation, GenerationMode.POSITIVE, fx, base, tally, POSITIVE_EXAMPLES)
        fuzz_operation(operation, GenerationMode.NEGATIVE, fx, base, tally, NEGATIVE_EXAMPLES)
    with capsys.disabled():  # the figure the README's Reliability section quotes
        print(
            f"\nfuzz: {tally.examples} requests over {len(operations)} operations;"
            f" statuses {dict(sorted(tally.by_status.items()))}"
        )
    assert not tally.failures, "\n\n".join(tally.failures)
    assert not any(status >= 500 for status in tally.by_status)
    # Not vacuous: every operation was exercised, and most reached their success path
    # (the seeded ids and the credential work), not only their error paths.
    assert set(tally.by_operation) == {op.label for op in operations}
    succeeded = [label for label, seen in tally.by_operation.items() if min(seen) < 300]
    assert len(succeeded) >= len(operations) * 3 // 4, sorted(
        set(tally.by_operation) - set(succeeded)
    )


# -- Socket.IO: every method over a socket, with generated params -----------------------------

SOCKET_EXAMPLES = 25
# Methods left out: logout ends the session the socket holds.
SOCKET_SKIP = {"admin.logout"}
ODD_VALUES: tuple[Any, ...] = (
    None,
    True,
    0,
    -1,
    1.5,
    2**63 - 1,  # larger integers: the raw-packet tests of test_malformed_input
    -(2**63),
    1e308,
    -1e308,
    5e-324,
    "",
    " ",
    "x" * 300,
    "null",
    "*",
    "../..",
    "a\u0000b",
    "é🙂",
    [],
    {},
    [1, "a", None],
    {"a": {"b": [1, {"c": None}]}},
    {"": 1},
    [{"channelId": "diary", "level": "manage"}],
    [{"channelId": "diary", "folderId": "home", "level": "nope"}],
    {"type": "note/txt", "value": "x"},
)


def plausible(schema: dict[str, Any], real_ids: list[str]) -> list[Any]:
    """Values of the right JSON type for one field of a method's parameter schema."""
    kinds = {schema.get("type")} | {alt.get("type") for alt in schema.get("anyOf", [])}
    values: list[Any] = []
    if "string" in kinds:
        values += [*real_ids, "Fresh name", "2"]
        values += schema.get("enum", [])
    if kinds & {"number", "integer"}:
        values += [0, 1, 1000.5, 86400, -5]
    if "boolean" in kinds:
        values += [True, False]
    if "array" in kinds:
        values += [[], ["diary"], [{"channelId": "diary", "level": "read"}]]
    if "object" in kinds or not kinds - {None}:
        values += [{}, {"k": "v"}, {"type": "note/txt", "value": "x"}]
    if "null" in kinds:
        values.append(None)
    return values or [None]


def socket_params(rng: random.Random, fields: dict[str, list[Any]], required: set[str]) -> Any:
    """Params for one call: the required fields and some others, each with a value of its
    type (often a real id) or now and then an odd one; sometimes not an object at all, or
    with an unknown field."""
    roll = rng.random()
    if roll < 0.05:
        return rng.choice(ODD_VALUES)
    optional = sorted(set(fields) - required)
    chosen = sorted(required) + rng.sample(optional, k=rng.randint(0, len(optional)))
    params: dict[str, Any] = {}
    for name in chosen:
        pool = fields[name] if rng.random() < 0.9 else ODD_VALUES
        params[name] = rng.choice(pool)
    if roll > 0.95:
        params["notAField"] = 1
    return params


async def test_socket_calls_with_generated_params_always_get_an_ack_and_never_a_500(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    username, session = await api.user()
    channel = await api.channel(username, session, id="diary")
    await api.post(f"/{username}/{channel}/folders", {"id": "home", "name": "Home"}, auth=session)
    real_ids = ["diary", "home", "note", username]
    methods = sorted(
        (m.id for m in REGISTRY.values() if m.socket and m.id not in SOCKET_SKIP),
        # deletions last, channels.delete at the very end (as for HTTP above)
        key=lambda m: (m == "channels.delete", m.endswith("delete"), m),
    )
    rng = random.Random(7)  # deterministic
    calls = 0
    ids_seen: dict[str, int] = {}
    async with connect(str(api.client.make_url("/")), username, session) as sock:
        for method_id in methods:
            schema = REGISTRY[method_id].params.model_json_schema()
            fields = {
                name: plausible(prop, real_ids)
                for name, prop in schema.get("properties", {}).items()
            }
            required = set(schema.get("required", []))
            for _ in range(SOCKET_EXAMPLES):
                params = socket_params(rng, fields, required)
                error, result = await sock.call(method_id, params, within=10)
                calls += 1
                if error is None:
                    ids_seen["ok"] = ids_seen.get("ok", 0) + 1
                    continue
                assert isinstance(error["id"], str) and isinstance(error["message"], str), error
                assert error["id"] not in ("UNEXPECTED_ERROR", "SERVICE_UNAVAILABLE"), (
                    method_id,
                    params,
                    error,
                )
                assert result is None
                ids_seen[error["id"]] = ids_seen.get(error["id"], 0) + 1
    with capsys.disabled():
        print(f"\nsocket fuzz: {calls} calls over {len(methods)} methods; {ids_seen}")
    assert calls == len(methods) * SOCKET_EXAMPLES
    assert ids_seen.get("ok", 0) > len(methods)  # not only refusals
    assert (await api.get("/health")).status == 200
