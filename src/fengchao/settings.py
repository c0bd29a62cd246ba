"""Configuration from FENGCHAO_* environment variables (nested with ``__``)."""

from __future__ import annotations

import base64
import json
import os
import secrets
import sys
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "dev-insecure-secret-change-me"
MIN_SECRET_LENGTH = 32
DEV_KEYS_FILE = "keys.json"


class SecuritySettings(BaseModel):
    """Secrets and session behaviour."""

    model_config = ConfigDict(extra="forbid")

    secret_key: str = Field(
        DEV_SECRET,
        description=(
            "The platform's signing secret, for tokens it hands out (resident codes and visitor "
            "passes as they come; sessions themselves are random tokens kept hashed); at least "
            "32 characters in production. Unset outside production: a random one is generated "
            "into data_dir/keys.json."
        ),
    )
    data_key: str = Field(
        "",
        description=(
            "Base64 key (32 bytes) for encrypting ID numbers and uploads at rest and for their "
            "keyed search hash. Unset outside production: a random one is generated into "
            "data_dir/keys.json (mode 0600) on first run."
        ),
    )
    session_hours: int = Field(12, ge=1, le=24 * 30, description="Login session lifetime.")
    cookie_secure: bool = Field(
        False, description="Send cookies over HTTPS only (and send HSTS): set behind HTTPS."
    )
    id_lookups_per_hour: int = Field(
        30,
        ge=1,
        description=(
            "How many whole ID numbers one account may reveal or search for in an hour: "
            "enough for casework, too few to guess a masked number by trial."
        ),
    )
    max_body_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        description="Largest request body, except on upload routes (they allow the import limit).",
    )

    def data_key_bytes(self) -> bytes:
        raw = base64.b64decode(self.data_key, validate=True) if self.data_key else b""
        if len(raw) != 32:
            raise ValueError("FENGCHAO_SECURITY__DATA_KEY must be the base64 of 32 bytes")
        return raw


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


class VisionSettings(BaseModel):
    """Face and plate recognition: which backends, and the thresholds calibrated on data."""

    model_config = ConfigDict(extra="forbid")

    face_detector: str = Field(
        "hog+mtcnn",
        description="Face detector backend: hog, mtcnn, cnn, or hog+mtcnn (HOG, MTCNN for masks).",
    )
    hog_upsample: int = Field(0, ge=0, le=2, description="HOG detector upsampling steps.")
    face_threshold: float = Field(
        0.51,
        gt=0,
        lt=1.5,
        description=(
            "Largest descriptor distance accepted as the same person; chosen by "
            "`fengchao eval faces --calibrate` on the dev photos (no false accept)."
        ),
    )
    face_margin: float = Field(
        0.11,
        ge=0,
        lt=0.5,
        description=(
            "Refuse when the second-best different person is within this of the best; "
            "calibrated with the threshold."
        ),
    )
    face_encoder: str = Field(
        "onnx",
        description=(
            "Face descriptor backend: onnx (dlib's ResNet read from its model file and run "
            "by onnxruntime, about 14 times faster) or dlib (the same network in dlib-bin). "
            "Both give the same descriptors (within 1e-5), so templates on file stay valid."
        ),
    )
    face_encoder_processes: int | None = Field(
        None,
        ge=0,
        le=16,
        description=(
            "Worker processes that compute face descriptors (dlib holds Python's lock while "
            "it computes one, so the web process would answer nothing else meanwhile); 0: in "
            "the web process; unset: one per core for the dlib encoder, except under test "
            "(0), and 0 for onnx (onnxruntime lets go of the lock while it computes)."
        ),
    )
    plate_reader: str = Field("agentclpr", description="Plate reader backend.")
    local_province: str = Field(
        "闽", min_length=1, max_length=1, description="Province of local plates (matching prior)."
    )

    @model_validator(mode="after")
    def _known_backends(self) -> VisionSettings:
        from fengchao.vision.faces import FACE_DETECTORS, FACE_ENCODERS
        from fengchao.vision.plate_rules import PROVINCES
        from fengchao.vision.plates import PLATE_READERS

        for value, registry, what in (
            (self.face_detector, FACE_DETECTORS, "face_detector"),
            (self.face_encoder, FACE_ENCODERS, "face_encoder"),
            (self.plate_reader, PLATE_READERS, "plate_reader"),
        ):
            if value not in registry:
                known = ", ".join(sorted(registry))
                raise ValueError(f"vision.{what}: unknown backend {value!r} (known: {known})")
        if self.local_province not in PROVINCES:
            raise ValueError(f"vision.local_province: {self.local_province!r} is not a province")
        return self


