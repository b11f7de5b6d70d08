"""The composition root: settings, lifespan resources, error handlers and feature routers.

Activating a migrated feature is one line in `FEATURES`. Documentation lives under
`/_native/`, because `/` and `/docs` belong to the legacy app behind the gateway.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from features.core.db import dispose_engine, get_engine
from features.core.errors import install_error_handlers
from features.core.responses import LegacyJSONResponse
from features.core.settings import Settings
from features.products.router import router as products_router
from features.users.router import router as users_router

FEATURES: tuple[APIRouter, ...] = (
    users_router,
    products_router,
)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    get_engine(app)
    try:
        yield
    finally:
        await dispose_engine(app)


def create_app(settings: Settings | None = None) -> FastAPI:
    app = FastAPI(
        title="Migrated features",
        lifespan=lifespan,
        default_response_class=LegacyJSONResponse,
        openapi_url="/openapi.json",
        docs_url="/_native/docs",
        swagger_ui_oauth2_redirect_url="/_native/docs/oauth2-redirect",
        redoc_url=None,
        # Werkzeug answers "/api/users/" with 404, not a redirect to "/api/users"
        redirect_slashes=False,
    )
    app.state.settings = settings if settings is not None else Settings()
    install_error_handlers(app)
    for router in FEATURES:
        app.include_router(router)
    return app
