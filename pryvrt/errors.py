"""API errors: each has the id and HTTP status of API.md §3; transports only render them."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error answered to the client as ``{id, message, data?}`` with ``status``."""

    status = 400
    id = "INVALID_REQUEST_STRUCTURE"

    def __init__(
        self,
        message: str,
        data: Any = None,
        *,
        id: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.data = data
        # Extra HTTP response headers (e.g. Retry-After); other transports ignore them.
        self.headers = headers or {}
        if id is not None:
            self.id = id
        if status is not None:
            self.status = status

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.id, "message": self.message}
        if self.data is not None:
            body["data"] = self.data
        return body


def _error(name: str, status: int, error_id: str, when: str = "") -> type[ApiError]:
    """An error class; ``when`` says when it is answered (docs/api.md, from ``pryvrt.docs``)."""
    return type(name, (ApiError,), {"status": status, "id": error_id, "__doc__": when or error_id})


InvalidRequestStructure = _error(
    "InvalidRequestStructure",
    400,
    "INVALID_REQUEST_STRUCTURE",
    "the body is not valid JSON, a bad multipart body, a wrong content type, a number out of range",
)
InvalidParametersFormat = _error(
    "InvalidParametersFormat",
    400,
    "INVALID_PARAMETERS_FORMAT",
    "a parameter has the wrong type or value; `data` names each problem",
)
InvalidItemId = _error(
    "InvalidItemId", 400, "INVALID_ITEM_ID", "a client-chosen id breaks the id rules"
)
ItemIdAlreadyExists = _error(
    "ItemIdAlreadyExists",
    400,
    "ITEM_ID_ALREADY_EXISTS",
    "a client-chosen id (or username) is taken",
)
ItemNameAlreadyExists = _error(
    "ItemNameAlreadyExists",
    400,
    "ITEM_NAME_ALREADY_EXISTS",
    "a sibling folder, channel, token or file has that name (or an email is taken)",
)
MissingParameter = _error(
    "MissingParameter",
    400,
    "MISSING_PARAMETER",
    "a parameter required in this situation is absent (`data.missing`)",
)
MissingFolder = _error("MissingFolder", 400, "MISSING_FOLDER", "`events.start` without `folderId`")
InvalidOperation = _error(
    "InvalidOperation",
    400,
    "INVALID_OPERATION",
    "the period rules, a trashed channel or folder, or a move that cannot be done",
)
PeriodsOverlap = _error(
    "PeriodsOverlap",
    400,
    "PERIODS_OVERLAP",
    "a period would overlap others in a strict channel (`data.overlappedIds`)",
)
InvalidTime = _error(
    "InvalidTime",
    400,
    "INVALID_TIME",
    "a period would stop before it started, or a batch time lies in the future",
)
UnknownFolderParam = _error(
    "UnknownFolderParam",
    400,
    "UNKNOWN_FOLDER",
    "a folder named in the body or query does not exist (400, `data.unknownIds`); in the path: 404",
)
WrongPassword = _error(
    "WrongPassword", 400, "WRONG_PASSWORD", "`admin.changePassword`: the old password is wrong"
)
InvalidNewPassword = _error(
    "InvalidNewPassword",
    400,
    "INVALID_NEW_PASSWORD",
    "`admin.changePassword`: the new password breaks the password rules",
)
UnknownMethod = _error(
    "UnknownMethod",
    400,
    "UNKNOWN_METHOD",
    "a Socket.IO or batch call names no method (or one that carries a file)",
)
InvalidToken = _error(
    "InvalidToken", 401, "INVALID_TOKEN", "no credential, an unknown, expired or other user's one"
)
InvalidCredentials = _error(
    "InvalidCredentials",
    401,
    "INVALID_CREDENTIALS",
    "wrong username or password (login), wrong registration key",
)
Forbidden = _error(
    "Forbidden", 403, "FORBIDDEN", "the credential's permission is too low for this call"
)
UnknownUser = _error("UnknownUser", 404, "UNKNOWN_USER", "the username of the address names nobody")
UnknownChannel = _error(
    "UnknownChannel",
    404,
    "UNKNOWN_CHANNEL",
    "the channel in the address does not exist (or is out of the credential's sight)",
)
UnknownFolder = _error(
    "UnknownFolder",
    404,
    "UNKNOWN_FOLDER",
    "a folder named in the body or query does not exist (400, `data.unknownIds`); in the path: 404",
)
UnknownEvent = _error(
    "UnknownEvent", 404, "UNKNOWN_EVENT", "the event in the address does not exist"
)
UnknownAttachment = _error(
    "UnknownAttachment", 404, "UNKNOWN_ATTACHMENT", "the event has no file of that name"
)
UnknownToken = _error(
    "UnknownToken", 404, "UNKNOWN_TOKEN", "the token in the address does not exist"
)
UnknownBookmark = _error(
    "UnknownBookmark", 404, "UNKNOWN_BOOKMARK", "the bookmark in the address does not exist"
)
UnknownAccessRequest = _error(
    "UnknownAccessRequest",
    404,
    "UNKNOWN_ACCESS_REQUEST",
    "the app access request is unknown, expired, or answered by another user",
)
UnknownShare = _error(
    "UnknownShare",
    404,
    "UNKNOWN_SHARE",
    "the share in the address does not exist (or was withdrawn)",
)
UnknownResource = _error("UnknownResource", 404, "UNKNOWN_RESOURCE", "no route at this path (HTTP)")
MethodNotAllowed = _error(
    "MethodNotAllowed",
    405,
    "METHOD_NOT_ALLOWED",
    "the path exists but not with this HTTP verb; the `Allow` header lists those it takes",
)
RequestTimeout = _error(
    "RequestTimeout", 408, "REQUEST_TIMEOUT", "the body did not arrive within `PRYVRT_BODY_TIMEOUT`"
)
PayloadTooLarge = _error(
    "PayloadTooLarge",
    413,
    "PAYLOAD_TOO_LARGE",
    "a body, file, batch or upload count over its limit",
)
TooManyRequests = _error(
    "TooManyRequests",
    429,
    "TOO_MANY_REQUESTS",
    "throttled (failed logins, wrong credentials, uploads, connections); `Retry-After` says when to try again",
)
TooManySockets = _error(
    "TooManySockets",
    429,
    "TOO_MANY_SOCKETS",
    "a Socket.IO connection over a credential's or user's cap",
)
UnexpectedError = _error(
    "UnexpectedError",
    500,
    "UNEXPECTED_ERROR",
    "a failure on the server's side (logged with the request id the message gives)",
)
ServiceUnavailable = _error(
    "ServiceUnavailable",
    503,
    "SERVICE_UNAVAILABLE",
    "the database is unavailable or the server is stopping; try again",
)
