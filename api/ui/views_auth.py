"""Signing in with an API key and out again."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from api.errors import ApiError
from api.ui.web import (
    SignedInDep,
    UiRoute,
    first,
    local_path,
    page,
    read_form,
    see_other,
    ui_state,
)

router = APIRouter(route_class=UiRoute)

MAX_KEY_CHARS = 1_000


@router.get("/ui", include_in_schema=False)
async def root() -> Response:
    return see_other("/ui/inbox")


@router.get("/ui/signin", include_in_schema=False)
async def signin_page(
    request: Request,
    next: Annotated[str | None, Query(max_length=2_000)] = None,
    why: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    return page(request, "signin.html", then=local_path(next), why=why, error=None)


@router.post("/ui/signin", include_in_schema=False)
async def signin(request: Request) -> Response:
    state, sessions = ui_state(request)
    address = request.client.host if request.client else "unknown"
    sessions.failures.check(address)
    form = await read_form(request, None)
    key = (first(form, "key") or "").strip()
    then = local_path(first(form, "next"))
    try:
        if not key or len(key) > MAX_KEY_CHARS:
            raise ApiError(401, "unauthorized", "enter your API key")
        caller = await state.keys.identify(key)
    except ApiError as err:
        if err.status != 401:
            raise
        sessions.failures.failed(address)
        return page(request, "signin.html", 401, then=then, why=None, error=err.message)
    value, _ = sessions.begin(key, caller.principal)
    response = see_other(then)
    response.headers["Set-Cookie"] = sessions.cookie_header(value)
    return response


@router.post("/ui/signout", include_in_schema=False)
async def signout(request: Request, who: SignedInDep) -> Response:
    await read_form(request, who)
    _, sessions = ui_state(request)
    sessions.end(who.session)
    response = see_other("/ui/signin?why=" + "signed%20out")
    response.headers["Set-Cookie"] = sessions.clear_header()
    return response
