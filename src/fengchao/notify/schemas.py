"""Requests and responses of the notifications' JSON API."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field


class InboxItemRead(BaseModel):
    id: int
    notification_id: int
    kind: str
    urgency: str
    title: str
    body: str
    detail: str | None
    link: str | None
    created_at: dt.datetime
    read: bool


class Unread(BaseModel):
    unread: int


class NotificationCreate(BaseModel):
    """A notice from staff: ``to`` as ``building_lead@building:5``, ``group@compound:3``,
    ``group@community:1+below`` or ``user:12``."""

    community_id: int = Field(ge=1, le=2**31 - 1)
    title: str = Field(min_length=1, max_length=200)
    body: str = Field("", max_length=20_000)
    detail: str | None = Field(None, max_length=20_000)
    urgency: str = Field("normal", pattern="^(info|normal|urgent)$")
    link: str | None = Field(None, max_length=500)
    to: list[str] = Field(min_length=1, max_length=50)
    key: str | None = Field(None, min_length=1, max_length=128)


class NotificationSent(BaseModel):
    notification_id: int
    inboxes: int
    deliveries: int
    reached_nobody: list[str]
    duplicate: bool
