"""The API's error type and the exact messages of Toxiproxy 2.x (see TOXIPROXY_API.md)."""

from __future__ import annotations

import json


class ApiError(Exception):
    """An answer other than success: an HTTP status and the message clients see."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def body(self) -> bytes:
        """``{"error":"<message>","status":N}`` and a newline, as Go's ``http.Error`` writes it."""
        text = json.dumps({"error": self.message, "status": self.status}, separators=(",", ":"))
        return text.encode() + b"\n"


def bad_request(detail: str) -> ApiError:
    return ApiError(400, f"bad request body: {detail}")


def missing_field(field: str) -> ApiError:
    return ApiError(400, f"missing required field: {field}")


def proxy_not_found() -> ApiError:
    return ApiError(404, "proxy not found")


def toxic_not_found() -> ApiError:
    return ApiError(404, "toxic not found")


def proxy_exists() -> ApiError:
    return ApiError(409, "proxy already exists")


def toxic_exists() -> ApiError:
    return ApiError(409, "toxic already exists")


def invalid_stream() -> ApiError:
    return ApiError(400, "stream was invalid, can be either upstream or downstream")


def invalid_toxic_type() -> ApiError:
    return ApiError(400, "invalid toxic type")


def internal(message: str) -> ApiError:
    return ApiError(500, message)
