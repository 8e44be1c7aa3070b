"""``/v1/live/{session}``: the web page's live webcam, one tracked stream per session.

``POST /v1/live/{session}/frames`` sends one frame (an image upload, like ``/v1/identify``)
and answers ``{"session", "frame", "time_s", "faces": [{"box", "track_id", "name",
"decided", "confidence", "distance"}], "events": [...]}``: the faces are the session's
tracks, named by the same recognizer as ``faceprint video`` (shot cuts end tracks, names
are re-checked and withdrawn when the evidence stops supporting them), and ``events`` are
that frame's ``faceprint video --json`` events. ``DELETE /v1/live/{session}`` ends it.
"""

from __future__ import annotations

from typing import Any, Optional

from fastapi import APIRouter, Depends, Query, Request

from .keys import ApiKey
from .problems import NotFound, problem_responses
from .routes_faces import PROBLEMS, image_body
from .state import get_state, needs
from .uploads import read_uploads

router = APIRouter(prefix="/v1/live", tags=["live"])
_NO_SESSION = problem_responses({404: "no such live session"})


@router.post("/{session}/frames", summary="One webcam frame of a live session: its tracked, named faces",
             openapi_extra=image_body("image"), responses=PROBLEMS)
async def frame(request: Request, session: str, key: ApiKey = Depends(needs("read")),
                threshold: Optional[float] = Query(None, gt=0, description="Open-set distance threshold.")
                ) -> dict[str, Any]:
    state = get_state(request)
    uploads = await read_uploads(request, ("image",))

    def job() -> dict[str, Any]:
        rgb, _scale = state.decode(uploads["image"], reduce=False)  # a frame's boxes stay in its own pixels
        result = state.live.frame(key.id, session, rgb, threshold)
        state.metrics.faces.inc(len(result["faces"]))
        return result

    return await state.run(job)


@router.delete("/{session}", summary="End a live session: its tracks leave", responses={**PROBLEMS, **_NO_SESSION})
async def end(request: Request, session: str, key: ApiKey = Depends(needs("read"))) -> dict[str, Any]:
    state = get_state(request)
    result = await state.run(state.live.end, key.id, session)
    if result is None:
        raise NotFound(f"no live session {session!r}")
    return result
