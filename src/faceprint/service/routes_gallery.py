"""``/v1/identify`` and ``/v1/people``: the gallery in the shared database, over HTTP.

Bodies mirror the CLI's ``--json`` records: identify gives
``{"image", "faces": [{"box", "name", "distance", "score", "threshold", "candidates"}]}`` (``name`` null = unknown),
people are ``{"name", "samples", "metadata", "sources"}``.
"""

from __future__ import annotations

from typing import Any, Optional

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ..gallery.base import DEFAULT_TOP_K
from .keys import ApiKey
from .problems import PROBLEM_JSON, problem_responses
from .routes_faces import PROBLEMS, image_body, on_image
from .state import get_state, needs
from .uploads import Upload, named, read_uploads, unscale

router = APIRouter(prefix="/v1", tags=["gallery"])
_GONE = problem_responses({404: "no such person", 409: "name already taken"})


class NewPerson(BaseModel):
    name: str = Field(min_length=1, max_length=200, description="The person's name (unique).")
    metadata: Optional[dict[str, Any]] = Field(None, description="Free-form JSON stored with the person.")


class Rename(BaseModel):
    name: str = Field(min_length=1, max_length=200, description="The new name (must be free).")


class Merge(BaseModel):
    into: str = Field(min_length=1, max_length=200, description="The person who receives all faces.")


def _identify(state: Any, upload: Upload, threshold: Optional[float], top_k: int) -> dict[str, Any]:
    rgb, scale = state.decode(upload)
    with named(upload, rgb):
        results = state.recognizer.identify(rgb, threshold=threshold, top_k=top_k)
    state.metrics.faces.inc(len(results))
    records = [r.to_record() for r in results]
    return {"image": upload.name, "faces": [{**r, "box": unscale(r["box"], scale)} for r in records]}


def _enroll(state: Any, name: str, upload: Upload) -> dict[str, Any]:
    state.gallery.person(name)  # 404 before any work when the person is unknown
    state.decode(upload, reduce=False)  # the server's limits at full size (the recognizer decodes again, in full)
    # the encoded bytes, so the duplicate check sees the same photo hash as `faceprint enroll FILE`
    report = state.recognizer.enroll(name, [upload.data]).to_dict()
    report["enrolled"] = [upload.name for _ in report["enrolled"]]
    report["rejected"] = [{**r, "source": upload.name} for r in report["rejected"]]
    report["samples"] = state.gallery.person(name).samples
    return report


def _create(state: Any, person: NewPerson) -> dict[str, Any]:
    state.gallery.add_person(person.name, person.metadata)
    return state.gallery.person(person.name.strip()).to_dict()


@router.post("/identify", summary="Who is in this photo? Every face with its name or null (unknown)",
             openapi_extra=image_body("image"), responses=PROBLEMS)
async def identify(request: Request, _key: ApiKey = Depends(needs("read")),
                   threshold: Optional[float] = Query(None, gt=0, allow_inf_nan=False,
                                                     description="Open-set distance threshold."),
                   top_k: int = Query(DEFAULT_TOP_K, ge=1, le=50, description="Candidates listed per face.")
                   ) -> dict[str, Any]:
    """Like ``faceprint identify --json``: ``{"image", "faces": [{"box", "name", "distance", "score",
    "threshold", "candidates"}]}``."""
    return await on_image(request, _identify, threshold, top_k)


@router.get("/people", summary="Enrolled people and their face counts")
async def people(request: Request, _key: ApiKey = Depends(needs("read"))) -> list[dict[str, Any]]:
    state = get_state(request)
    return [p.to_dict() for p in await state.run(state.gallery.people)]


@router.post("/people", status_code=201, summary="Enroll a new person (no faces yet)", responses=_GONE)
async def create_person(request: Request, person: NewPerson,
                        _key: ApiKey = Depends(needs("enroll"))) -> dict[str, Any]:
    state = get_state(request)
    return await state.run(_create, state, person)


@router.post("/people/{name}/faces", status_code=201, summary="Add a face photo to a person",
             openapi_extra=image_body("image"), responses={**PROBLEMS, **_GONE})
async def add_face(request: Request, name: str, _key: ApiKey = Depends(needs("enroll"))) -> Any:
    """The enrollment report ``{"name", "enrolled", "rejected": [{"source", "reason"}], "samples"}``.

    A photo the quality gate rejects (no face, several faces, too small, duplicate) is answered
    with 422 and the report, and nothing is stored.
    """
    state = get_state(request)
    uploads = await read_uploads(request, ("image",))
    report = await state.run(_enroll, state, name, uploads["image"])
    if report["enrolled"]:
        return report
    reason = report["rejected"][0]["reason"] if report["rejected"] else "no face enrolled"
    body = {"type": "urn:faceprint:error:EnrollmentError", "title": "Unprocessable Entity", "status": 422,
            "detail": f"{uploads['image'].name}: {reason}", "report": report}
    return JSONResponse(body, status_code=422, media_type=PROBLEM_JSON)


@router.patch("/people/{name}", summary="Rename a person", responses=_GONE)
async def rename(request: Request, name: str, body: Rename, _key: ApiKey = Depends(needs("admin"))) -> dict[str, Any]:
    state = get_state(request)
    await state.run(state.gallery.rename, name, body.name)
    return await state.run(lambda: state.gallery.person(body.name.strip()).to_dict())


@router.post("/people/{name}/merge", summary="Move all faces of a person to another and delete the first",
             responses=_GONE)
async def merge(request: Request, name: str, body: Merge, _key: ApiKey = Depends(needs("admin"))) -> dict[str, Any]:
    state = get_state(request)
    moved = await state.run(state.gallery.merge, name, body.into)
    return {"merged": name, "into": body.into, "moved": moved}


@router.delete("/people/{name}", summary="Delete a person and all their faces", responses=_GONE)
async def delete(request: Request, name: str, _key: ApiKey = Depends(needs("admin"))) -> dict[str, Any]:
    state = get_state(request)
    removed = await state.run(state.gallery.remove, name)
    return {"name": name, "removed": removed}
