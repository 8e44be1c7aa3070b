"""faceprint over HTTP: a FastAPI app with API keys, limits, problem-details errors and a web page.

Install the extra (``pip install faceprint[service]``) and start it with
``faceprint serve --db PATH``; create keys with ``faceprint keys create --db PATH --scope read``.
Importing :mod:`faceprint` never imports this package (FastAPI stays optional).
"""

from __future__ import annotations

from .settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]


def create_app(*args, **kwargs):  # type: ignore[no-untyped-def]
    """Build the ASGI app (see :func:`faceprint.service.app.create_app`); imports FastAPI on call."""
    from .app import create_app as _create_app

    return _create_app(*args, **kwargs)
