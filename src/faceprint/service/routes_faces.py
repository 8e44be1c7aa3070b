"""``/v1/detect``, ``/v1/embed``, ``/v1/verify``: the CLI's jobs on uploaded images.

Bodies mirror the CLI's ``--json`` records (one image per request).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from fastapi import APIRouter, Depends, Query, Request

from .keys import ApiKey
from .problems import problem_responses
from .state import get_state, needs
from .uploads import Upload, named, read_uploads, unscale

router = APIRouter(prefix="/v1", tags=["faces"])

#: Problem-details responses every image endpoint may give (beyond :data:`COMMON_PROBLEMS`).
PROBLEMS: dict[int | str, dict[str, Any]] = problem_responses(
    {422: "not an image, an unsupported format, or no face where one is needed"})


def image_body(*fields: str) -> dict[str, Any]:
    """OpenAPI ``requestBody`` for image ``fields`` as multipart files or base64 JSON strings."""
    files = {f: {"type": "string", "format": "binary"} for f in fields}
    b64 = {f: {"type": "string", "format": "byte", "description": "base64 image (a data: URL is accepted)"}
           for f in fields}
    return {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": list(fields), "properties": files}},
        "application/json": {"schema": {"type": "object", "required": list(fields), "properties": b64}}}}}


def _detect(state: Any, upload: Upload) -> dict[str, Any]:
    rgb, scale = state.decode(upload)
    with named(upload, rgb):
        faces = state.pipeline.detect(rgb)
    state.metrics.faces.inc(len(faces))
    records = [{**f, "box": unscale(f["box"], scale), "landmarks": [unscale(p, scale) for p in f["landmarks"]]}
               for f in faces.to_records()]
    return {"image": upload.name, "faces": records}


def _embed(state: Any, upload: Upload) -> dict[str, Any]:
    rgb, scale = state.decode(upload)
    with named(upload, rgb):
        result = state.pipeline.embed(rgb)
    state.metrics.faces.inc(len(result))
    return {"image": upload.name, "model": state.pipeline.spec.model_id,
            "faces": [{"box": unscale(f["box"], scale), "score": f["score"], "embedding": f["embedding"]}
                      for f in result.to_records()]}


def _verify(state: Any, a: Upload, b: Upload, faces: tuple[int, int], threshold: Optional[float]) -> dict[str, Any]:
    pipe = state.pipeline
    (rgb_a, _), (rgb_b, _) = state.decode(a), state.decode(b)
    with named(a, rgb_a), named(b, rgb_b):
        result = pipe.verify(rgb_a, rgb_b, face=faces[0], face_b=faces[1], threshold=threshold)
    data = result.to_dict()
    probability = pipe.match_probability(result.distance)
    if probability is not None:
        data["probability"] = round(probability, 6)
    return data


async def on_image(request: Request, job: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Read the ``image`` upload and run ``job(state, upload, *args)`` in the worker pool."""
    state = get_state(request)
    uploads = await read_uploads(request, ("image",))
    return await state.run(job, state, uploads["image"], *args)


@router.post("/detect", summary="Find faces: boxes, scores and 5 landmarks (largest first)",
             openapi_extra=image_body("image"), responses=PROBLEMS)
async def detect(request: Request, _key: ApiKey = Depends(needs("read"))) -> dict[str, Any]:
    """Like ``faceprint detect --json``: ``{"image", "faces": [{"box", "score", "landmarks"}]}``."""
    return await on_image(request, _detect)


@router.post("/embed", summary="Embed every face of an image",
             openapi_extra=image_body("image"), responses=PROBLEMS)
async def embed(request: Request, _key: ApiKey = Depends(needs("read"))) -> dict[str, Any]:
    """Like ``faceprint embed --json``: ``{"image", "model", "faces": [{"box", "score", "embedding"}]}``."""
    return await on_image(request, _embed)


@router.post("/verify", summary="Same person? Compares the largest face of image_a and image_b",
             openapi_extra=image_body("image_a", "image_b"), responses=PROBLEMS)
async def verify(request: Request, _key: ApiKey = Depends(needs("read")),
                 face: int = Query(0, ge=0, description="Which face of each image (0 = largest)."),
                 face_a: Optional[int] = Query(None, ge=0, description="Which face of image_a (default: face)."),
                 face_b: Optional[int] = Query(None, ge=0, description="Which face of image_b (default: face)."),
                 threshold: Optional[float] = Query(None, gt=0, allow_inf_nan=False,
                                                   description="Override the model's threshold.")
                 ) -> dict[str, Any]:
    """Like ``faceprint verify --json``: ``{"match", "distance", "threshold", "model"[, "probability"]}``.

    ``probability`` is present when the server was started with ``--calibration``.
    """
    state = get_state(request)
    uploads = await read_uploads(request, ("image_a", "image_b"))
    faces = (face if face_a is None else face_a, face if face_b is None else face_b)
    return await state.run(_verify, state, uploads["image_a"], uploads["image_b"], faces, threshold)
