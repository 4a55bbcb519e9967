"""The README and docs/*.md are executable: their runnable shell blocks run, in order, against
a real ``pryvrt serve`` started here, and their printed output is compared with what the page
shows (in the spirit of Datasette's test_docs.py).

The convention (README, "Documentation"):

- ``<!-- run -->`` on the line before a fenced ```sh block marks it runnable. The blocks of
  one page run in one shell, in order (variables set by one block serve the next ones),
  from a scratch directory where ``.venv/bin/pryvrt`` and ``pryvrt`` are this checkout's.
  ``http://127.0.0.1:3000`` is replaced by the test server's address.
- ``<!-- output -->`` before a fenced block (anywhere after a runnable block, before the
  next one) gives that block's expected standard output. ``...`` stands for any text (ids,
  times, paths); the rest must match exactly (trailing spaces aside).
- A block that cannot run here (installs, long-running servers) is simply not marked.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.processes import worker_env

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN, OUTPUT = "<!-- run -->", "<!-- output -->"
DOC_URL = "http://127.0.0.1:3000"
FENCE = re.compile(r"^```(\w*)\s*$")
MARKER = "@@pryvrt-docs-block@@"
# Every page that has runnable blocks, with at least this many (a guard against a
# convention that silently stopped matching).
AT_LEAST = {"README.md": 4, "docs/events.md": 1}


@dataclass
class Block:
    page: str
    line: int  # 1-based line of the opening fence
    code: str
    expected: str | None = None


def fenced(lines: list[str], start: int, page: str, marker: str) -> tuple[int, str, str]:
    """(index after the block, language, body) of the fence that must follow ``start``."""
    index = start + 1
    while index < len(lines) and not lines[index].strip():
        index += 1
    opening = FENCE.match(lines[index]) if index < len(lines) else None
    assert opening, f"{page}:{start + 1}: {marker} must be followed by a fenced block"
    body = []
    index += 1
    while index < len(lines) and not lines[index].startswith("```"):
        body.append(lines[index])
        index += 1
    assert index < len(lines), f"{page}:{start + 1}: unclosed fence"
    return index + 1, opening.group(1), "\n".join(body)


def page_blocks(path: Path) -> list[Block]:
    page = str(path.relative_to(ROOT))
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        text = lines[index].strip()
        if text == RUN:
            first = index
            index, language, code = fenced(lines, index, page, RUN)
            assert language in ("sh", "bash"), f"{page}:{first + 1}: runnable blocks are ```sh"
            blocks.append(Block(page, first + 2, code))
        elif text == OUTPUT:
            assert blocks, f"{page}:{index + 1}: {OUTPUT} before any runnable block"
            assert blocks[-1].expected is None, f"{page}:{index + 1}: two outputs for one block"
            index, _, blocks[-1].expected = fenced(lines, index, page, OUTPUT)
        else:
            index += 1
    return blocks


def matches(expected: str, actual: str) -> bool:
    """``expected`` with ``...`` as a wildcard, line ends stripped, against ``actual``."""

    def tidy(text: str) -> str:
        return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())

    pattern = ".*?".join(re.escape(part) for part in tidy(expected).split("..."))
    return re.fullmatch(pattern, tidy(actual), re.S) is not None


def test_the_pages_mark_their_runnable_blocks() -> None:
    counts = {str(p.relative_to(ROOT)): len(page_blocks(p)) for p in PAGES}
    for page, minimum in AT_LEAST.items():
        assert counts[page] >= minimum, (page, counts[page])


def test_the_output_wildcard_matches_only_what_it_stands_for() -> None:
    assert matches('{"id":"..."}\n', '{"id":"c1x"}')
    assert matches("a ... c", "a b\nb c  ")
    assert not matches('{"id":"..."}', '{"id":"c1x","more":1}')
    assert not matches("1500", "1500.0")


@dataclass
class Server:
    url: str
    env: dict[str, str]


# The interpreter that runs the server and the CLI of the pages (default: this one). E.g.
# PRYVRT_DOCS_PYTHON=/path/to/py3.12/venv/bin/python runs the README with Python 3.12.
DOCS_PYTHON = os.environ.get("PRYVRT_DOCS_PYTHON") or sys.executable


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("docs-data")
    env = worker_env(database_url, None, data_dir)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = data_dir / "server.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [DOCS_PYTHON, "-m", "pryvrt", "serve", "--host=127.0.0.1", f"--port={port}"],
            env=env,
            stdout=log,
            stderr=log,
        )
    try:
        deadline = time.monotonic() + 60
        while not healthy(url):
            assert process.poll() is None, log_path.read_text()[-2000:]
            assert time.monotonic() < deadline, log_path.read_text()[-2000:]
            time.sleep(0.1)
        yield Server(url, env)
    finally:
        process.terminate()
        process.wait(20)


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=1) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def shell_for(blocks: list[Block], url: str) -> str:
    """One script running the blocks in order, a marker line (with the block's exit
    status) on stdout after each; the first failing command stops it (``set -e``)."""
    parts = ["set -eo pipefail"]
    for number, block in enumerate(blocks):
        parts.append(block.code.replace(DOC_URL, url))
        parts.append(f'printf "\\n%s\\n" "{MARKER} {number}"')
    return "\n".join(parts) + "\n"


def scratch(tmp_path: Path) -> Path:
    """A directory where ``.venv/bin/pryvrt`` (as the README types it) and ``pryvrt`` run
    this checkout's code with this interpreter."""
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    wrapper = bin_dir / "pryvrt"
    wrapper.write_text(f'#!/bin/sh\nexec {shlex.quote(DOCS_PYTHON)} -m pryvrt "$@"\n')
    wrapper.chmod(0o755)
    return bin_dir


@pytest.mark.parametrize(
    "page",
    [p for p in PAGES if page_blocks(p)],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_the_runnable_blocks_of_the_page_run_as_printed(
    page: Path, server: Server, tmp_path: Path
) -> None:
    blocks = page_blocks(page)
    bin_dir = scratch(tmp_path)
    env = {
        **server.env,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    done = subprocess.run(
        ["bash", "-c", shell_for(blocks, server.url)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    outputs = done.stdout.split(MARKER)
    finished = len(outputs) - 1
    if done.returncode != 0 or finished < len(blocks):
        failed = blocks[min(finished, len(blocks) - 1)]
        pytest.fail(
            f"{failed.page}:{failed.line}: the block failed (exit {done.returncode})\n"
            f"--- block\n{failed.code}\n--- stdout\n{outputs[-1]}\n--- stderr\n{done.stderr}"
        )
    for number, block in enumerate(blocks):
        # Each output but the first starts with the previous marker's " N" line.
        actual = outputs[number] if number == 0 else outputs[number].split("\n", 1)[1]
        if block.expected is None:
            continue
        expected = block.expected.replace(DOC_URL, server.url)
        assert matches(expected, actual), (
            f"{block.page}:{block.line}: the output differs from the page\n"
            f"--- the page shows\n{expected}\n--- it printed\n{actual}\n--- stderr\n{done.stderr}"
        )


LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_every_relative_link_of_the_docs_resolves_inside_the_repository() -> None:
    """A clone has nothing outside the repository (no ``../shared/API.md``)."""
    for page in PAGES:
        text = page.read_text()
        assert "shared/API.md" not in text, page
        for target in LINK.findall(text):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            path = (page.parent / target.split("#", 1)[0]).resolve()
            assert path.is_relative_to(ROOT), (page.name, target)
            assert path.exists(), (page.name, target)
