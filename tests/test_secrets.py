"""Secrets (issue 7): no credential or password in the logs of a real server at DEBUG level,
credentials long and random, passwords stored as argon2id hashes only, secrets compared in
constant time."""

from __future__ import annotations

import ast
import asyncio
import base64
import math
import re
import secrets
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.processes import Worker, worker_env
from tests.sockets import connect, refusal

pytestmark = pytest.mark.slow

PRYVRT_DIR = Path(__file__).resolve().parent.parent / "pryvrt"
ADMIN_KEY = "adm-" + secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def debug_worker(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """A server logging everything (DEBUG) to a file, registration guarded by the admin key."""
    env = worker_env(database_url, None, Path(tmp_path_factory.mktemp("data")))
    env.update(PRYVRT_LOG_LEVEL="DEBUG", PRYVRT_REGISTRATION="key", PRYVRT_ADMIN_KEY=ADMIN_KEY)
    worker = Worker(env, Path(tmp_path_factory.mktemp("logs")))
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.stop()


class Client:
    """Raw HTTP calls that record every secret value sent or received."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base
        self.secrets: dict[str, str] = {}  # what → value

    def keep(self, what: str, value: str) -> str:
        self.secrets[what] = value
        return value

    async def call(
        self,
        verb: str,
        path: str,
        json: Any = None,
        auth: str | None = None,
        **kw: Any,
    ) -> tuple[int, Any]:
        headers = {"Authorization": auth} if auth else {}
        async with (
            asyncio.timeout(10),
            self.session.request(verb, self.base + path, json=json, headers=headers, **kw) as reply,
        ):
            raw = await reply.read()
            try:
                return reply.status, await reply.json(content_type=None)
            except ValueError:
                return reply.status, raw


async def drive_every_credential_path(client: Client, worker: Worker) -> dict[str, int]:
    """Register, log in (right and wrong), create tokens, call with header and ?auth=,
    connect sockets, download by readToken, change the password, log out; failing calls
    too. Returns the count of calls per kind, for the report."""
    counts: Counter[str] = Counter()
    username = "s" + secrets.token_hex(5)
    password = client.keep("password", "pw-" + secrets.token_urlsafe(18))
    # Registration: a wrong key (a guess is secret too), then the right one.
    wrong_key = client.keep("wrong admin key", "adm-" + secrets.token_urlsafe(24))
    body = {"username": username, "password": password}
    status, reply = await client.call("POST", "/users", body, auth=wrong_key)
    assert status == 401 and reply["id"] == "INVALID_CREDENTIALS", reply
    status, reply = await client.call("POST", "/users", body, auth=ADMIN_KEY)
    assert status == 201, reply
    counts["register"] += 2
    # Log in: wrong password, then right.
    wrong_pw = client.keep("wrong password", "pw-" + secrets.token_urlsafe(18))
    login = f"/{username}/login"
    status, reply = await client.call("POST", login, {"userName": username, "password": wrong_pw})
    assert status == 401, reply
    status, reply = await client.call("POST", login, {"userName": username, "password": password})
    assert status == 200, reply
    session = client.keep("session id", reply["sessionID"])
    counts["login"] += 2
    # Tokens: personal and shared, used in the header and in ?auth=.
    status, reply = await client.call(
        "POST", f"/{username}/tokens/personal", {"name": "app"}, auth=session
    )
    assert status == 200, reply
    personal = client.keep("personal token", reply["id"])
    status, reply = await client.call(
        "POST", f"/{username}/channels", {"id": "journal", "name": "Journal"}, auth=personal
    )
    assert status == 201, reply
    status, reply = await client.call(
        "POST",
        f"/{username}/tokens",
        {"name": "share", "permissions": [{"channelId": "journal", "level": "read"}]},
        auth=session,
    )
    assert status == 201, reply
    shared = client.keep("shared token", reply["id"])
    counts["token create"] += 2
    for credential in (session, personal, shared):
        status, _ = await client.call("GET", f"/{username}/channels", auth=credential)
        assert status == 200
        status, _ = await client.call("GET", f"/{username}/channels?auth={credential}")
        assert status == 200
        counts["call with credential"] += 2
    # Failing calls: a made-up credential, a read token trying to write, a bad body.
    bogus = client.keep("made-up token", secrets.token_urlsafe(32))
    status, _ = await client.call("GET", f"/{username}/channels", auth=bogus)
    assert status == 401
    status, _ = await client.call("GET", f"/{username}/channels?auth={bogus}")
    assert status == 401
    status, _ = await client.call("POST", f"/{username}/journal/events", {"x": 1}, auth=shared)
    assert status in (400, 403)
    status, _ = await client.call("POST", f"/{username}/tokens", {"name": 5}, auth=session)
    assert status == 400
    counts["failing call"] += 4
    # An attachment, downloaded by its readToken (and a wrong one).
    form = aiohttp.FormData()
    form.add_field(
        "event",
        '{"id": "pic", "value": {"type": "picture:attached", "value": "p"}}',
        content_type="application/json",
    )
    form.add_field("file", b"not really a jpeg", filename="p.jpg", content_type="image/jpeg")
    status, reply = await client.call(
        "POST", f"/{username}/journal/events", data=form, auth=session
    )
    assert status == 201, reply
    status, events = await client.call("GET", f"/{username}/journal/events", auth=session)
    read_token = client.keep("readToken", events[0]["attachments"][0]["readToken"])
    file_url = f"/{username}/journal/events/pic/p.jpg"
    status, data = await client.call("GET", f"{file_url}?readToken={read_token}")
    assert status == 200 and data == b"not really a jpeg"
    wrong_read = client.keep("wrong readToken", secrets.token_urlsafe(32))
    status, _ = await client.call("GET", f"{file_url}?readToken={wrong_read}")
    assert status in (401, 403)
    counts["readToken download"] += 2
    # Socket.IO: auth in the handshake, in ?auth=, and refused.
    async with connect(worker.url, username, personal) as sock:
        error, result = await sock.call("channels.get")
        assert error is None and result
    async with connect(worker.url, username, shared, in_query=True) as sock:
        error, _ = await sock.call("events.create", {"channelId": "journal"})
        assert error is not None  # a read token may not write: a failing socket call
    assert (await refusal(worker.url, username, bogus))["data"]["id"] == "INVALID_TOKEN"
    assert (await refusal(worker.url, username, bogus, in_query=True))["data"]["id"]
    counts["socket connect"] += 4
    # Change the password (a wrong old one first), then log out.
    new_pw = client.keep("new password", "pw-" + secrets.token_urlsafe(18))
    change = f"/{username}/change-password"
    status, _ = await client.call(
        "POST", change, {"oldPassword": wrong_pw, "newPassword": new_pw}, auth=session
    )
    assert status in (400, 401, 403)
    status, reply = await client.call(
        "POST", change, {"oldPassword": password, "newPassword": new_pw}, auth=session
    )
    assert status == 200, reply
    status, reply = await client.call("POST", login, {"userName": username, "password": new_pw})
    assert status == 200, reply
    second = client.keep("second session id", reply["sessionID"])
    status, _ = await client.call("POST", f"/{username}/logout", auth=second)
    assert status == 200
    status, _ = await client.call("GET", f"/{username}/channels", auth=second)
    assert status == 401  # a logged-out session is a failing credential now
    counts["password change, logout"] += 5
    client.secrets["username"] = username  # not a secret: kept to query the database
    return dict(counts)


async def test_no_password_key_session_or_token_appears_in_debug_logs(
    debug_worker: Worker, database_url: str
) -> None:
    async with aiohttp.ClientSession() as session:
        client = Client(session, debug_worker.url)
        client.keep("admin key", ADMIN_KEY)
        counts = await drive_every_credential_path(client, debug_worker)
    username = client.secrets.pop("username")
    log = debug_worker.log_text()  # every record is flushed as it is written
    lines = log.splitlines()
    # The capture works: the calls above were logged, failing ones with their error id.
    assert sum('"logger":"pryvrt.methods.registry"' in line for line in lines) >= 20
    for logged in ("INVALID_TOKEN", "INVALID_CREDENTIALS", "socket connected", "admin.logout"):
        assert logged in log, logged
    assert username in log
    leaks = {what: value for what, value in client.secrets.items() if value in log}
    assert not leaks, f"secrets in the log: {sorted(leaks)}"
    # The database keeps hashes of the passwords, never the passwords.
    db = await asyncpg.connect(database_url)
    try:
        stored = await db.fetchval("SELECT password_hash FROM users WHERE username = $1", username)
        rows = []
        for table in await db.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"):
            rows += await db.fetch(f'SELECT t::text FROM "{table[0]}" t')
        dump = "\n".join(row[0] for row in rows)
    finally:
        await db.close()
    assert stored.startswith("$argon2id$"), stored[:12]
    for what in ("password", "wrong password", "new password", "admin key"):
        assert client.secrets[what] not in dump, what
    print(
        f"\nSecrets: {len(client.secrets)} secret values, {sum(counts.values())} calls "
        f"({counts}); {len(lines)} DEBUG log lines grepped: 0 leaks"
    )


def shannon_bits_per_char(values: list[str]) -> float:
    counts = Counter("".join(values))
    total = sum(counts.values())
    return -sum(n / total * math.log2(n / total) for n in counts.values())


async def test_issued_credentials_are_long_random_and_unrelated(debug_worker: Worker) -> None:
    async with aiohttp.ClientSession() as session:
        client = Client(session, debug_worker.url)
        username = "e" + secrets.token_hex(5)
        body = {"username": username, "password": "pw-entropy-1"}
        status, _ = await client.call("POST", "/users", body, auth=ADMIN_KEY)
        assert status == 201
        sessions = []
        for _ in range(10):
            status, reply = await client.call(
                "POST", f"/{username}/login", {"userName": username, "password": "pw-entropy-1"}
            )
            assert status == 200, reply
            sessions.append(reply["sessionID"])
        tokens = []
        for n in range(10):
            status, reply = await client.call(
                "POST", f"/{username}/tokens", {"name": f"t{n}", "permissions": []}, sessions[0]
            )
            assert status == 201, reply
            tokens.append(reply["id"])
    issued = sessions + tokens
    assert len(set(issued)) == len(issued)
    for value in issued:
        # 43 URL-safe characters = 256 random bits (secrets.token_urlsafe(32)).
        assert len(value) >= 43, value
        assert re.fullmatch(r"[A-Za-z0-9_-]+", value), value
        assert len(base64.urlsafe_b64decode(value + "=")) >= 32
    # No common prefix (nothing time-based or sequential), and near-uniform characters:
    # 64 symbols give at most 6 bits per character; 860 random ones measure about 5.8.
    assert len(Counter(v[:3] for v in issued)) == len(issued)
    bits = shannon_bits_per_char(issued)
    assert bits > 5.5, bits
    print(f"\nCredentials: {len(issued)} issued, 43 chars each, {bits:.2f} bits/char measured")


def python_sources() -> list[tuple[Path, str, ast.Module]]:
    return [(p, p.read_text(), ast.parse(p.read_text())) for p in PRYVRT_DIR.rglob("*.py")]


def test_credentials_come_from_the_secrets_module_and_never_from_random() -> None:
    sources = python_sources()
    for path, _, tree in sources:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names]
                module = getattr(node, "module", None)
                assert "random" not in names and module != "random", path
    from pryvrt import ids

    # Every credential (token, session, readToken) comes from new_secret(): 256 bits.
    assert ids.new_secret() != ids.new_secret()
    assert len(ids.new_secret()) == 43
    makers = {
        ast.get_source_segment(source, node)
        for _, source, tree in sources
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("token_urlsafe", "token_hex", "token_bytes", "randbits")
    }
    # token_hex(8) names requests in logs (not a credential); token_urlsafe(32) is new_secret.
    # token_bytes(count + 4) is the random part of item ids (not credentials).
    assert makers <= {
        "secrets.token_urlsafe(32)",
        "secrets.token_hex(8)",
        "secrets.token_bytes(count + 4)",
        # pryvrt.auth.secret_key: the generated server secret, and a temporary file name.
        "secrets.token_bytes(32)",
        "secrets.token_hex(4)",
    }, makers


# Names that hold secrets; comparing them with == would leak timing.
SECRET_NAMES = re.compile(r"admin_key|read_?token|password|credential|secret", re.IGNORECASE)


def test_secrets_are_compared_in_constant_time() -> None:
    offenders = []
    digests = []
    for path, source, tree in python_sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare) and any(
                isinstance(op, ast.Eq | ast.NotEq) for op in node.ops
            ):
                text = ast.get_source_segment(source, node) or ""
                if SECRET_NAMES.search(text):
                    offenders.append(f"{path.name}:{node.lineno}: {text}")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "compare_digest"
            ):
                digests.append(ast.get_source_segment(source, node) or "")
    assert not offenders, offenders
    # The admin key, readTokens and revoked tokens are compared with hmac.compare_digest
    # (passwords by argon2's verify).
    assert any("credential" in d and "key" in d for d in digests), digests
    assert any("given_signature" in d for d in digests), digests  # readTokens
    assert any("secret" in d for d in digests), digests
