"""Reading images from requests: multipart fields or base64 JSON, with size and pixel limits.

Also the ASGI middleware that caps request bodies (by ``Content-Length`` and while streaming).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from ..errors import FaceprintError, ImageDecodeError
from ..image import describe, load_image_scaled
from .problems import BadRequest, problem, send_problem


@dataclass(frozen=True)
class Upload:
    """One uploaded image, still encoded; ``name`` is its filename (or the field name)."""

    name: str
    data: bytes


def _b64(value: Any, field: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise BadRequest(f"JSON field {field!r} must be a base64 string (optionally a data: URL)")
    if value.startswith("data:"):
        value = value.partition(",")[2]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"JSON field {field!r} is not valid base64 ({exc})") from None


async def read_uploads(request: Any, fields: tuple[str, ...]) -> dict[str, Upload]:
    """The images in ``fields`` from a multipart form or a JSON object of base64 strings.

    Raises:
        BadRequest: another content type, malformed JSON, a missing field or bad base64.
        PayloadTooLarge: the body is over the server's limit.
    """
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    out: dict[str, Upload] = {}
    if ctype == "multipart/form-data":
        form = await _form(request, len(fields))
        for field in fields:
            item = form.get(field)
            if item is None:
                raise BadRequest(f"multipart field {field!r} (an image file) is missing")
            if isinstance(item, str):
                raise BadRequest(f"multipart field {field!r} must be a file upload, got a text value")
            out[field] = Upload(item.filename or field, await item.read())
        await form.close()
    elif ctype == "application/json":
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BadRequest(f"request body is not valid JSON ({exc})") from None
        except RecursionError:
            raise BadRequest("request body is not valid JSON (nested too deeply)") from None
        if not isinstance(body, dict):
            raise BadRequest("JSON body must be an object such as {\"image\": \"<base64>\"}")
        for field in fields:
            if field not in body:
                raise BadRequest(f"JSON field {field!r} (a base64 image) is missing")
            out[field] = Upload(str(body.get(f"{field}_name") or field), _b64(body[field], field))
    else:
        raise BadRequest(f"send multipart/form-data with field(s) {', '.join(fields)} or JSON with base64 "
                         f"strings; got content type {ctype or 'none'!r}")
    return out


async def _form(request: Any, n_files: int) -> Any:
    """The parsed multipart form; a malformed body is a 400, not a parser crash."""
    from starlette.formparsers import MultiPartException

    try:
        return await request.form(max_files=n_files + 2, max_fields=n_files + 8)
    except (MultiPartException, ValueError, KeyError, UnicodeDecodeError) as exc:  # python-multipart's errors
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        raise BadRequest(f"malformed multipart body ({message})") from None


def decode(upload: Upload, max_pixels: int, max_decode_bytes: int, reduce: bool = False) -> tuple[np.ndarray, float]:
    """RGB uint8 ``(H, W, 3)`` of an upload and its scale (run it in a worker thread: it is CPU work).

    With ``reduce`` a JPEG over the limits is decoded at 1/2, 1/4 or 1/8 size
    (:func:`faceprint.image.load_image_scaled`): the detector works on at most 1920 pixels
    anyway; coordinates found on the array divided by the scale are the upload's.

    Raises:
        ImageTooLargeError: more than ``max_pixels`` pixels or ``max_decode_bytes`` to decode
            (checked from the header, before decoding).
        ImageDecodeError: not a readable image.
    """
    if not upload.data:
        raise ImageDecodeError(f"{upload.name}: no data")
    with named(upload, upload.data):
        return load_image_scaled(upload.data, max_pixels=max_pixels, max_decode_bytes=max_decode_bytes, reduce=reduce)


def unscale(box: list[float], scale: float) -> list[float]:
    """A box or point found on a reduced decode, in the upload's pixels."""
    return box if scale == 1.0 else [round(v / scale, 2) for v in box]


@contextlib.contextmanager
def named(upload: Upload, *images: Any) -> Iterator[None]:
    """Errors raised inside name the upload instead of ``<N bytes>`` or ``<array uint8 (H, W, 3)>``."""
    try:
        yield
    except FaceprintError as exc:
        text = str(exc)
        for image in images:
            text = text.replace(describe(image), upload.name)
        if text == str(exc):
            raise
        raise type(exc)(text) from None


class BodyLimit:
    """ASGI middleware: 413 for bodies over ``max_bytes``, declared (answered before the app
    runs) or streamed, e.g. chunked (raised from the app's ``receive`` as an HTTP 413, which
    FastAPI's body parsing passes through)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await send_problem(send, 413, problem(413, self._message()))
            return
        seen = 0

        async def counted() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    from fastapi import HTTPException  # FastAPI re-raises its own HTTPException from body parsing

                    raise HTTPException(413, self._message())
            return message

        await self.app(scope, counted, send)

    def _message(self) -> str:
        return f"request body exceeds the server's {self.max_bytes} byte limit"
