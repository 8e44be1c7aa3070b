"""``faceprint serve`` and ``faceprint keys``: the HTTP service and its API keys."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .common import DetectorOpt, JsonOpt, ModelOpt, app, emit, run_command

DbOpt = typer.Option(..., "--db", help="The gallery: a SQLite file (also holding the photo index and API keys), "
                                       "postgresql://USER:PASS@HOST:PORT/DB (also holding the keys), "
                                       "milvus://HOST:PORT or *.milvus.db (keys in --keys-db).")
KeysDbOpt = typer.Option(None, "--keys-db", help="SQLite file for the API keys (and photo index): needed with a "
                                                 "Milvus gallery, which has no SQL tables.")

keys_app = typer.Typer(no_args_is_help=True, help="Create, list and revoke API keys for `faceprint serve`.")
app.add_typer(keys_app, name="keys")


@app.command()
def serve(db: str = DbOpt, keys_db: Optional[Path] = KeysDbOpt,
          host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (0.0.0.0 = all)."),
          port: int = typer.Option(8000, "--port", min=0, max=65535, help="TCP port."),
          detector: str = DetectorOpt, model: str = ModelOpt,
          calibration: Optional[Path] = typer.Option(None, "--calibration",
                                                     help="Calibration JSON: its threshold and match probabilities."),
          workers: int = typer.Option(0, "--workers", min=0, help="Model calls at once (0 = one per CPU core)."),
          max_upload_mb: float = typer.Option(16.0, "--max-upload-mb", min=0.001, help="Largest request body."),
          max_pixels: int = typer.Option(20_000_000, "--max-pixels", min=1, help="Largest image (width x height)."),
          max_decode_mb: int = typer.Option(256, "--max-decode-mb", min=1,
                                            help="Most memory one image's decode may take (larger images get 413)."),
          request_timeout: float = typer.Option(30.0, "--request-timeout", min=1.0,
                                                help="Seconds a client has to send a whole request (headers: a third)."),
          rate_limit: int = typer.Option(1200, "--rate-limit", min=0,
                                         help="Requests per minute per API key unless the key has its own (0 = off)."),
          burst: int = typer.Option(60, "--burst", min=1, help="Requests a key may send at once."),
          cors_origin: List[str] = typer.Option([], "--cors-origin",
                                                help="Allow browser calls from this origin (repeatable; off by default)."),
          ) -> None:
    """Serve the REST API (/v1, OpenAPI at /docs) and the web page (/ui/) on HOST:PORT."""

    def body() -> None:
        import uvicorn

        from ..dburi import parse_db
        from ..service import ServiceSettings, create_app
        from ..service.server import uvicorn_config

        settings = ServiceSettings(db=db, max_request_bytes=int(max_upload_mb * 1024 * 1024), max_pixels=max_pixels,
                                   max_decode_bytes=max_decode_mb << 20, request_timeout_s=request_timeout,
                                   header_timeout_s=request_timeout / 3, rate_per_minute=rate_limit, burst=burst,
                                   workers=workers,
                                   cors_origins=tuple(cors_origin), calibration=calibration, detector=detector,
                                   model=model, keys_db=keys_db)
        typer.echo(f"loading models ({detector}, {model}) ...", err=True)
        application = create_app(settings)
        typer.echo(f"faceprint serving {parse_db(db).display()} on http://{host}:{port}/ (web page /ui/, "
                   "API docs /docs)", err=True)
        uvicorn.Server(uvicorn_config(application, settings, host=host, port=port)).run()

    run_command(body)


@keys_app.command("create")
def keys_create(db: str = DbOpt, keys_db: Optional[Path] = KeysDbOpt,
                scope: str = typer.Option(..., "--scope", help="read | enroll | admin (each includes the ones before)."),
                name: str = typer.Option("", "--name", help="A note saying who or what uses the key."),
                rate_limit: Optional[int] = typer.Option(None, "--rate-limit", min=0,
                                                         help="Requests per minute for this key (default: the server's)."),
                as_json: bool = JsonOpt) -> None:
    """Create an API key; it is printed once, as the last line, and only its hash is stored."""

    def body() -> None:
        from ..service.keys import open_key_store

        store = open_key_store(db, keys_db)
        record, key = store.create(scope, name=name, rate_per_minute=rate_limit)
        store.close()
        if as_json:
            emit({**record.to_dict(), "key": key})
            return
        typer.echo(f"created API key #{record.id} (scope {record.scope}); it is shown only now:")
        typer.echo(key)

    run_command(body)


@keys_app.command("list")
def keys_list(db: str = DbOpt, keys_db: Optional[Path] = KeysDbOpt, as_json: bool = JsonOpt) -> None:
    """List API keys (ids, scopes, first characters; never the keys)."""

    def body() -> None:
        from ..service.keys import open_key_store

        store = open_key_store(db, keys_db)
        records = [r.to_dict() for r in store.list()]
        store.close()
        if as_json:
            emit(records)
            return
        for r in records:
            state = "revoked" if r["revoked"] else "active"
            rate = "server default" if r["rate_per_minute"] is None else f"{r['rate_per_minute']}/min"
            typer.echo(f"#{r['id']} {r['hint']}... {r['scope']} {state} rate {rate} {r['created_at']} {r['name']}")

    run_command(body)


@keys_app.command("revoke")
def keys_revoke(key_id: int = typer.Argument(..., help="The key's id (see `faceprint keys list`)."),
                db: str = DbOpt, keys_db: Optional[Path] = KeysDbOpt, as_json: bool = JsonOpt) -> None:
    """Revoke an API key: requests with it get 401 from then on."""

    def body() -> None:
        from ..service.keys import open_key_store

        store = open_key_store(db, keys_db)
        record = store.revoke(key_id)
        store.close()
        if as_json:
            emit(record.to_dict())
            return
        typer.echo(f"revoked API key #{record.id}")

    run_command(body)
