"""What an idle websocket keeps and what it still gets (``pryvrt/transports/fanout.py``):
no frame of the middlewares nor of engine.io's GET handling per socket, the request id on
its 101 answer, a trimmed environ that still serves later namespace connects, pings from
the shared ping wheel, and every frame, in order, for a reader that falls behind."""

from __future__ import annotations

import asyncio
import gc
import types
from typing import Any

import aiohttp
import orjson

from pryvrt.app import SOCKETIO_KEY
from pryvrt.transports import fanout
from tests.conftest import Api
from tests.sockets import connect

WS_PATH = "/socket.io/?EIO=4&transport=websocket"


def url(api: Api) -> str:
    return str(api.client.make_url("/"))


def live_coroutines() -> set[str]:
    gc.collect()
    return {o.__qualname__ for o in gc.get_objects() if isinstance(o, types.CoroutineType)}


async def text(ws: aiohttp.ClientWebSocketResponse, within: float = 5.0) -> str:
    """The next text message, answering engine.io pings on the way."""
    while True:
        message = await ws.receive(timeout=within)
        assert message.type == aiohttp.WSMsgType.TEXT, message
        if message.data == "2":
            await ws.send_str("3")
            continue
        return str(message.data)


async def test_an_open_websocket_keeps_no_frame_of_the_middlewares_nor_of_engineio_get(
    api: Api,
) -> None:
    username, session = await api.user()
    async with connect(url(api), username, session) as sock:
        error, _ = await sock.call("channels.get")
        assert error is None
        alive = live_coroutines()
    assert "LeanSocket._websocket_handler" in alive  # the socket's read loop
    kept = alive & {
        "error_middleware",
        "_rendering_errors",
        "cookie_middleware",
        "_with_cookie",
        "AsyncSocket.handle_get_request",
        "AsyncSocket._upgrade_websocket",
        "WebSocket.wait",
    }
    assert not kept


async def test_the_websocket_upgrade_answer_carries_the_request_id_and_common_headers(
    api: Api,
) -> None:
    async with api.client.session.ws_connect(
        api.client.make_url(WS_PATH), headers={"X-Request-Id": "upgrade-123"}
    ) as ws:
        assert (await text(ws)).startswith("0{")  # engine.io's OPEN
        headers = ws._response.headers
    assert headers["X-Request-Id"] == "upgrade-123"
    assert "Server-Time" in headers and "API-Version" in headers


async def test_a_namespace_joined_after_the_handshake_still_reads_auth_from_the_url(
    api: Api,
) -> None:
    """The environ is trimmed once the websocket is open: what a later namespace connect
    reads (the query's ``auth``, the request behind it) must survive."""
    username, session = await api.user()
    async with api.client.session.ws_connect(
        api.client.make_url(f"{WS_PATH}&auth={session}")
    ) as ws:
        opened = orjson.loads((await text(ws))[1:])
        await asyncio.sleep(0.2)
        environ = api.client.app[SOCKETIO_KEY].sio.environ.get(opened["sid"])
        assert environ is not None and set(environ) <= set(fanout.KEPT_ENVIRON)
        assert "aiohttp.request" in environ
        await ws.send_str(f"40/{username},")  # no auth in the packet: the URL's counts
        joined = await text(ws)
    assert joined.startswith(f'40/{username},{{"sid":'), joined


async def test_idle_websockets_are_pinged_by_the_shared_wheel_and_stay_connected(
    api: Api,
) -> None:
    eio = api.client.app[SOCKETIO_KEY].sio.eio
    eio.ping_interval = 0.3
    async with api.client.session.ws_connect(api.client.make_url(WS_PATH)) as first:
        assert (await text(first)).startswith("0{")
        async with api.client.session.ws_connect(api.client.make_url(WS_PATH)) as second:
            assert (await text(second)).startswith("0{")
            assert len(eio.pings) == 2  # one wheel for both, no timer of their own
            pings = 0
            while pings < 4:  # ~1.2 s: past several intervals, answered each time
                for ws in (first, second):
                    message = await ws.receive(timeout=2)
                    assert message.data == "2", message
                    await ws.send_str("3")
                pings += 1
            assert not first.closed and not second.closed
            assert len(eio.sockets) == 2


async def test_a_reader_that_falls_behind_gets_every_frame_in_order(api: Api) -> None:
    """Acks of large results pile up past MAX_BUFFERED in the server's buffer while the
    client reads nothing: they go through the socket's queue, then to the client, all of
    them, in order, a notification sent meanwhile after the acks before it."""
    username, session = await api.user()
    channel = await api.channel(username, session, name="big")
    reply = await api.post(
        f"/{username}/{channel}/events",
        {"type": "note/txt", "content": "x" * 400_000},
        auth=session,
    )
    assert reply.status == 201, reply
    sio = api.client.app[SOCKETIO_KEY].sio
    # aiohttp's client stops reading past 64 KiB not consumed: the kernel's buffers fill,
    # then the server's transport buffer.
    async with api.client.session.ws_connect(
        api.client.make_url(f"{WS_PATH}&auth={session}"), max_msg_size=0, autoping=False
    ) as ws:
        opened = orjson.loads((await text(ws))[1:])
        await ws.send_str(f"40/{username},")
        assert (await text(ws)).startswith(f"40/{username},")
        socket = sio.eio.sockets[opened["sid"]]
        request = orjson.dumps(["events.get", {"channelId": channel, "limit": 1}]).decode()
        calls = 0
        while not socket.backlogged() and calls < 200:  # ~400 KB per ack
            calls += 1
            await ws.send_str(f"42/{username},{calls}{request}")
            for _ in range(10):
                await asyncio.sleep(0.02)
                if socket.backlogged():
                    break
        assert socket.backlogged()
        behind = calls
        changed = await api.post(
            f"/{username}/{channel}/events", {"type": "note/txt"}, auth=session
        )
        assert changed.status == 201
        for _ in range(3):  # and calls after the notification
            calls += 1
            await ws.send_str(f"42/{username},{calls}{request}")
        received: list[Any] = []
        while len(received) < calls + 1:
            frame = await text(ws, within=10)
            if frame.startswith(f"43/{username},"):
                rest = frame[len(f"43/{username},") :]
                call_id = int(rest[: rest.index("[")])
                error, result = orjson.loads(rest[rest.index("[") :])
                assert error is None
                if call_id <= behind:  # (later ones find the newer, small event first)
                    assert "x" * 400_000 in orjson.dumps(result).decode()
                received.append(call_id)
            elif frame.startswith(f'42/{username},["eventsChanged"'):
                received.append("eventsChanged")
        assert not socket.backlogged()
    acks = [r for r in received if r != "eventsChanged"]
    assert acks == list(range(1, calls + 1))
    assert received.index("eventsChanged") >= behind
