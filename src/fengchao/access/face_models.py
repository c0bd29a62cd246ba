"""Tables of faces on file (人脸库): templates, the encrypted thumbnail, consent, and the
change log every server process reads to keep its in-memory gallery current.

Never the raw upload: an enrolment keeps the descriptors the pipeline computed (each with
its kind and the model that made it) and a small face thumbnail sealed like ID numbers.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Enum, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from fengchao.db import Base, UTCDateTime, utcnow


class TemplateKind(enum.StrEnum):
    """What a stored descriptor is of."""

    photo = "photo"  # the enrolment photo as taken (gallery kind 0)
    synthetic_mask = "synthetic_mask"  # the same photo with a mask drawn on (kinds 1..9)
    masked_photo = "masked_photo"  # a photo taken with the resident's own mask on (kind 10)


class ConsentMethod(enum.StrEnum):
    """How the resident's consent was given."""

    signed_form = "signed_form"  # 书面签字
    in_person = "in_person"  # 当面口头同意，工作人员记录
    guardian = "guardian"  # 监护人代为同意（未成年人、失能老人）
    command_line = "command_line"  # 由命令行批量录入，附纸质同意书


def _enum(cls: type[enum.Enum]) -> Enum:
    return Enum(
        cls,
        native_enum=False,
        length=16,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


class FaceTemplate(Base):
    """One descriptor of a person's face (128 float32 values, little-endian)."""

    __tablename__ = "face_template"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"))
    descriptor: Mapped[bytes] = mapped_column(LargeBinary)
    kind: Mapped[TemplateKind] = mapped_column(_enum(TemplateKind))
    # The gallery's own number for the kind: 0 photo, k synthetic mask k, 10 masked photo.
    gallery_kind: Mapped[int] = mapped_column(Integer)
    model: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


Index("ix_face_template_community_model", FaceTemplate.community_id, FaceTemplate.model)


class FaceThumbnail(Base):
    """A small JPEG of the enrolled face, sealed with the data key and bound to its row."""

    __tablename__ = "face_thumbnail"

    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class FaceConsent(Base):
    """A resident's consent to have their face on file (人脸信息单独同意), and its withdrawal."""

    __tablename__ = "face_consent"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"), index=True)
    consented_by: Mapped[str] = mapped_column(String(64))  # the resident or their guardian
    method: Mapped[ConsentMethod] = mapped_column(_enum(ConsentMethod))
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    recorded_by: Mapped[str] = mapped_column(String(64))
    consented_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    withdrawn_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    withdrawn_recorded_by: Mapped[str | None] = mapped_column(String(64))
    # Why the faces went without a withdrawal (moved out, deleted on request), else None.
    note: Mapped[str | None] = mapped_column(String(200))


class FaceGalleryChange(Base):
    """One person's templates changed (enrolled, replaced or deleted): every server process
    reads the rows after the last it saw and reloads those people into its gallery."""

    __tablename__ = "face_gallery_change"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id"))
    person_id: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


Index("ix_face_gallery_change_community_id", FaceGalleryChange.community_id, FaceGalleryChange.id)
