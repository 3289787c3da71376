"""Puts the dashboard into the app: its routes (before git's catch-all), static files, errors."""

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from spacehub.platform.dashboard import admin_pages, pages, source_pages, space_pages
from spacehub.platform.dashboard.rendering import PageError, page_error

STATIC = Path(__file__).parents[1] / "static"


def install_dashboard(app: FastAPI) -> None:
    app.add_exception_handler(PageError, page_error)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(pages.router)
    app.include_router(admin_pages.router)
    app.include_router(space_pages.router)
    app.include_router(source_pages.router)
