"""The ``pryvrt`` command as a person uses it: ``serve`` says where to go and where the data
is, ``user create`` works on the server's data directory (or says clearly that there is no
database), ``doctor`` reports what is configured and reachable. Real processes, an embedded
PostgreSQL in a temporary data directory."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from pryvrt import running

PRYVRT = (sys.executable, "-m", "pryvrt")


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without the test run's own services (the CLI must find its own)."""
    dropped = ("DATABASE_URL", "REDIS_URL", "PORT", "PRYVRT_PORT", "PRYVRT_DATA_DIR")
    env = {k: v for k, v in os.environ.items() if k not in dropped and k != "PRYVRT_LOG_LEVEL"}
    env.update(extra)
    return env


def cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PRYVRT, *args],
        cwd=cwd,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=90,
    )


@dataclass
class Served:
    process: subprocess.Popen[str]
    home: Path  # the directory it was started from (its data directory: home/var)
    banner: str
    url: str
    listening_at: float  # when the "listening" line was read
    accepted_at: float  # when a connection attempted right after it succeeded


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``pryvrt serve --port 0`` started from a fresh directory: embedded PostgreSQL in
    ./var, the port chosen by the system (so the real port differs from the default)."""
    home = tmp_path_factory.mktemp("cli")
    process = subprocess.Popen(
        [*PRYVRT, "serve", "--port", "0"],
        cwd=home,
        env=clean_env(PRYVRT_REGISTRATION="closed", PRYVRT_PASSWORD_HASH_FAST="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None and process.stdout is not None
        deadline = time.monotonic() + 90
        seen = []
        listening = None
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            seen.append(line)
            if not line.startswith("{"):
                continue  # not the server's JSON log (e.g. a library's warning)
            record = orjson.loads(line)
            if record["msg"] == "listening":
                listening = record
                break
        assert listening is not None, "".join(seen)
        listening_at = time.monotonic()
        # The line says the port accepts: a connection made at once must succeed.
        with socket.create_connection(("127.0.0.1", listening["port"]), timeout=1):
            accepted_at = time.monotonic()
        banner = "".join(process.stdout.readline() for _ in range(7))
        # Keep reading its log, or the server blocks once the pipe is full.
        threading.Thread(target=process.stderr.read, daemon=True).start()
        yield Served(process, home, banner, listening["url"], listening_at, accepted_at)
    finally:
        process.terminate()
        process.wait(30)


def test_the_listening_line_comes_once_the_port_accepts_connections(served: Served) -> None:
    assert served.accepted_at - served.listening_at < 1.0
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", served.url)
    assert not served.url.endswith(":3000")


def test_serve_prints_the_url_to_open_and_the_data_directory(served: Served) -> None:
    data_dir = (served.home / "var").resolve()
    assert f"is serving {served.url}/" in served.banner
    assert f"open        {served.url}/ in a browser" in served.banner
    assert f"data        {data_dir}" in served.banner
    assert f"embedded PostgreSQL in {data_dir / 'pg'}" in served.banner
    assert "register    closed" in served.banner
    assert running.read(data_dir) == running.RunningServer(served.url, served.process.pid)


def test_user_create_uses_the_servers_database_and_prints_its_real_address(
    served: Served,
) -> None:
    done = cli("user", "create", "bob-smith", "--password", "another-secret", cwd=served.home)

    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no log lines for a one-shot command
    assert f"API endpoint  {served.url}/bob-smith/" in done.stdout
    assert str((served.home / "var" / "pg").resolve()) in done.stdout
    # the running server sees the user (registration is closed: only the CLI could create it)
    request = urllib.request.Request(
        served.url + "/bob-smith/login",
        data=orjson.dumps({"username": "bob-smith", "password": "another-secret"}),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert orjson.loads(reply.read())["sessionID"]
    # and the CLI leaving did not stop the embedded PostgreSQL the server uses
    with urllib.request.urlopen(served.url + "/health", timeout=10) as reply:
        assert reply.status == 200


def test_user_create_elsewhere_refuses_and_names_the_directory(tmp_path: Path) -> None:
    done = cli("user", "create", "bob-smith", "--password", "another-secret", cwd=tmp_path)

    assert done.returncode == 2
    assert f"no pryvrt database in {(tmp_path / 'var').resolve()}" in done.stderr
    assert "--data-dir" in done.stderr and "DATABASE_URL" in done.stderr
    assert not (tmp_path / "var").exists()  # nothing created


def test_cli_errors_are_sentences_not_python_reprs(served: Served) -> None:
    short = cli("user", "create", "bob", "--password", "another-secret", cwd=served.home)
    taken = cli("user", "create", "bob-smith", "--password", "another-secret", cwd=served.home)

    assert short.returncode == 1
    assert short.stderr.splitlines() == [
        "error: invalid parameters [INVALID_PARAMETERS_FORMAT]",
        "  username: usernames have 5-23 characters among letters, digits and '-',"
        " not starting or ending with '-'",
    ]
    assert taken.returncode == 1
    assert taken.stderr.splitlines()[0] == "error: this username is taken [ITEM_ID_ALREADY_EXISTS]"
    for text in (short.stderr, taken.stderr):
        assert "{" not in text and "Traceback" not in text


def test_doctor_reports_configuration_and_what_answers(served: Served, redis_url: str) -> None:
    done = cli("doctor", cwd=served.home, env=clean_env(REDIS_URL=redis_url))

    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert f"embedded PostgreSQL in {(served.home / 'var' / 'pg').resolve()}" in out
    assert re.search(r"ok reached \(PostgreSQL 16[\d.]*, schema v\d+, \d+ users?\)", out), out
    assert re.search(r"Redis at redis://127\.0\.0\.1:\d+/0 \(REDIS_URL\)\n\s+ok reached", out)
    assert "open: anyone may POST /users" in out  # this environment's mode, not the server's
    assert f"ok running: GET {served.url}/health answered 200" in out
    assert out.rstrip().endswith("everything configured answers")


def test_doctor_says_what_does_not_answer(tmp_path: Path) -> None:
    env = clean_env(
        DATABASE_URL="postgresql://pryvrt:hunter2@127.0.0.1:1/none",
        REDIS_URL="redis://127.0.0.1:1/0",
        PRYVRT_REGISTRATION="key",
        PRYVRT_ADMIN_KEY="k" * 20,
    )
    done = cli("doctor", cwd=tmp_path, env=env)

    assert done.returncode == 1
    out = done.stdout
    assert "PostgreSQL at postgresql://pryvrt:***@127.0.0.1:1/none (DATABASE_URL)" in out
    assert "hunter2" not in out
    assert out.count("!! unreachable") == 2
    assert "key: POST /users needs Authorization: $PRYVRT_ADMIN_KEY" in out
    assert "not running (start it with `pryvrt serve`)" in out
    assert out.rstrip().endswith("problems: database, redis")
