"""`GET /api/health`: whether the platform's loops run (not part of the Hub's dialect)."""

from dataclasses import asdict

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from spacehub.platform.deps import PlatformDep

router = APIRouter(prefix="/api")


@router.get("/health")
def health(platform: PlatformDep) -> JSONResponse:
    """200 when every loop runs; 503 when one is down (it is being started again)."""
    loops = {name: asdict(record) for name, record in platform.loops.items()}
    healthy = all(record.running for record in platform.loops.values())
    runtime = type(platform.runtime).__name__ if platform.runtime is not None else None
    return JSONResponse(
        {"status": "ok" if healthy else "degraded", "loops": loops, "runtime": runtime},
        status_code=200 if healthy else 503,
    )
