"""What every service accepts: strict JSON bodies of bounded size, and printable text.

- :class:`StrictInput` is the base of every request body model: a string where a number
  belongs (``"quantity": "2"``) is a 422, never silently converted.
- :data:`Printable` marks a free-text field (a name, an address line): printable, so it can be
  stored (PostgreSQL refuses NUL), encoded (UTF-8 refuses a lone surrogate) and echoed.
- :class:`StrictBody` answers before any handler runs: a body that is not JSON is a 415,
  one over the limit a 413, both in the usual error shape (:mod:`common.errors`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.errors import BodyTooLarge, UnsupportedMediaType, error_response
from common.ids import Grammar


class StrictInput(BaseModel):
    """The base of request bodies: JSON types are taken as they are, never coerced (a
    number must be a JSON number, a string a JSON string)."""

    model_config = ConfigDict(strict=True)


#: ``Annotated[str, Printable]``: free text (a name, an address line) without C0 or C1
#: control characters (NUL, newline, escape ...) or lone UTF-16 surrogates (which json.loads
#: lets through as "\ud800"), so it can be stored (PostgreSQL refuses NUL), encoded (no UTF-8
#: encoder takes a lone surrogate) and echoed.
Printable = Grammar(
    r"[^\x00-\x1f\x7f-\x9f\ud800-\udfff]*",
    "printable text, without control characters",
    "12 St James's Sq",
)


def is_json(content_type: str | None) -> bool:
    """``application/json`` or ``application/<anything>+json``, parameters allowed."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


class StrictBody:
    """Refuse a request body that is not JSON (415) or is over ``max_bytes`` (413).

    Pure ASGI, so both are answered before the body is read: at once when the headers
    tell (``Content-Type``, ``Content-Length``), else as soon as a chunked body passes the
    limit. Written here rather than taken from FastAPI's ``max_body_size``: that one answers
    a declared ``Content-Length`` in plain text and a chunked body in JSON, and names no
    limit in either; this one gives both the same JSON body, with ``limit_bytes``.

    A body whose ``Content-Length`` is within the limit is passed on as it is: the server
    (uvicorn) never hands over more than the length declared. Only a chunked body is
    counted as it arrives.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # One pass over the raw headers (names are lower-case in ASGI), for the three
        # that matter; most requests carry no body at all.
        length = content_type = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length" and length is None:
                length = value
            elif name == b"content-type" and content_type is None:
                content_type = value
            elif name == b"transfer-encoding":
                chunked = True
        if not chunked and (length is None or length == b"0"):
            await self.app(scope, receive, send)
            return
        if not is_json(content_type.decode("latin-1") if content_type is not None else None):
            await error_response(UnsupportedMediaType())(scope, receive, send)
            return
        if length is not None and length.isdigit():
            if int(length) > self.max_bytes:
                await error_response(BodyTooLarge(self.max_bytes))(scope, receive, send)
                return
            if not chunked:
                await self.app(scope, receive, send)
                return

        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Raised in the handler that reads the body; mapped to the same 413.
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, receive_within_limit, send)
