"""Reading images from requests: multipart fields or base64 JSON, with size and pixel limits.

Also the ASGI middleware that caps request bodies (by ``Content-Length`` and while streaming).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ImageDecodeError
from ..image import load_image
from .problems import PROBLEM_JSON, BadRequest, PayloadTooLarge, problem


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
        form = await request.form(max_files=len(fields) + 2, max_fields=len(fields) + 8)
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


def check_pixels(upload: Upload, max_pixels: int) -> None:
    """Refuse an upload whose header says it has more than ``max_pixels`` pixels (nothing is decoded).

    Raises:
        PayloadTooLarge: the image is over the limit.
    """
    from PIL import Image

    try:
        with Image.open(io.BytesIO(upload.data)) as img:
            width, height = img.size
    except Exception:  # unreadable header: decoding names the problem
        return
    if width * height > max_pixels:
        raise PayloadTooLarge(f"{upload.name}: {width}x{height} image exceeds the server's {max_pixels} pixel limit")


def decode(upload: Upload, max_pixels: int) -> np.ndarray:
    """RGB uint8 ``(H, W, 3)`` of an upload (run it in a worker thread: it is CPU work).

    Raises:
        PayloadTooLarge: more than ``max_pixels`` pixels (checked from the header, before decoding).
        ImageDecodeError: not a readable image.
    """
    if not upload.data:
        raise ImageDecodeError(f"{upload.name}: no data")
    check_pixels(upload, max_pixels)
    try:
        return load_image(upload.data, max_pixels=max_pixels)
    except ImageDecodeError as exc:  # name the upload, not "<N bytes>"
        raise ImageDecodeError(f"{upload.name}: {str(exc).partition(': ')[2] or exc}") from None


class BodyLimit:
    """ASGI middleware: 413 for bodies over ``max_bytes`` (declared or streamed)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        seen = 0

        async def counted() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise PayloadTooLarge(f"request body exceeds the server's {self.max_bytes} byte limit")
            return message

        await self.app(scope, counted, send)

    async def _refuse(self, send: Any) -> None:
        body = json.dumps(problem(413, f"request body exceeds the server's {self.max_bytes} byte limit")).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
