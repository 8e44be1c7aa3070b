"""Errors as RFC 7807 problem details (``application/problem+json``), never a stack trace.

:func:`status_for` maps the :class:`~faceprint.errors.FaceprintError` tree to HTTP statuses;
:func:`install_handlers` makes FastAPI answer every failure (ours, validation, routing,
unexpected) with a problem body. Unexpected exceptions are logged server-side and answered
with a generic 500.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from .. import errors as fe

log = logging.getLogger("faceprint.service")

PROBLEM_JSON = "application/problem+json"

#: JSON schema of every error body (RFC 7807); validation failures add ``errors``, a rejected
#: enrollment adds ``report``.
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem", "type": "object", "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "urn:faceprint:error:<ErrorClass>, or about:blank"},
        "title": {"type": "string", "description": "the HTTP status phrase"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "description": "what was expected and what arrived"},
        "errors": {"type": "array", "items": {"type": "object", "properties": {
            "loc": {"type": "array"}, "msg": {"type": "string"}}}},
        "report": {"type": "object", "description": "the enrollment report of a rejected photo"},
    },
}

#: Status codes every API operation may answer with a problem body, and why.
COMMON_PROBLEMS: dict[int, str] = {
    400: "malformed request (bad JSON, multipart, base64 or content type)",
    401: "missing, unknown or revoked API key",
    403: "the API key's scope is too low",
    408: "the request was not received in time",
    413: "body larger than the server's limit, or an image over its pixel limit or decode budget",
    422: "invalid parameters or fields, not an image, or no face where one is needed",
    429: "rate limit exceeded (per key, or per address without a key); see Retry-After",
}


def problem_responses(codes: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for ``{status: description}``, each a problem+json body."""
    return {status: {"description": text, "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}}}
            for status, text in codes.items()}


class ServiceError(fe.FaceprintError):
    """An HTTP-level refusal; ``status`` is the response code."""

    status: int = 400


class Unauthorized(ServiceError):
    """No API key, or one that does not exist or was revoked."""

    status = 401
    exit_code = 8


class Forbidden(ServiceError):
    """The API key's scope does not allow this endpoint."""

    status = 403
    exit_code = 8


class RateLimited(ServiceError):
    """The API key sent more requests than its rate allows; ``retry_after`` is in seconds."""

    status = 429
    exit_code = 9

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PayloadTooLarge(ServiceError):
    """The request body or the image's pixel count is over the server's limit."""

    status = 413
    exit_code = 3


class BadRequest(ServiceError):
    """The request is malformed (missing field, bad base64, wrong content type)."""

    status = 400
    exit_code = 2


class RequestTimeout(ServiceError):
    """The client did not send the whole request in time."""

    status = 408
    exit_code = 2


class NotFound(ServiceError):
    """The addressed resource (person, job) does not exist."""

    status = 404
    exit_code = 2


#: Library errors -> HTTP status; the first matching class (most specific first) wins.
_STATUS: list[tuple[type[BaseException], int]] = [
    (ServiceError, 0),  # uses its own .status
    (fe.PersonNotFoundError, 404),
    (fe.PersonExistsError, 409),
    (fe.EnrollmentError, 422),
    (fe.GalleryError, 500),  # storage failure: details stay in the server log
    (fe.UnknownClusterError, 404),
    (fe.CollectionError, 409),  # e.g. the photo index mixes models
    (fe.ImageTooLargeError, 413),
    (fe.ImageDecodeError, 422),
    (fe.NoFaceError, 422),
    (fe.ModelMismatchError, 409),
    (fe.UnknownModelError, 404),
    (fe.ModelLoadError, 503),
    (fe.ConfigError, 400),
    (fe.PairsFileError, 400),
    (fe.FaceprintError, 400),
]


def status_for(exc: BaseException) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return exc.status if isinstance(exc, ServiceError) else status
    return 500


def problem(status: int, detail: str, type_: str = "about:blank", **extra: Any) -> dict[str, Any]:
    """An RFC 7807 body: ``type``, ``title`` (the status phrase), ``status``, ``detail`` and extras."""
    return {"type": type_, "title": HTTPStatus(status).phrase, "status": status, "detail": detail, **extra}


def problem_for(exc: BaseException, hide: str = "") -> tuple[int, dict[str, Any], dict[str, str]]:
    """Status, body and extra headers for an exception raised while serving a request.

    ``hide`` (the database path) is replaced by "the gallery" in messages: clients need not
    know the server's file layout.
    """
    status = status_for(exc)
    headers: dict[str, str] = {}
    if status == 500:
        log.exception("unexpected error while serving a request", exc_info=exc)
        return status, problem(500, "internal error; the server log has the details"), headers
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(max(1, int(exc.retry_after + 0.999)))
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="faceprint"'
    detail = str(exc).replace(hide, "the gallery") if hide else str(exc)
    body = problem(status, detail, type_=f"urn:faceprint:error:{type(exc).__name__}")
    return status, body, headers


async def send_problem(send: Any, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    """Answer an ASGI request with a problem body from a middleware (outside FastAPI's handlers);
    the connection is closed after it, since the request body may be left unread."""
    import json

    data = json.dumps(body).encode()
    raw = [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(data)).encode()),
           (b"connection", b"close"), *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items())]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


def install_handlers(app: Any) -> None:
    """Make every error response of ``app`` a problem-details body."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    def respond(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)

    @app.exception_handler(fe.FaceprintError)
    async def _faceprint(request: Any, exc: fe.FaceprintError) -> JSONResponse:
        return respond(*problem_for(exc, hide=str(request.app.state.fp.settings.db)))

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Any, exc: RequestValidationError) -> JSONResponse:
        errs = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))} for e in exc.errors()]
        return respond(422, problem(422, "request validation failed", errors=errs))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Any, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        return respond(exc.status_code, problem(exc.status_code, detail), dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _unexpected(_request: Any, exc: Exception) -> JSONResponse:
        return respond(*problem_for(exc))
