"""Receiving uploads: no database connection held while a body arrives, a per-user bound,
temporary files that never outlive their request. Slow clients are real sockets that send
a multipart body piece by piece."""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pryvrt.app import SERVICES_KEY
from tests.conftest import Api, AppFactory
from tests.test_attachments import multipart

BOUNDARY = "slow-boundary"


@dataclass
class SlowUpload:
    """One events.create with a file, written to a raw socket a piece at a time."""

    api: Api
    username: str
    auth: str
    channel: str
    data: bytes
    file_name: str = "slow.bin"

    def parts(self) -> tuple[bytes, bytes]:
        head = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="event"\r\n'
            f"Content-Type: application/json\r\n\r\n{json.dumps({})}\r\n"
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file";'
            f' filename="{self.file_name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        return head, f"\r\n--{BOUNDARY}--\r\n".encode()

    async def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connect and send the request head, the JSON part and the file part's header."""
        url = self.api.client.make_url("/")
        reader, writer = await asyncio.open_connection(url.host, url.port)
        head, tail = self.parts()
        length = len(head) + len(self.data) + len(tail)
        writer.write(
            (
                f"POST /{self.username}/{self.channel}/events HTTP/1.1\r\n"
                f"Host: {url.host}:{url.port}\r\nAuthorization: {self.auth}\r\n"
                f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
                f"Content-Length: {length}\r\nConnection: close\r\n\r\n"
            ).encode()
            + head
        )
        await writer.drain()
        return reader, writer

    async def send(self, pieces: int, interval: float) -> tuple[int, Any]:
        """The whole request, the file in ``pieces`` with ``interval`` s between them."""
        reader, writer = await self.open()
        try:
            size = -(-len(self.data) // pieces)
            for start in range(0, len(self.data), size):
                writer.write(self.data[start : start + size])
                await writer.drain()
                await asyncio.sleep(interval)
            writer.write(self.parts()[1])
            await writer.drain()
            raw = await asyncio.wait_for(reader.read(), 30)
        finally:
            writer.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        return int(head.split()[1]), json.loads(body)


async def timed_get(api: Api, path: str, auth: str | None = None) -> tuple[int, float]:
    started = time.perf_counter()
    reply = await api.get(path, auth=auth)
    return reply.status, time.perf_counter() - started


async def test_slow_uploads_do_not_starve_other_users_reads_or_health(
    make_api: AppFactory,
) -> None:
    """Pool of 2, a 2 s wait for a connection: 4 uploads that each take ~3 s to arrive
    used to hold a pooled connection inside a transaction each, and every other call
    waited, then answered 503."""
    api = await make_api(db_pool_size=2, db_timeout=2.0)
    uploader, upload_session = await api.user()
    upload_channel = await api.channel(uploader, upload_session)
    reader_name, reader_session = await api.user()
    read_channel = await api.channel(reader_name, reader_session)
    assert (
        await api.post(f"/{reader_name}/{read_channel}/events", {}, auth=reader_session)
    ).status == 201
    files = [os.urandom(200_000) for _ in range(4)]
    uploads = [
        asyncio.create_task(
            SlowUpload(api, uploader, upload_session, upload_channel, data).send(
                pieces=12, interval=0.25
            )
        )
        for data in files
    ]
    await asyncio.sleep(0.5)  # every upload is now receiving its file
    services = api.client.app[SERVICES_KEY]
    assert services.uploads_in_progress == {services.user_cache[uploader].id: 4}
    timings: list[tuple[str, int, float]] = []
    while not all(task.done() for task in uploads):
        for path, auth in (
            (f"/{reader_name}/{read_channel}/events", reader_session),
            ("/health", None),
        ):
            status, seconds = await timed_get(api, path, auth)
            timings.append((path, status, seconds))
        await asyncio.sleep(0.05)
    assert len(timings) > 20
    assert all(status == 200 for _, status, _ in timings), timings
    slowest = max(seconds for *_, seconds in timings)
    middle = sorted(seconds for *_, seconds in timings)[len(timings) // 2]
    print(
        f"\n4 uploads of 200 kB in 12 pieces 0.25 s apart, pool of 2: {len(timings)} reads and"
        f" /health of another user meanwhile, median {middle * 1000:.1f} ms,"
        f" slowest {slowest * 1000:.1f} ms, all 200"
    )
    assert slowest < 0.5, timings
    results = [task.result() for task in uploads]
    assert [status for status, _ in results] == [201] * 4, results
    for (_, body), data in zip(results, files, strict=True):
        path = f"/{uploader}/{upload_channel}/events/{body['id']}/slow.bin"
        assert (await api.get(path, auth=upload_session)).body == data
    assert services.uploads_in_progress == {}


async def test_a_user_over_the_upload_bound_is_asked_to_retry(make_api: AppFactory) -> None:
    api = await make_api(max_uploads_per_user=2)
    username, session = await api.user()
    channel = await api.channel(username, session)
    slow = [
        asyncio.create_task(
            SlowUpload(api, username, session, channel, os.urandom(50_000)).send(8, 0.2)
        )
        for _ in range(2)
    ]
    await asyncio.sleep(0.4)
    form = multipart({}, [("quick.txt", b"quick", "text/plain")])
    refused = await api.post(f"/{username}/{channel}/events", data=form, auth=session)
    assert (refused.status, refused.body["id"]) == (429, "TOO_MANY_REQUESTS"), refused
    assert int(refused.headers["Retry-After"]) > 0
    # Another user is not bound by this one's uploads; JSON writes are not uploads.
    other, other_session = await api.user()
    other_channel = await api.channel(other, other_session)
    form = multipart({}, [("quick.txt", b"quick", "text/plain")])
    reply = await api.post(f"/{other}/{other_channel}/events", data=form, auth=other_session)
    assert reply.status == 201, reply
    assert (await api.post(f"/{username}/{channel}/events", {}, auth=session)).status == 201
    assert [(await task)[0] for task in slow] == [201, 201]
    form = multipart({}, [("quick.txt", b"quick", "text/plain")])
    again = await api.post(f"/{username}/{channel}/events", data=form, auth=session)
    assert again.status == 201, again


def spool_files(directory: Path) -> list[str]:
    """This process's open files in the upload directory (they have no name there)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(directory) + "/"):
            found.append(target)
    return found


async def wait_until(condition: Any, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_temporary_files_are_removed_after_success_failure_and_disconnect(
    make_api: AppFactory, tmp_path: Path, database_url: str
) -> None:
    spool = tmp_path / "uploads"
    spool.mkdir()
    api = await make_api(upload_dir=spool, max_attachment_size=100_000)
    services = api.client.app[SERVICES_KEY]
    username, session = await api.user()
    channel = await api.channel(username, session)
    events_path = f"/{username}/{channel}/events"

    # While a file arrives it sits in a temporary file with no name in the directory.
    upload = SlowUpload(api, username, session, channel, os.urandom(60_000))
    _, writer = await upload.open()
    for start in (0, 20_000):  # (aiohttp reads a chunk ahead to find a part's end)
        writer.write(upload.data[start : start + 20_000])
        await writer.drain()
        await asyncio.sleep(0.2)
    await wait_until(lambda: len(spool_files(spool)) == 1)
    assert os.listdir(spool) == []
    # The client goes away mid-file: the file goes too.
    writer.close()
    await wait_until(lambda: spool_files(spool) == [])
    await wait_until(lambda: services.uploads_in_progress == {})

    # Success.
    form = multipart({}, [("a.bin", os.urandom(90_000), "application/octet-stream")] * 1)
    assert (await api.post(events_path, data=form, auth=session)).status == 201
    assert spool_files(spool) == []
    # Failures: over the size limit (after one good file), two files of one name, a name
    # the event already has (found inside the transaction, after receiving).
    failures = [
        (
            multipart(
                {"id": "too-big"},
                [("ok.bin", b"ok", "text/plain"), ("big.bin", os.urandom(150_000), "x/y")],
            ),
            events_path,
            413,
        ),
        (
            multipart({"id": "twice"}, [("same", b"1", "x/y"), ("same", b"2", "x/y")]),
            events_path,
            400,
        ),
    ]
    created = await api.post(events_path, data=multipart({}, [("f", b"1", "x/y")]), auth=session)
    failures.append(
        (multipart(None, [("f", b"2", "x/y")]), f"{events_path}/{created.body['id']}", 400)
    )
    for form, path, status in failures:
        reply = await api.post(path, data=form, auth=session)
        assert reply.status == status, reply
        assert spool_files(spool) == []
    events = (await api.get(f"{events_path}?state=all", auth=session)).body
    assert {e["id"] for e in events}.isdisjoint({"too-big", "twice"})
    [with_f] = [e for e in events if e["id"] == created.body["id"]]
    assert len(with_f["attachments"]) == 1
    assert services.uploads_in_progress == {}
    assert os.listdir(spool) == []