class LoginSettings(BaseModel):
    """Throttling of failed logins and where the client address comes from."""

    model_config = ConfigDict(extra="forbid")

    free_failures: int = Field(
        3, ge=0, le=20, description="Failed logins of one account name answered without a wait."
    )
    lock_after: int = Field(
        10, ge=2, le=100, description="Failed logins of one account name that lock it."
    )
    lock_minutes: int = Field(15, ge=1, le=24 * 60, description="How long a lock lasts.")
    address_free_failures: int = Field(
        30,
        ge=0,
        le=1000,
        description=(
            "Failed logins from one client address answered without a wait; higher than "
            "free_failures because a whole gate team may share one NAT address."
        ),
    )
    max_wait_seconds: int = Field(
        300, ge=1, le=3600, description="Longest wait between attempts (before a lock)."
    )
    forgive_minutes: int = Field(
        10, ge=1, le=24 * 60, description="One counted failure is forgiven per this many minutes."
    )
    trust_forwarded_for: bool = Field(
        False,
        description=(
            "Take the client address from the last X-Forwarded-For entry. Only behind a "
            "reverse proxy that appends it; otherwise any client could choose its address."
        ),
    )


class NotifySettings(BaseModel):
    """Notifications: the outbox worker, its retries and limits, and which robot addresses
    may be reached."""

    model_config = ConfigDict(extra="forbid")

    public_url: str = Field(
        "",
        description=(
            "The address people open the platform at (https://fengchao.example.org): links "
            "in chat messages point there. Empty: the address `serve` listens on, or none."
        ),
    )
    allow_private_networks: bool = Field(
        False,
        description=(
            "Let robot and webhook addresses point at loopback or private networks (an "
            "intranet's own webhook receiver). Link-local addresses are refused always."
        ),
    )
    poll_seconds: float = Field(
        1.0, gt=0, le=60, description="How often an idle worker looks for due work."
    )
    timeout_seconds: float = Field(
        10.0, gt=0, le=120, description="How long one request to a chat service may take."
    )
    max_attempts: int = Field(
        8, ge=1, le=50, description="Attempts of one delivery before it is dead-lettered."
    )
    retry_base_seconds: float = Field(
        30.0, gt=0, description="Wait after the first failure; doubled after each one."
    )
    retry_max_seconds: float = Field(3600.0, gt=0, description="Longest wait between attempts.")
    lease_seconds: float = Field(
        60.0,
        ge=1,
        description=(
            "How long a worker owns a claimed delivery, a job or (on SQLite) the one worker "
            "lease without renewing it; a killed worker's work is taken up after it."
        ),
    )
    sender_threads: int = Field(
        4, ge=1, le=32, description="Chats a worker sends to at the same time."
    )
    keep_days: int = Field(
        90, ge=1, description="Notifications, inbox entries and deliveries are kept this long."
    )
    tests_per_hour: int = Field(
        20, ge=1, description="Test messages one account may send in an hour."
    )

    @model_validator(mode="after")
    def _lease_outlives_a_request(self) -> NotifySettings:
        # A delivery must be answered (or time out) well within its lease, or a second
        # worker would take it over while the first is still sending.
        if self.lease_seconds <= 2 * self.timeout_seconds:
            raise ValueError("notify.lease_seconds must be more than twice timeout_seconds")
        return self


class AccessSettings(BaseModel):
    """Gates: temperature, the household quota, health rules, device clocks, the console
    PIN and how long the access record is kept."""

    model_config = ConfigDict(extra="forbid")

    fever_celsius: float = Field(
        37.3, ge=36.0, le=40.0, description="A temperature at or above this is a fever."
    )
    quota_persons: int = Field(
        1, ge=1, le=20, description="Passes out per household and period under closed management."
    )
    quota_days: int = Field(2, ge=1, le=14, description="Length of a quota period in days.")
    no_exit_health: list[str] = Field(
        default_factory=lambda: ["home_isolation", "central_isolation", "positive"],
        description="Health statuses that may not go out.",
    )
    max_clock_skew_seconds: int = Field(
        300, ge=5, description="A device clock further off than this is flagged, not trusted."
    )
    late_after_seconds: int = Field(
        60, ge=1, description="An event older than this when it arrives is marked late."
    )
    masked_pair_seconds: float = Field(
        5.0, gt=0, le=60, description="Two frames of a masked face within this are one passage."
    )
    pin_max_failures: int = Field(5, ge=1, le=20, description="Wrong PINs before a lock.")
    pin_lock_minutes: int = Field(15, ge=1, description="How long a PIN stays locked.")
    event_keep_days: int = Field(
        90,
        ge=14,
        description=(
            "Days the access record is kept: tracing looks back 14 days, the rest covers "
            "reports and complaints; `fengchao purge` deletes older events."
        ),
    )


