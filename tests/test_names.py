"""Names and ids are matched whole: a trailing newline is no loophole (API.md §1, §4).

Python's ``re`` ``$`` also matches just before a final ``\\n``, so ``^...$`` with ``match``
let ``"alice\\n"`` (a look-alike account) or ``"null\\n"`` through. Every check now uses
``fullmatch``; the guard test below keeps ``$`` out of the package's Python patterns.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from typing import Any

import pytest

import pryvrt
from tests.conftest import Api


def refused(reply: Any, error_id: str) -> None:
    assert reply.status == 400, reply
    assert reply.body["id"] == error_id, reply


@pytest.mark.parametrize("username", ["alice\n", "health\n", "users\n", "bob-smith\n"])
async def test_a_username_with_a_trailing_newline_is_refused(api: Api, username: str) -> None:
    reply = await api.post("/users", {"username": username, "password": "secret-pw"})
    refused(reply, "INVALID_PARAMETERS_FORMAT")
    assert "username" in reply.body["data"]


@pytest.mark.parametrize("channel_id", ["null\n", "events\n", "channels\n", "fine-id\n", "*\n"])
async def test_a_channel_id_with_a_trailing_newline_is_an_invalid_item_id(
    api: Api, channel_id: str
) -> None:
    username, session = await api.user()
    reply = await api.post(f"/{username}/channels", {"id": channel_id, "name": "n"}, auth=session)
    refused(reply, "INVALID_ITEM_ID")
    assert (await api.get(f"/{username}/channels", auth=session)).body == []


async def test_folder_event_and_token_ids_with_a_trailing_newline_are_invalid_item_ids(
    api: Api,
) -> None:
    username, session = await api.user()
    channel = await api.channel(username, session)
    reply = await api.post(f"/{username}/{channel}/folders", {"id": "f\n", "name": "F"}, session)
    refused(reply, "INVALID_ITEM_ID")
    reply = await api.post(
        f"/{username}/{channel}/events", {"id": "e\n", "folderId": None}, auth=session
    )
    refused(reply, "INVALID_ITEM_ID")
    reply = await api.post(
        f"/{username}/{channel}/events/batch",
        {"events": [{"clientId": "c", "id": "batch\n"}]},
        auth=session,
    )
    assert reply.status == 400, reply
    assert reply.body["id"] in ("INVALID_ITEM_ID", "INVALID_PARAMETERS_FORMAT"), reply
    # Token ids need 20 characters (a token id is its secret): long enough but for the "\n".
    token_id = "a-long-enough-token-id\n"
    reply = await api.post(f"/{username}/tokens", {"id": token_id, "name": "T"}, auth=session)
    refused(reply, "INVALID_ITEM_ID")
    # Nothing was written.
    assert (await api.get(f"/{username}/{channel}/folders", auth=session)).body == []
    assert (await api.get(f"/{username}/{channel}/events", auth=session)).body == []
    assert (await api.get(f"/{username}/tokens", auth=session)).body == []


async def test_the_same_ids_without_the_newline_are_accepted(api: Api) -> None:
    username, session = await api.user()
    reply = await api.post(f"/{username}/channels", {"id": "fine-id", "name": "n"}, auth=session)
    assert reply.status == 201, reply
    token_id = "a-long-enough-token-id"
    reply = await api.post(f"/{username}/tokens", {"id": token_id, "name": "T"}, auth=session)
    assert reply.status == 201, reply


async def test_a_batch_refuses_a_channel_id_with_a_trailing_newline(api: Api) -> None:
    username, session = await api.user()
    reply = await api.post(
        f"/{username}/",
        [{"method": "channels.create", "params": {"id": "null\n", "name": "n"}}],
        auth=session,
    )
    assert reply.status == 200, reply
    assert reply.body[0]["error"]["id"] == "INVALID_ITEM_ID"


@pytest.mark.parametrize(
    "fields",
    [{"language": "en\n"}, {"email": "a@b.example\n\n"}],
    ids=["language", "email"],
)
async def test_account_fields_with_a_trailing_newline_are_refused_or_trimmed(
    api: Api, fields: dict[str, str]
) -> None:
    username, session = await api.user()
    reply = await api.put(f"/{username}/user-info", fields, auth=session)
    if reply.status == 200:  # the email is trimmed (documented): stored without the newline
        info = (await api.get(f"/{username}/user-info", auth=session)).body
        assert "\n" not in str(info), info
    else:
        refused(reply, "INVALID_PARAMETERS_FORMAT")


async def test_a_bookmark_url_with_a_newline_is_refused(api: Api) -> None:
    username, session = await api.user()
    reply = await api.post(
        f"/{username}/bookmarks",
        {"name": "b", "url": "https://example.org/\n", "accessToken": "x"},
        auth=session,
    )
    refused(reply, "INVALID_PARAMETERS_FORMAT")


def test_no_python_pattern_in_the_package_relies_on_dollar() -> None:
    """``$`` in a Python pattern matches before a trailing newline: use ``fullmatch`` (or
    ``\\Z``) instead. Pydantic ``pattern=`` constraints use Rust's regex, where ``$`` is the
    end of the text, and are not module-level ``re.Pattern`` objects."""
    offenders = []
    for info in pkgutil.walk_packages(pryvrt.__path__, "pryvrt."):
        if info.name.endswith("__main__"):
            continue  # running it would start the command line
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if isinstance(value, re.Pattern) and re.search(r"(?<!\\)\$", str(value.pattern)):
                offenders.append(f"{info.name}.{name}")
    assert offenders == []
