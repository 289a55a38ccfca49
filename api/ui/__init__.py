"""The approver web app at /ui: server-rendered pages with a little JavaScript, every script,
style and icon served from the package (no CDN), a strict Content-Security-Policy and no inline
script. It signs in with an API key (api/ui/session.py) and acts as that key's principal with
exactly the API's permissions: its pages call the API's own route functions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import Response

from api.errors import ApiError
from api.ui import views_auth, views_gate, views_inbox, views_link, views_runs, views_start
from api.ui.web import SECURITY_HEADERS

STATIC = Path(__file__).parent / "static"
MEDIA = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Read once: a handful of small files that change only with the package.
_FILES = {p.name: (p.read_bytes(), MEDIA[p.suffix]) for p in STATIC.iterdir() if p.suffix in MEDIA}

router = APIRouter(include_in_schema=False)
for views in (views_auth, views_inbox, views_runs, views_gate, views_link, views_start):
    router.include_router(views.router)


@router.get("/ui/static/{name}")
async def static(name: Annotated[str, PathParam(max_length=64)]) -> Response:
    found = _FILES.get(name)
    if found is None:
        raise ApiError(404, "not_found", f"no file {name!r}")
    content, media = found
    headers = {**SECURITY_HEADERS, "Cache-Control": "public, max-age=3600"}
    return Response(content, media_type=media, headers=headers)
