"""What every web app route shares: the signed-in caller from the session cookie, form bodies
checked for their CSRF token and origin, pages rendered with the app's security headers, and
errors answered as pages (the JSON API's error shape is for programs)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote, urlsplit

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from pydantic import ValidationError

from api.access_log import note_principal
from api.auth import Caller
from api.errors import ApiError
from api.state import ApiState
from api.ui.render import render
from api.ui.session import COOKIE, Session, Sessions

# Every page's policy: nothing from elsewhere, no inline script or style, no framing.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Nothing to other sites; same-origin keeps the Origin header on form posts (with
    # no-referrer Chromium sends `Origin: null`, which the origin check refuses).
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
# A form the web app sends is a few KiB (a modify of a large subject a few hundred).
MAX_FORM_BYTES = 262_144
MAX_FORM_FIELDS = 1_000
FORM_TYPE = "application/x-www-form-urlencoded"


class SignInNeeded(Exception):
    """No usable session: the browser goes to the sign-in page (with why, when there is one)."""

    def __init__(self, then: str, why: str | None = None, *, ended: bool = False) -> None:
        self.then, self.why, self.ended = then, why, ended


@dataclass(frozen=True)
class SignedIn:
    """The request's principal, exactly as its API key makes it, and its session."""

    caller: Caller
    session: Session
    csrf: str


def ui_state(request: Request) -> tuple[ApiState, Sessions]:
    return request.app.state.stepgate, request.app.state.stepgate_ui


async def signed_in(request: Request) -> SignedIn:
    state, sessions = ui_state(request)
    then = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    session = sessions.open(request.cookies.get(COOKIE))
    if session is None:
        raise SignInNeeded(then, ended=COOKIE in request.cookies)
    try:
        caller = await state.keys.identify(session.token)
    except ApiError as err:
        # Removed, rotated away or expired: the session ends with the key.
        sessions.end(session)
        raise SignInNeeded(then, f"your session ended: {err.message}", ended=True) from None
    if caller.principal != session.principal:
        sessions.end(session)
        raise SignInNeeded(then, "your session ended: the key now names someone else", ended=True)
    note_principal(request.scope, caller.principal)
    state.limits.admit(caller.principal)
    return SignedIn(caller, session, sessions.csrf(session))


SignedInDep = Annotated[SignedIn, Depends(signed_in)]


async def read_form(request: Request, who: SignedIn | None) -> dict[str, list[str]]:
    """The urlencoded body of a form post, after its origin and CSRF token are checked; 403 for
    a post from another origin or without the session's token, 415/413/400 for other bodies."""
    origin = request.headers.get("origin")
    if origin is not None and origin != _own_origin(request):
        raise ApiError(403, "cross_origin", "this form was sent from another site")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != FORM_TYPE:
        raise ApiError(415, "unsupported_media_type", f"send the form as {FORM_TYPE}")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_FORM_BYTES:
            raise ApiError(413, "too_large", f"a form of at most {MAX_FORM_BYTES} bytes")
    try:
        pairs = parse_qsl(
            data.decode(),
            keep_blank_values=True,
            strict_parsing=bool(data),
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "unparseable", "the form body is not urlencoded UTF-8") from None
    form: dict[str, list[str]] = {}
    for key, value in pairs:
        form.setdefault(key, []).append(value)
    if who is not None:
        _, sessions = ui_state(request)
        if not sessions.csrf_ok(who.session, first(form, "csrf")):
            raise ApiError(403, "csrf", "this form is stale or was not sent by this app; reload")
    return form


def first(form: dict[str, list[str]], name: str) -> str | None:
    values = form.get(name)
    return values[0] if values else None


def _own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.headers.get('host', '')}"


def page(
    request: Request, template: str, status: int = 200, who: SignedIn | None = None, **ctx: Any
) -> HTMLResponse:
    """A page, rendered off nothing but `ctx`, with the app's security headers."""
    body = render(template, request=request, who=who, **ctx)
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)


def local_path(then: str | None, default: str = "/ui/inbox") -> str:
    """Where to go after signing in: a path of this app only, never another site."""
    if not then or not then.startswith("/ui") or then.startswith("//"):
        return default
    parts = urlsplit(then)
    if parts.scheme or parts.netloc or "\\" in then:
        return default
    return then


class UiRoute(APIRoute):
    """A route whose refusals are pages: sign-in redirects, and errors with their status."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def as_page(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInNeeded as need:
                url = "/ui/signin?next=" + quote(need.then, safe="")
                if need.why:
                    url += "&why=" + quote(need.why, safe="")
                moved = see_other(url)
                if need.ended:
                    moved.headers["Set-Cookie"] = ui_state(request)[1].clear_header()
                return moved
            except ApiError as err:
                response = page(request, "error.html", err.status, error=err, issues=_issues(err))
                if err.headers and "Retry-After" in err.headers:
                    response.headers["Retry-After"] = err.headers["Retry-After"]
                return response
            except (RequestValidationError, ValidationError) as err:
                problems = [
                    f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
                ]
                error = ApiError(422, "invalid", "; ".join(problems)[:500])
                return page(request, "error.html", 422, error=error, issues=[])

        return as_page


def _issues(err: ApiError) -> list[tuple[str, str]]:
    """The error's details as (path, message) rows, where it has them."""
    if not isinstance(err.details, list):
        return []
    return [
        (str(d.get("path", "")), str(d.get("message", "")))
        for d in err.details
        if isinstance(d, dict)
    ]