class VisitorSettings(BaseModel):
    """Visitors and couriers: how long their data is kept, and the form's rate limits."""

    model_config = ConfigDict(extra="forbid")

    keep_days: int = Field(
        28,
        ge=14,
        description=(
            "Days a visitor's pass and personal data are kept after the pass ends: tracing "
            "looks back 14 days, twice that covers a late-confirmed case; `fengchao purge` "
            "deletes older ones."
        ),
    )
    per_address_per_hour: int = Field(
        30, ge=1, description="Form submissions allowed per client address and hour."
    )
    per_phone_per_hour: int = Field(
        5, ge=1, description="Form submissions allowed per mobile number and hour."
    )
    min_fill_seconds: float = Field(
        3.0, ge=0, le=60, description="A form sent sooner than this after it was shown is refused."
    )


class GridworkSettings(BaseModel):
    """Grid work: how long sweep visits, finished help requests and reports' photos are kept."""

    model_config = ConfigDict(extra="forbid")

    visit_keep_days: int = Field(
        28,
        ge=14,
        description=(
            "Days a sweep's door-to-door records (who was home, fever, needs) are kept, and a "
            "sweep past its deadline with its checklist: what a worker confirms goes to the "
            "registry sooner; tracing looks back 14 days. `fengchao purge` deletes older ones."
        ),
    )
    closed_keep_days: int = Field(
        30,
        ge=7,
        description=(
            "Days a help request is kept after it was closed or cancelled, and a report after "
            "it was resolved (with its photo), for questions about how it was handled."
        ),
    )
    photo_keep_days: int = Field(
        30,
        ge=7,
        description="Days a report's photo is kept at most, whatever the report's state.",
    )


class Settings(BaseSettings):
    """The root of all settings; build it with :func:`get_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="FENGCHAO_", env_nested_delimiter="__", extra="ignore"
    )

    env: Literal["development", "test", "production"] = Field(
        "development", description="Deployment kind; production refuses default secrets."
    )
    data_dir: Path = Field(
        Path("data"), description="Folder for the SQLite file and the development keys."
    )
    database_url: str = Field(
        "", description="SQLAlchemy URL; empty means SQLite in data_dir/fengchao.db."
    )
    timezone: str = Field("Asia/Shanghai", description="Time zone that times are shown in.")
    default_language: Literal["zh_CN", "en"] = Field("zh_CN", description="UI language.")
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    imports: ImportSettings = Field(default_factory=ImportSettings)
    vision: VisionSettings = Field(default_factory=VisionSettings)
    login: LoginSettings = Field(default_factory=LoginSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    access: AccessSettings = Field(default_factory=AccessSettings)
    visitors: VisitorSettings = Field(default_factory=VisitorSettings)
    gridwork: GridworkSettings = Field(default_factory=GridworkSettings)

    @model_validator(mode="after")
    def _secrets(self) -> Settings:
        security = self.security
        if self.env == "production":
            if security.secret_key == DEV_SECRET or len(security.secret_key) < MIN_SECRET_LENGTH:
                raise ValueError(
                    f"production needs FENGCHAO_SECURITY__SECRET_KEY set to a random secret of "
                    f"at least {MIN_SECRET_LENGTH} characters"
                )
            if not security.data_key:
                raise ValueError("production needs FENGCHAO_SECURITY__DATA_KEY (base64, 32 bytes)")
        elif security.secret_key == DEV_SECRET or not security.data_key:
            # Never a constant from the source: anyone could decrypt a development database.
            keys = _development_keys(self.data_dir)
            if security.secret_key == DEV_SECRET:
                security.secret_key = keys["secret_key"]
            if not security.data_key:
                security.data_key = keys["data_key"]
        security.data_key_bytes()  # a malformed key fails at start, not at the first read
        return self

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'fengchao.db').as_posix()}"


def _development_keys(data_dir: Path) -> dict[str, str]:
    """Random keys kept in ``data_dir/keys.json`` (0600), made on first run and announced:
    losing the file makes the ID numbers stored with it unreadable."""
    path = data_dir / DEV_KEYS_FILE
    if path.exists():
        keys: dict[str, str] = json.loads(path.read_text())
        return keys
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    keys = {
        "secret_key": secrets.token_urlsafe(48),
        "data_key": base64.b64encode(secrets.token_bytes(32)).decode(),
    }
    draft = path.with_name(f".{DEV_KEYS_FILE}.{os.getpid()}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(keys, fh)
    try:
        os.link(draft, path)  # atomic, and refuses to replace keys another process made
    except FileExistsError:
        return _development_keys(data_dir)
    finally:
        draft.unlink()
    print(
        f"fengchao: generated random development keys in {path} (keep it with the database; "
        "production sets FENGCHAO_SECURITY__SECRET_KEY and FENGCHAO_SECURITY__DATA_KEY)",
        file=sys.stderr,
    )
    return keys


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
