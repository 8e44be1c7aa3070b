"""``/v1/cluster``: cluster jobs over the photo index that ``faceprint index --db`` filled."""

from __future__ import annotations

from typing import Any, Optional

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from ..collections.clustering import DEFAULT_CLUSTERER
from .keys import ApiKey
from .problems import BadRequest, NotFound, problem_responses
from .state import get_state, needs

router = APIRouter(prefix="/v1", tags=["collections"])


class ClusterRequest(BaseModel):
    algorithm: str = Field(DEFAULT_CLUSTERER, description="hdbscan (default, as `faceprint cluster`), chinese_whispers, "
                                                          "agglomerative, dbscan or kmeans.")
    threshold: Optional[float] = Field(None, gt=0, description="Distance threshold (default: the model's FAR 1e-3 one).")
    n_clusters: Optional[int] = Field(None, ge=1, description="kmeans: number of people (agglomerative: cut at k).")
    min_cluster_size: Optional[int] = Field(None, ge=2, description="hdbscan: smallest cluster.")
    full: bool = Field(False, description="Re-cluster every face instead of joining new faces to existing clusters.")


@router.post("/cluster", status_code=202, summary="Start clustering the indexed photo collection (a job)")
async def start(request: Request, response: Response, body: ClusterRequest,
                _key: ApiKey = Depends(needs("admin"))) -> dict[str, Any]:
    """Answers at once with the queued job; poll ``GET /v1/cluster/{id}`` (its ``Location``)."""
    from ..errors import ConfigError, UnknownModelError

    params = body.model_dump()
    if params["algorithm"] == "kmeans" and params["n_clusters"] is None:
        raise BadRequest("kmeans needs n_clusters")
    try:
        job = get_state(request).jobs.submit(params)
    except (UnknownModelError, ConfigError) as exc:
        raise BadRequest(str(exc)) from None
    response.headers["Location"] = f"/v1/cluster/{job.id}"
    return job.to_dict(with_result=False)


@router.get("/cluster", summary="Recent cluster jobs (without their clusters)")
async def jobs(request: Request, _key: ApiKey = Depends(needs("read"))) -> list[dict[str, Any]]:
    return [job.to_dict(with_result=False) for job in get_state(request).jobs.list()]


@router.get("/cluster/{job_id}", summary="A cluster job; when done, its clusters like `faceprint cluster --json -`",
            responses=problem_responses({404: "no such job"}))
async def job(request: Request, job_id: int, _key: ApiKey = Depends(needs("read"))) -> dict[str, Any]:
    found = get_state(request).jobs.get(job_id)
    if found is None:
        raise NotFound(f"no cluster job {job_id} (jobs are kept in memory until the server restarts)")
    return found.to_dict()
