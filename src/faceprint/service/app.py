"""The FastAPI application: middleware order, routers, health, metrics and the web page."""

# No `from __future__ import annotations`: FastAPI reads the endpoint annotations defined in create_app.
import contextlib
from importlib import resources
from typing import Any

from .. import __version__
from .auth import Authenticator, KeyGate, RateLimiter
from .keys import open_key_store
from .metrics import Metrics, MetricsMiddleware
from .problems import COMMON_PROBLEMS, install_handlers, problem_responses
from .settings import ServiceSettings
from .state import ServiceState, needs
from .uploads import BodyLimit

#: Served with the page: scripts and media only from this origin (webcam frames are blob:/mediastream:).
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob: mediastream:; "
                               "style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


#: The API docs page: Swagger UI's files come from the swagger-ui-bundle-v2 package, served here (no CDN);
#: Swagger UI sets inline styles, so only styles may be inline.
_DOCS_HEADERS = {**_PAGE_HEADERS, "Content-Security-Policy": _PAGE_HEADERS["Content-Security-Policy"].replace(
    "style-src 'self'", "style-src 'self' 'unsafe-inline'")}
SWAGGER_ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css")


def build_pipeline(settings: ServiceSettings) -> Any:
    """Detector + embedder + aligner, loaded now; one ONNX thread per session (the pool runs them side by side)."""
    import numpy as np

    from ..pipeline import FacePipeline
    from ..registry import create_detector, create_embedder

    pipe = FacePipeline(detector=create_detector(settings.detector, threads=1),
                        embedder=create_embedder(settings.model, threads=1), calibration=settings.calibration)
    pipe.embed(np.zeros((64, 64, 3), np.uint8))  # load the ONNX sessions before the first request
    return pipe


def photo_index_db(settings: ServiceSettings) -> Any:
    """The SQLite file holding the photo index for cluster jobs: the gallery's file, else
    ``--keys-db``; ``None`` for a server gallery without one (cluster jobs are then refused)."""
    from ..dburi import parse_db

    uri = parse_db(settings.db)
    return uri.path if uri.kind == "sqlite" else settings.keys_db


def create_app(settings: ServiceSettings, pipeline: Any = None, gallery: Any = None) -> Any:
    """The ASGI app serving ``settings.db``.

    Args:
        settings: limits, workers, CORS origins, models.
        pipeline: a ready :class:`~faceprint.pipeline.FacePipeline` (built from ``settings`` when ``None``).
        gallery: an open gallery on ``settings.db`` (opened here when ``None``).

    Raises:
        GalleryError: the database cannot be opened or has a newer schema.
        ModelMismatchError: the gallery holds another model's vectors.
        UnknownModelError, ModelLoadError: the models cannot be loaded.
    """
    import anyio
    from fastapi import Depends, FastAPI, Response
    from fastapi.responses import FileResponse, RedirectResponse

    from ..gallery import Recognizer, open_gallery
    from . import routes_cluster, routes_faces, routes_gallery, routes_live
    from .jobs import ClusterJobs
    from .live import LiveSessions

    keys = open_key_store(settings.db, settings.keys_db)
    metrics = Metrics()
    pipeline = pipeline if pipeline is not None else build_pipeline(settings)
    if gallery is None:
        from ..dburi import parse_db

        # a long-running replica builds the in-process search graph of a large Postgres gallery
        # in the background (searches go to the server meanwhile); a one-off command does not
        options = {"local_index": "build"} if parse_db(settings.db).kind == "postgresql" else {}
        gallery = open_gallery(settings.db, model_id=pipeline.spec.model_id, metric=pipeline.spec.metric, **options)
    state = ServiceState(settings=settings, pipeline=pipeline, keys=keys,
                         auth=Authenticator(keys, RateLimiter(settings.burst), settings.rate_per_minute,
                                            settings.anonymous_rate_per_minute),
                         metrics=metrics, limiter=anyio.CapacityLimiter(settings.worker_count),
                         gallery=gallery, recognizer=Recognizer(pipeline, gallery),
                         jobs=ClusterJobs(photo_index_db(settings)), live=LiveSessions(pipeline, gallery))
    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> Any:
        yield
        state.jobs.shutdown()

    app = FastAPI(title="faceprint", version=__version__, docs_url=None, redoc_url=None, lifespan=lifespan,
                  description="Face detection, embedding, verification and identification. Every endpoint except "
                              "/healthz needs an API key (`faceprint keys create`) sent as `Authorization: Bearer "
                              "KEY` or `X-API-Key: KEY`. Errors are RFC 7807 problem details "
                              "(`application/problem+json`, schema `Problem`), never a stack trace; a 5xx "
                              "means a server fault. Cluster jobs work on the photo index that "
                              "`faceprint index --db` fills.",
                  responses=problem_responses(COMMON_PROBLEMS))
    app.state.fp = state
    metrics.watch_gallery(gallery)
    install_handlers(app)
    app.include_router(routes_faces.router)
    app.include_router(routes_gallery.router)
    app.include_router(routes_cluster.router)
    app.include_router(routes_live.router)

    @app.get("/healthz", tags=["ops"], summary="Liveness: no key needed")
    async def healthz() -> dict[str, Any]:
        out = {"status": "ok", "version": __version__, "model": state.pipeline.spec.model_id}
        backend = getattr(state.gallery, "search_backend", None)  # a PostgreSQL gallery: pgvector or in-process
        return out if backend is None else {**out, "search": backend}

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics (scope read)",
             responses={200: {"description": "Prometheus text exposition", "content": {"text/plain": {}}}})
    async def prometheus(_key: Any = Depends(needs("read"))) -> Response:
        body, ctype = metrics.exposition()
        return Response(body, media_type=ctype)

    static = resources.files("faceprint.service") / "static"

    @app.get("/", include_in_schema=False)
    async def root() -> Any:
        return RedirectResponse("/ui/")

    @app.get("/ui/{name:path}", include_in_schema=False)
    async def page(name: str) -> Any:
        from .problems import NotFound

        name = name or "index.html"
        if "/" in name or name.startswith(".") or not (static / name).is_file():
            raise NotFound(f"no page file {name!r}")
        return FileResponse(str(static / name), headers=_PAGE_HEADERS)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Any:
        return FileResponse(str(static / "docs.html"), headers=_DOCS_HEADERS)

    @app.get("/docs/assets/{name}", include_in_schema=False)
    async def docs_asset(name: str) -> Any:
        from .problems import NotFound

        if name not in SWAGGER_ASSETS:
            raise NotFound(f"no docs asset {name!r}")
        try:
            from swagger_ui_bundle import swagger_ui_path
        except ImportError:
            raise NotFound("the API docs page needs swagger-ui-bundle-v2: pip install 'faceprint[service]'") from None
        return FileResponse(str(swagger_ui_path / name), headers=_DOCS_HEADERS)

    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(KeyGate, auth=state.auth, routes=app.router.routes)  # outside BodyLimit: no key, no body read
    if settings.cors_origins:  # outside KeyGate: preflights carry no key, refusals carry CORS headers
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["*"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type"])
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
