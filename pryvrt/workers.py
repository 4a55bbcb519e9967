"""``pryvrt serve --workers N``: a parent process supervising N workers on one port.

The parent starts the embedded PostgreSQL once (when there is no DATABASE_URL) and hands
its URI to the workers; each worker is ``pryvrt serve --worker`` listening with
SO_REUSEPORT on the same address, so the kernel spreads connections over them.
Notifications cross workers through Redis (REDIS_URL is required, see ``Settings``), and
Socket.IO is websocket-only (long-polling would need sticky sessions).

SIGTERM or SIGINT to the parent forwards SIGTERM to the workers and waits for them.

Supervision (figures in the README's "Reliability" section):

- A worker tells the parent it is ready by writing one byte on a pipe once its port is
  bound. If the first process of a worker exits before that, the service cannot start
  (configuration, port taken, database unreachable at start): everything stops, exit 1.
- Any later exit (a crash, SIGKILL, the OOM killer) is restarted, forever, after a delay
  that doubles from 0.5 s up to 30 s over consecutive exits and starts over once a worker
  ran 60 s (``pryvrt.backoff``). The other workers keep serving meanwhile.
- The embedded PostgreSQL is checked every 0.5 s; a postmaster that is gone is started
  again on the same data directory and socket (same backoff on failure), and the workers'
  connection pools reconnect by themselves.
- Workers run the code the parent runs, never a ``pryvrt/`` folder of the current
  directory: ``python -P`` (3.11+) keeps the current directory off ``sys.path``, and the
  directory holding the parent's own ``pryvrt`` package comes first.
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
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from aiohttp import web

import pryvrt
from pryvrt.backoff import Backoff
from pryvrt.config import Settings
from pryvrt.storage.database import EmbeddedPostgres

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1
DATABASE_CHECK_SECONDS = 0.5
# The directory holding the package this process runs (site-packages, or a checkout).
PACKAGE_ROOT = str(Path(pryvrt.__file__).resolve().parent.parent)
# Run as ``python -P -c BOOT PACKAGE_ROOT serve ...``: import pryvrt from PACKAGE_ROOT.
BOOT = (
    "import sys; root = sys.argv.pop(1); sys.path[:0] = [] if root in sys.path else [root];"
    " from pryvrt.cli import main; main()"
)


@dataclass(eq=False)
class Slot:
    """One of the N workers: its current process and its restart state."""

    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    ready_fd: int | None = None  # read end of the current process's readiness pipe
    served: bool = False  # a process of this slot got ready: the service is up
    restart_at: float | None = None
    backoff: Backoff = field(default_factory=Backoff)


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        shutdown_timeout: float,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        # Called once, when every worker has got ready the first time (the service is up).
        self.on_ready = on_ready
        self.shutdown_timeout = shutdown_timeout
        self.env = dict(os.environ)
        self.slots: list[Slot] = []
        self.stopping = False
        self.embedded: EmbeddedPostgres | None = None
        self._database_backoff = Backoff()
        self._next_database_check = 0.0

    def command(self, ready_fd: int) -> list[str]:
        s = self.settings
        return [
            sys.executable,
            "-P",
            "-c",
            BOOT,
            PACKAGE_ROOT,
            "serve",
            "--worker",
            f"--workers={s.workers}",
            f"--host={s.host}",
            f"--port={s.port}",
            f"--data-dir={s.data_dir}",
            f"--shutdown-timeout={self.shutdown_timeout}",
            f"--ready-fd={ready_fd}",
        ]

    def spawn(self, slot: Slot) -> None:
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        try:
            # Own session: a terminal's Ctrl-C reaches the parent only, which then stops the
            # workers once (a second signal would interrupt their graceful shutdown).
            slot.process = subprocess.Popen(
                self.command(write_end),
                env=self.env,
                start_new_session=True,
                pass_fds=(write_end,),
            )
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        slot.started = time.monotonic()
        slot.ready_fd = read_end
        slot.restart_at = None

    def stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        if self.settings.database_url is None:
            self.embedded = EmbeddedPostgres(self.settings.data_dir / "pg")
            self.env["DATABASE_URL"] = self.embedded.start()
        try:
            return self.supervise()
        finally:
            self.terminate_all()
            if self.embedded is not None:
                self.embedded.stop()

    def supervise(self) -> int:
        self.slots = [Slot() for _ in range(self.settings.workers)]
        for slot in self.slots:
            self.spawn(slot)
        log.info(
            "workers started",
            extra={
                "workers": [s.process.pid for s in self.slots if s.process],
                "port": self.settings.port,
            },
        )
        while not self.stopping:
            time.sleep(POLL_SECONDS)
            for slot in self.slots:
                if self.stopping:
                    break
                if not self.tend(slot):
                    return 1
            if self.embedded is not None and not self.stopping:
                self.tend_database(self.embedded)
        return 0

    def tend(self, slot: Slot) -> bool:
        """Notice readiness, exits and due restarts of one worker; False: stop everything."""
        now = time.monotonic()
        if slot.process is None:
            if slot.restart_at is not None and now >= slot.restart_at:
                self.spawn(slot)
                assert slot.process is not None
                log.warning("worker restarted", extra={"pid": slot.process.pid})
            return True
        self._read_ready(slot)
        code = slot.process.poll()
        if code is None:
            return True
        pid, ran = slot.process.pid, now - slot.started
        slot.process = None
        self._read_ready(slot)  # a byte written just before exiting still counts
        self._close_ready(slot)
        if not slot.served:
            log.error("worker %d failed to start (exit code %s): stopping", pid, code)
            return False
        delay = slot.backoff.failed(ran)
        slot.restart_at = now + delay
        log.error(
            "worker %d exited (code %s) after %.1f s: restarting it in %.1f s",
            pid,
            code,
            ran,
            delay,
        )
        return True

    def _read_ready(self, slot: Slot) -> None:
        if slot.ready_fd is None:
            return
        try:
            data = os.read(slot.ready_fd, 1)
        except BlockingIOError:
            return  # not ready yet
        self._close_ready(slot)
        if data:
            slot.served = True
            if slot.process is not None:
                log.info("worker ready", extra={"pid": slot.process.pid})
            if self.on_ready is not None and all(s.served for s in self.slots):
                on_ready, self.on_ready = self.on_ready, None
                on_ready()

    def _close_ready(self, slot: Slot) -> None:
        if slot.ready_fd is not None:
            os.close(slot.ready_fd)
            slot.ready_fd = None

    def tend_database(self, embedded: EmbeddedPostgres) -> None:
        """Restart the embedded PostgreSQL when its postmaster is gone (blocks while it starts)."""
        now = time.monotonic()
        if now < self._next_database_check:
            return
        self._next_database_check = now + DATABASE_CHECK_SECONDS
        if embedded.alive():
            return
        log.error("the embedded PostgreSQL is gone (pid %s): restarting it", embedded.pid())
        try:
            embedded.restart()
        except Exception as exc:  # refused for now: try again after a delay
            delay = self._database_backoff.failed()
            self._next_database_check = now + delay
            log.error(
                "the embedded PostgreSQL did not restart (%r): next try in %.1f s", exc, delay
            )
            return
        self._database_backoff.reset()
        self.env["DATABASE_URL"] = embedded.uri
        log.warning(
            "the embedded PostgreSQL restarted",
            extra={"pid": embedded.pid(), "restart_ms": round((time.monotonic() - now) * 1000)},
        )

    def terminate_all(self) -> None:
        """SIGTERM every worker, wait for them, SIGKILL the ones that overstay."""
        running = [s.process for s in self.slots if s.process is not None]
        for proc in running:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.shutdown_timeout + 5
        for proc in running:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker %d did not stop in time: killing it", proc.pid)
                proc.kill()
                proc.wait()
        for slot in self.slots:
            self._close_ready(slot)
        self.slots = []


def supervise(
    settings: Settings, shutdown_timeout: float, on_ready: Callable[[], None] | None = None
) -> int:
    return Supervisor(settings, shutdown_timeout, on_ready).run()


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
