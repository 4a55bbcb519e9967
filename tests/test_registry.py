"""The registry's choke point: unexpected failures, database outages, and the method table."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from pryvrt.methods import registry
from pryvrt.methods.context import CallContext
from pryvrt.methods.params import Params
from pryvrt.transports.http import ROUTES
from tests.conftest import Api


class BoomParams(Params):
    pass


@pytest.fixture
def boom_method() -> Iterator[str]:
    """A method that fails with a bug, registered only for this test."""

    @registry.method("test.boom", BoomParams)
    async def boom(ctx: CallContext, p: BoomParams) -> None:
        raise RuntimeError("secret internals that must not leak")

    yield "test.boom"
    del registry.REGISTRY["test.boom"]


async def test_unexpected_errors_answer_unexpected_error_and_are_logged_with_the_request_id(
    api: Api, boom_method: str, caplog: pytest.LogCaptureFixture
) -> None:
    username, session = await api.user()
    with caplog.at_level(logging.ERROR):
        reply = await api.post(
            f"/{username}/",
            [{"method": boom_method}],
            auth=session,
            headers={"X-Request-Id": "trace-me-42"},
        )
    assert reply.status == 200
    error = reply.body[0]["error"]
    assert error["id"] == "UNEXPECTED_ERROR"
    assert "trace-me-42" in error["message"]
    assert "secret internals" not in error["message"]
    [record] = [r for r in caplog.records if getattr(r, "request_id", None) == "trace-me-42"]
    assert record.exc_info is not None


def test_every_route_names_a_method_with_the_same_id_pattern() -> None:
    for route in ROUTES:
        assert route.method_id == "batch" or "." in route.method_id
        assert route.verb in {"GET", "POST", "PUT", "DELETE"}


def test_every_registered_method_documents_itself() -> None:
    for method in registry.REGISTRY.values():
        assert method.summary and method.summary != method.id, method.id
