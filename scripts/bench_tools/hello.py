"""The floor: an aiohttp hello-world JSON handler, same loop and JSON as pryvrt.

Run: python scripts/bench_tools/hello.py PORT
"""

from __future__ import annotations

import sys

import orjson
import uvloop
from aiohttp import web


async def hello(request: web.Request) -> web.Response:
    return web.Response(body=orjson.dumps({"hello": "world"}), content_type="application/json")


def main() -> None:
    uvloop.install()
    app = web.Application()
    app.router.add_get("/", hello)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
