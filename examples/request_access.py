#!/usr/bin/env python3
"""Get a pryvrt token the way an app does (API.md §13), with the standard library only.

    python3 examples/request_access.py [http://127.0.0.1:3000]

It opens an access request for a channel "Heart" (created if missing), prints the consent
page's address for you to open in a browser, polls until you accept or refuse there, then
lists the channels the new token reads.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from typing import Any

SERVER = (sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:3000").rstrip("/")
REQUEST = {
    "requestingAppId": "heart-notes-script",
    "requestedPermissions": [{"channelId": "heart", "defaultName": "Heart", "level": "read"}],
    "deviceName": "a terminal",
}


def call(url: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = token
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.load(reply)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def main() -> int:
    status, opened = call(f"{SERVER}/access", REQUEST)
    if status != 201:
        print("refused:", opened, file=sys.stderr)
        return 1
    print("Open this page in a browser, sign in and answer:\n ", opened["authUrl"])
    while True:
        time.sleep(opened["pollRateMs"] / 1000)
        status, answer = call(opened["poll"])
        if status == 429:
            continue
        if status != 200:
            print("the request ended:", answer["message"], file=sys.stderr)
            return 1
        if answer["status"] == "REFUSED":
            print("access refused:", answer["reasonId"])
            return 1
        if answer["status"] == "ACCEPTED":
            break
    token, username = answer["token"], answer["username"]
    _, channels = call(f"{SERVER}/{username}/channels", token=token)
    print(f"accepted by {username}; the token reads:", [c["name"] for c in channels])
    return 0


if __name__ == "__main__":
    sys.exit(main())
