"""Forms shown again with the problem: the submitted form read as text (a number or a date
typed wrong is a message at its field, not an error page that loses what was typed), and
a unit of work that a refusal undoes within the request."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from fengchao.auth.service import Refusal
from fengchao.db import begin_write
from fengchao.web.i18n import _


@contextmanager
def attempt(session: Session) -> Iterator[None]:
    """A unit of work that a refusal undoes without ending the request's transaction (the
    form is then shown again, with the problem, in the same request)."""
    begin_write(session)
    with session.begin_nested():
        yield


async def form_of(request: Request) -> FormData:
    """The submitted form (read once, in the event loop; routes stay synchronous)."""
    return await request.form()


Form = Annotated[FormData, Depends(form_of)]


def text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def integer(form: FormData, name: str) -> int | None:
    raw = text(form, name).strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise Refusal(_("应为整数"), field=name) from None
    if not 0 <= value < 2**31:
        raise Refusal(_("应为整数"), field=name)
    return value
