"""Tables of the access slice."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Integer
from sqlalchemy.orm import Mapped, mapped_column

from fengchao.db import Base, UTCDateTime, utcnow


class ResidentCode(Base):
    """The version of a person's resident code (通行码): raising it voids every code printed
    or shown before. A person without a row is on version 1, so nothing has to be issued
    before a household can print its cards."""

    __tablename__ = "resident_code"

    person_id: Mapped[int] = mapped_column(
        ForeignKey("person.id", ondelete="CASCADE"), primary_key=True
    )
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    rotated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
