"""The chat page: `/` and `/static/*`, open without a key, under a strict Content-Security-Policy.

Plain HTML/CSS/JS from ``api/static`` (no build step, no CDN): the page calls the `/v1/*` API
with ``fetch``, sending the key (if any) in the Authorization header.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

router = APIRouter(tags=["page"])


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(
        STATIC_DIR / "index.html",
        media_type="text/html; charset=utf-8",
        headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"},
    )


class SecureStaticFiles(StaticFiles):
    """StaticFiles whose every response carries the page's security headers."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        response.headers["Cache-Control"] = "no-cache"  # revalidate (ETag) after an upgrade
        return response


def install(app: FastAPI) -> None:
    """Serve the page at `/` and its files at `/static/`."""
    app.include_router(router)
    app.mount("/static", SecureStaticFiles(directory=STATIC_DIR), name="static")
