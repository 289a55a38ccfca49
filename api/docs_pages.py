"""/docs (Swagger UI) and /redoc (ReDoc) served from the package: the viewers' scripts, style and
icon from fastapi_offline's files, pages and initializers of our own, and a Content-Security-Policy
that lets the pages load nothing from anywhere but this server. They render with no network."""

from __future__ import annotations

import functools
import gzip
import hashlib
import html
from dataclasses import dataclass
from importlib import resources

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from api.errors import ApiError

STATIC = "/docs/static"
JS = "text/javascript; charset=utf-8"
# What /docs/static serves: name -> (package that ships it, its folder there, media type). Nothing
# else is reachable under it: a name is looked up here, never joined to a path.
FILES = {
    "swagger-ui-bundle.js": ("fastapi_offline", "static", JS),
    "swagger-ui.css": ("fastapi_offline", "static", "text/css; charset=utf-8"),
    "redoc.standalone.js": ("fastapi_offline", "static", JS),
    "favicon.png": ("fastapi_offline", "static", "image/png"),
    "swagger-init.js": ("api", "docs_static", JS),
    "redoc-init.js": ("api", "docs_static", JS),
}
# ReDoc's menu shows Redocly's logo from their CDN, which no option turns off: with no source the
# image fails at once and ReDoc drops it, leaving the attribution's text.
REWRITES = {"redoc.standalone.js": (b"https://cdn.redoc.ly/redoc/logo-mini.svg", b"")}
# A versioned URL (its `v` is the file's digest) never changes: browsers keep it for a year.
IMMUTABLE = "public, max-age=31536000, immutable"
# The pages name the versioned URLs of the day, so they are checked again on every visit.
REVALIDATE = "no-cache"
# What the viewers need, found in Chromium (tests/browser/test_docs_pages.py) and explained in
# SECURITY.md, "OpenAPI pages": everything from this server only, no inline or evaluated script,
# images also as data: URLs (the icons in swagger-ui.css and ReDoc's link icon are).
_COMMON = (
    "default-src 'none'",
    "script-src 'self'",
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
)
# Swagger UI sets styles through the DOM, which the policy does not govern: its sheet is enough.
DOCS_CSP = "; ".join((*_COMMON, "style-src 'self'"))
# ReDoc writes its styles into <style> elements (styled-components), and searches in a web
# worker that it starts from a blob: URL.
REDOC_CSP = "; ".join((*_COMMON, "style-src 'self' 'unsafe-inline'", "worker-src blob:"))
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    digest: str
    # The text files gzipped once (2.8 MB to 0.8 MB); None for the icon, which would not shrink.
    gzipped: bytes | None

    @property
    def etag(self) -> str:
        # Weak: the plain and the gzipped body are the same file.
        return f'W/"{self.digest}"'


@functools.cache
def assets() -> dict[str, Asset]:
    """Every file /docs/static serves, read from its package once (about 2.8 MB), rewritten
    where REWRITES says, and gzipped (about 0.1 s of CPU, once)."""
    found = {}
    for name, (package, folder, media_type) in FILES.items():
        body = (resources.files(package) / folder / name).read_bytes()
        if name in REWRITES:
            body = body.replace(*REWRITES[name])
        digest = hashlib.sha256(body).hexdigest()[:16]
        packed = None if media_type.startswith("image/") else gzip.compress(body, mtime=0)
        found[name] = Asset(body, media_type, digest, packed)
    return found


def asset_url(request: Request, name: str) -> str:
    root = request.scope.get("root_path", "")
    return f"{root}{STATIC}/{name}?v={assets()[name].digest}"


def page(request: Request, *, title: str, css: list[str], body: str, scripts: list[str]) -> str:
    """A page that loads only versioned files of /docs/static, and no script of its own."""
    links = "".join(
        f'\n<link rel="stylesheet" href="{html.escape(asset_url(request, c))}">' for c in css
    )
    tags = "".join(
        f'\n<script src="{html.escape(asset_url(request, s))}"></script>' for s in scripts
    )
    favicon = html.escape(asset_url(request, "favicon.png"))
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<title>{html.escape(title)}</title>\n<link rel="icon" type="image/png" href="{favicon}">'
        f"{links}\n</head>\n<body>\n{body}{tags}\n</body>\n</html>\n"
    )


def openapi_url(request: Request) -> str:
    return html.escape(request.scope.get("root_path", "") + (request.app.openapi_url or ""))


def page_response(content: str, csp: str) -> HTMLResponse:
    headers = {"Content-Security-Policy": csp, "Cache-Control": REVALIDATE, **SECURITY_HEADERS}
    return HTMLResponse(content, headers=headers)


router = APIRouter(include_in_schema=False)


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI over /openapi.json; its Authorize button takes an API key as a bearer token."""
    content = page(
        request,
        title=f"{request.app.title} - Swagger UI",
        css=["swagger-ui.css"],
        body=f'<div id="swagger-ui" data-openapi="{openapi_url(request)}"></div>',
        scripts=["swagger-ui-bundle.js", "swagger-init.js"],
    )
    return page_response(content, DOCS_CSP)


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    """ReDoc over /openapi.json, with the system's fonts (no font is fetched)."""
    content = page(
        request,
        title=f"{request.app.title} - ReDoc",
        css=[],
        body=f'<div id="redoc" data-openapi="{openapi_url(request)}"></div>',
        scripts=["redoc.standalone.js", "redoc-init.js"],
    )
    return page_response(content, REDOC_CSP)


@router.get(STATIC + "/{name}")
def static(request: Request, name: str, v: str = "") -> Response:
    """One of FILES, gzipped when the client takes it; kept a year when asked for by its digest,
    else revalidated by its ETag. Plain `def`: the first call reads and compresses the files."""
    asset = assets().get(name)
    if asset is None:
        raise ApiError(404, "not_found", f"no file {name!r} under {STATIC}")
    headers = {
        "ETag": asset.etag,
        "Cache-Control": IMMUTABLE if v == asset.digest else REVALIDATE,
        "Vary": "Accept-Encoding",
        **SECURITY_HEADERS,
    }
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    body = asset.body
    if asset.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
        body = asset.gzipped
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=asset.media_type, headers=headers)
