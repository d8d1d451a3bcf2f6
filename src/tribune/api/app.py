"""The ASGI application."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import APIRouter, FastAPI
from starlette.staticfiles import StaticFiles

from tribune import __version__, problems_doc
from tribune.api import problems
from tribune.api.fastpath import GuestJoinFastPath
from tribune.api.guard import RequestGuard
from tribune.api.routes import (
    accounts,
    events,
    hls,
    listeners,
    operator,
    replay,
    spaces,
    stage,
    stream,
    whip,
)
from tribune.api.services import Services
from tribune.config import Settings
from tribune.demo import ensure_demo
from tribune.service.media_node import MediaNode
from tribune.service.runtime import Runtime
from tribune.web import pages

logger = logging.getLogger(__name__)

health = APIRouter(tags=["meta"])


@health.get("/api/health", summary="Liveness")
async def health_check() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


def create_app(settings: Settings | None = None) -> FastAPI:
    """``uvicorn --factory tribune.api.app:create_app`` reads ``TRIBUNE_*`` settings."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await Runtime.start(settings)
        app.state.services = services = Services.build(runtime)
        resumed = await services.spaces.resume_media()
        if resumed:
            logger.info("resumed the media of %d live Spaces", resumed)
        media_node = MediaNode(runtime, services.spaces)
        if settings.demo:
            space_id = await ensure_demo(services.accounts, services.spaces)
            logger.info(
                "demo: listen at http://%s:%s/spaces/%s", settings.host, settings.port, space_id
            )
        # Everything built so far lives as long as the process: keep it out of the
        # cyclic GC's scans, whose full passes otherwise show up as latency spikes.
        gc.collect()
        gc.freeze()
        logger.info("tribune %s ready", __version__)
        try:
            if runtime.media.enabled:
                async with media_node.running():
                    yield
            else:
                yield
        finally:
            await runtime.close()

    app = FastAPI(
        title="Tribune",
        version=__version__,
        summary="Live audio rooms: Spaces, stage, listeners.",
        description=problems_doc.DESCRIPTION,
        lifespan=lifespan,
        # FastAPI 0.165 asks OpenTelemetry on every request whether a provider is set
        # (three environment lookups and more): ~7 us of a guest join's ~27 us in process
        # (/tmp profile, 2026-11-22). Tribune configures no provider, so it is off.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    problems.install(app)
    # Outermost last: the guard (size, content type) sees every request, then anonymous
    # joins are answered without entering the router.
    app.add_middleware(GuestJoinFastPath)
    app.add_middleware(RequestGuard, max_body_bytes=settings.max_body_bytes)
    for module in (accounts, spaces, listeners, stage, events, whip, hls, stream, replay, operator):
        app.include_router(module.router)
    app.include_router(health)

    app.include_router(pages.router())
    web = resources.files("tribune.web")
    app.mount("/static", StaticFiles(directory=str(web.joinpath("static"))), name="static")

    return app
