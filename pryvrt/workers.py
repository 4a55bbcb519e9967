"""``pryvrt serve --workers N``: a parent process supervising N workers on one port.

The parent starts the embedded PostgreSQL once (when there is no DATABASE_URL) and hands
its URI to the workers; each worker is ``pryvrt serve --worker`` listening with
SO_REUSEPORT on the same address, so the kernel spreads connections over them.
Notifications cross workers through Redis (REDIS_URL is required, see ``Settings``), and
Socket.IO is websocket-only (long-polling would need sticky sessions).

SIGTERM or SIGINT to the parent forwards SIGTERM to the workers and waits for them. A
worker that dies is restarted, unless it dies during start-up (then everything stops).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from types import FrameType

from aiohttp import web

from pryvrt.config import Settings
from pryvrt.storage.database import EmbeddedPostgres

log = logging.getLogger(__name__)

# A worker exiting sooner than this after its start failed to start: do not loop on it.
STARTUP_SECONDS = 5.0
POLL_SECONDS = 0.1


class Supervisor:
    def __init__(self, settings: Settings, shutdown_timeout: float) -> None:
        self.settings = settings
        self.shutdown_timeout = shutdown_timeout
        self.env = dict(os.environ)
        self.workers: list[tuple[subprocess.Popen[bytes], float]] = []
        self.stopping = False

    def command(self) -> list[str]:
        s = self.settings
        return [
            sys.executable,
            "-m",
            "pryvrt",
            "serve",
            "--worker",
            f"--workers={s.workers}",
            f"--host={s.host}",
            f"--port={s.port}",
            f"--data-dir={s.data_dir}",
            f"--shutdown-timeout={self.shutdown_timeout}",
        ]

    def spawn(self) -> tuple[subprocess.Popen[bytes], float]:
        # Own session: a terminal's Ctrl-C reaches the parent only, which then stops the
        # workers once (a second signal would interrupt their graceful shutdown).
        proc = subprocess.Popen(self.command(), env=self.env, start_new_session=True)
        return proc, time.monotonic()

    def stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        embedded = None
        if self.settings.database_url is None:
            embedded = EmbeddedPostgres(self.settings.data_dir / "pg")
            self.env["DATABASE_URL"] = embedded.start()
        try:
            return self.supervise()
        finally:
            self.terminate_all()
            if embedded is not None:
                embedded.stop()

    def supervise(self) -> int:
        self.workers = [self.spawn() for _ in range(self.settings.workers)]
        log.info(
            "workers started",
            extra={"workers": [p.pid for p, _ in self.workers], "port": self.settings.port},
        )
        while not self.stopping:
            time.sleep(POLL_SECONDS)
            for index, (proc, started) in enumerate(self.workers):
                code = proc.poll()
                if code is None or self.stopping:
                    continue
                if time.monotonic() - started < STARTUP_SECONDS:
                    log.error("worker %d failed to start (exit code %s)", proc.pid, code)
                    return 1
                log.error("worker %d exited (code %s): restarting it", proc.pid, code)
                self.workers[index] = self.spawn()
        return 0

    def terminate_all(self) -> None:
        """SIGTERM every worker, wait for them, SIGKILL the ones that overstay."""
        for proc, _ in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.shutdown_timeout + 5
        for proc, _ in self.workers:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker %d did not stop in time: killing it", proc.pid)
                proc.kill()
                proc.wait()
        self.workers = []


def supervise(settings: Settings, shutdown_timeout: float) -> int:
    return Supervisor(settings, shutdown_timeout).run()


async def exit_with_parent(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx for a worker: stop gracefully (SIGTERM to itself) if the parent dies."""
    parent = os.getppid()

    async def watch() -> None:
        while True:
            await asyncio.sleep(1.0)
            if os.getppid() != parent:
                break
        log.error("the supervisor is gone: stopping")
        os.kill(os.getpid(), signal.SIGTERM)

    task = asyncio.create_task(watch())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
