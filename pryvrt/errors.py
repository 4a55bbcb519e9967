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


def _error(name: str, status: int, error_id: str) -> type[ApiError]:
    return type(name, (ApiError,), {"status": status, "id": error_id, "__doc__": error_id})


InvalidRequestStructure = _error("InvalidRequestStructure", 400, "INVALID_REQUEST_STRUCTURE")
InvalidParametersFormat = _error("InvalidParametersFormat", 400, "INVALID_PARAMETERS_FORMAT")
InvalidItemId = _error("InvalidItemId", 400, "INVALID_ITEM_ID")
ItemIdAlreadyExists = _error("ItemIdAlreadyExists", 400, "ITEM_ID_ALREADY_EXISTS")
ItemNameAlreadyExists = _error("ItemNameAlreadyExists", 400, "ITEM_NAME_ALREADY_EXISTS")
MissingParameter = _error("MissingParameter", 400, "MISSING_PARAMETER")
MissingFolder = _error("MissingFolder", 400, "MISSING_FOLDER")
InvalidOperation = _error("InvalidOperation", 400, "INVALID_OPERATION")
PeriodsOverlap = _error("PeriodsOverlap", 400, "PERIODS_OVERLAP")
InvalidTime = _error("InvalidTime", 400, "INVALID_TIME")
UnknownFolderParam = _error("UnknownFolderParam", 400, "UNKNOWN_FOLDER")
WrongPassword = _error("WrongPassword", 400, "WRONG_PASSWORD")
InvalidNewPassword = _error("InvalidNewPassword", 400, "INVALID_NEW_PASSWORD")
UnknownMethod = _error("UnknownMethod", 400, "UNKNOWN_METHOD")
InvalidToken = _error("InvalidToken", 401, "INVALID_TOKEN")
InvalidCredentials = _error("InvalidCredentials", 401, "INVALID_CREDENTIALS")
Forbidden = _error("Forbidden", 403, "FORBIDDEN")
UnknownUser = _error("UnknownUser", 404, "UNKNOWN_USER")
UnknownChannel = _error("UnknownChannel", 404, "UNKNOWN_CHANNEL")
UnknownFolder = _error("UnknownFolder", 404, "UNKNOWN_FOLDER")
UnknownEvent = _error("UnknownEvent", 404, "UNKNOWN_EVENT")
UnknownAttachment = _error("UnknownAttachment", 404, "UNKNOWN_ATTACHMENT")
UnknownToken = _error("UnknownToken", 404, "UNKNOWN_TOKEN")
UnknownBookmark = _error("UnknownBookmark", 404, "UNKNOWN_BOOKMARK")
UnknownResource = _error("UnknownResource", 404, "UNKNOWN_RESOURCE")
MethodNotAllowed = _error("MethodNotAllowed", 405, "METHOD_NOT_ALLOWED")
RequestTimeout = _error("RequestTimeout", 408, "REQUEST_TIMEOUT")
PayloadTooLarge = _error("PayloadTooLarge", 413, "PAYLOAD_TOO_LARGE")
TooManyRequests = _error("TooManyRequests", 429, "TOO_MANY_REQUESTS")
TooManySockets = _error("TooManySockets", 429, "TOO_MANY_SOCKETS")
UnexpectedError = _error("UnexpectedError", 500, "UNEXPECTED_ERROR")
ServiceUnavailable = _error("ServiceUnavailable", 503, "SERVICE_UNAVAILABLE")
