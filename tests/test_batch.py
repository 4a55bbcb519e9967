"""POST /{username}/ : a batch of method calls (API.md §11)."""

from __future__ import annotations

from tests.conftest import Api, AppFactory


async def test_batch_runs_calls_in_order_with_results_and_errors(api: Api) -> None:
    username, session = await api.user()
    reply = await api.post(
        f"/{username}/",
        [
            {"method": "channels.create", "params": {"id": "one", "name": "One"}},
            {"method": "channels.create", "params": {"id": "one", "name": "Dup"}},
            {"method": "channels.get", "params": {}},
            {"method": "no.such.method", "params": {}},
            {"method": "channels.update", "params": {"channelId": "one", "name": 5}},
        ],
        auth=session,
    )
    assert reply.status == 200
    results = reply.body
    assert results[0] == {"result": {"id": "one"}}
    assert results[1]["error"]["id"] == "ITEM_ID_ALREADY_EXISTS"
    assert [c["id"] for c in results[2]["result"]] == ["one"]
    assert results[3]["error"]["id"] == "UNKNOWN_METHOD"
    assert results[4]["error"]["id"] == "INVALID_PARAMETERS_FORMAT"


async def test_batch_calls_use_the_request_credential(api: Api) -> None:
    username, session = await api.user()
    ch = await api.channel(username, session)
    token = await api.shared_token(username, session, [{"channelId": ch, "level": "read"}])
    reply = await api.post(
        f"/{username}/",
        [
            {"method": "channels.get", "params": {}},
            {"method": "channels.create", "params": {"name": "nope"}},
        ],
        auth=token,
    )
    assert reply.status == 200
    assert [c["id"] for c in reply.body[0]["result"]] == [ch]
    assert reply.body[1]["error"]["id"] == "FORBIDDEN"


async def test_batch_needs_a_credential(api: Api) -> None:
    username = await api.register()
    reply = await api.post(f"/{username}/", [{"method": "channels.get"}])
    assert reply.status == 401


async def test_batch_body_must_be_a_list_of_calls(api: Api) -> None:
    username, session = await api.user()
    reply = await api.post(f"/{username}/", {"method": "channels.get"}, auth=session)
    assert reply.status == 400
    assert reply.body["id"] == "INVALID_PARAMETERS_FORMAT"
    reply = await api.post(f"/{username}/", [{"params": {}}], auth=session)
    assert reply.status == 400
    assert reply.body["id"] == "INVALID_PARAMETERS_FORMAT"


async def test_batch_cannot_nest_batches(api: Api) -> None:
    username, session = await api.user()
    reply = await api.post(
        f"/{username}/", [{"method": "batch", "params": {"calls": []}}], auth=session
    )
    assert reply.body[0]["error"]["id"] == "UNKNOWN_METHOD"


async def test_batch_size_is_capped(make_api: AppFactory) -> None:
    api = await make_api(max_batch_calls=3)
    username, session = await api.user()
    calls = [{"method": "channels.get"}] * 4
    reply = await api.post(f"/{username}/", calls, auth=session)
    assert reply.status == 413
    assert reply.body["id"] == "PAYLOAD_TOO_LARGE"
