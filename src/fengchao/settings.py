"""Configuration from FENGCHAO_* environment variables (nested with ``__``)."""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "dev-insecure-secret-change-me"


class SecuritySettings(BaseModel):
    """Secrets and session behaviour."""

    model_config = ConfigDict(extra="forbid")

    secret_key: str = Field(
        DEV_SECRET, description="Signs sessions and CSRF tokens; must be set in production."
    )
    data_key: str = Field(
        "",
        description=(
            "Base64 key (32 bytes) for encrypting ID numbers at rest and for their keyed "
            "search hash. Empty: derived from secret_key (development only)."
        ),
    )
    session_hours: int = Field(12, ge=1, le=24 * 30, description="Login session lifetime.")
    cookie_secure: bool = Field(False, description="Send cookies over HTTPS only.")

    def data_key_bytes(self) -> bytes:
        if self.data_key:
            raw = base64.b64decode(self.data_key)
            if len(raw) != 32:
                raise ValueError("FENGCHAO_SECURITY__DATA_KEY must decode to 32 bytes")
            return raw
        return hashlib.sha256(b"fengchao-data-key:" + self.secret_key.encode()).digest()


class ImportSettings(BaseModel):
    """Limits for spreadsheet imports."""

    model_config = ConfigDict(extra="forbid")

    max_bytes: int = Field(20 * 1024 * 1024, description="Largest accepted upload in bytes.")
    max_rows: int = Field(100_000, description="Largest accepted number of data rows.")
    max_uncompressed_bytes: int = Field(
        128 * 1024 * 1024,
        description="Largest total an XLSX may declare for its unzipped parts (a 100,000-row "
        "register is about 60 MB).",
    )
    max_compression_ratio: float = Field(
        100,
        description="Largest unzipped/zipped ratio of one XLSX part over 1 MB; real registers "
        "measure 5-13, zip bombs hundreds.",
    )
    max_cell_chars: int = Field(32_767, description="Longest cell text (Excel's own limit).")
    upload_keep_minutes: int = Field(
        50, ge=1, description="Unconfirmed uploads older than this are refused and purged."
    )
    purge_interval_seconds: float = Field(
        300,
        ge=0,
        description="How often the web process purges expired uploads; 0 turns it off (then "
        "run `fengchao purge` from cron).",
    )


class VisionSettings(BaseModel):
    """Face and plate recognition: which backends, and the thresholds calibrated on data."""

    model_config = ConfigDict(extra="forbid")

    face_detector: str = Field(
        "hog+mtcnn",
        description="Face detector backend: hog, mtcnn, cnn, or hog+mtcnn (HOG, MTCNN for masks).",
    )
    hog_upsample: int = Field(0, ge=0, le=2, description="HOG detector upsampling steps.")
    face_threshold: float = Field(
        0.45, gt=0, lt=1.5, description="Largest descriptor distance accepted as the same person."
    )
    face_margin: float = Field(
        0.04,
        ge=0,
        lt=0.5,
        description="Refuse when the second-best different person is this close to the best.",
    )
    plate_reader: str = Field("agentclpr", description="Plate reader backend.")
    local_province: str = Field(
        "闽", min_length=1, max_length=1, description="Province of local plates (matching prior)."
    )

    @model_validator(mode="after")
    def _known_backends(self) -> VisionSettings:
        from fengchao.vision.faces import FACE_DETECTORS
        from fengchao.vision.plate_rules import PROVINCES
        from fengchao.vision.plates import PLATE_READERS

        for value, registry, what in (
            (self.face_detector, FACE_DETECTORS, "face_detector"),
            (self.plate_reader, PLATE_READERS, "plate_reader"),
        ):
            if value not in registry:
                known = ", ".join(sorted(registry))
                raise ValueError(f"vision.{what}: unknown backend {value!r} (known: {known})")
        if self.local_province not in PROVINCES:
            raise ValueError(f"vision.local_province: {self.local_province!r} is not a province")
        return self


class Settings(BaseSettings):
    """The root of all settings; build it with :func:`get_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="FENGCHAO_", env_nested_delimiter="__", extra="ignore"
    )

    env: Literal["development", "test", "production"] = Field(
        "development", description="Deployment kind; production refuses default secrets."
    )
    data_dir: Path = Field(Path("data"), description="Folder for the SQLite file and uploads.")
    database_url: str = Field(
        "", description="SQLAlchemy URL; empty means SQLite in data_dir/fengchao.db."
    )
    timezone: str = Field("Asia/Shanghai", description="Time zone that times are shown in.")
    default_language: Literal["zh_CN", "en"] = Field("zh_CN", description="UI language.")
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    imports: ImportSettings = Field(default_factory=ImportSettings)
    vision: VisionSettings = Field(default_factory=VisionSettings)

    @model_validator(mode="after")
    def _refuse_default_secret_in_production(self) -> Settings:
        if self.env == "production" and (
            self.security.secret_key == DEV_SECRET or not self.security.data_key
        ):
            raise ValueError(
                "production needs FENGCHAO_SECURITY__SECRET_KEY and "
                "FENGCHAO_SECURITY__DATA_KEY set to real secrets"
            )
        return self

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'fengchao.db').as_posix()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
