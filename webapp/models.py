"""The rows: a Detection (one uploaded file, its job state and a summary of its result),
Batches (several files sent at once; one BatchItem per file) and who may see them: their
Owner, the optional User accounts, API tokens and share links.

The full result (per-frame scores, tracks, chips) is ``instance/results/<id>/result.json``;
the row keeps what the history page sorts, filters and shows. The schema is changed only by
migrations (``migrations/versions``), which the app applies at start-up.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .extensions import db

STATUSES = ("queued", "running", "done", "failed")
VERDICTS = ("real", "inconclusive", "fake", "no_face")

VERDICT_LABELS = {
    "real": "Likely real",
    "inconclusive": "Inconclusive",
    "fake": "Likely fake",
    "no_face": "No face found",
}

STAGE_LABELS = {
    "queued": "Waiting in the queue",
    "download": "Downloading the link",
    "load": "Loading the model",
    "decode": "Decoding frames",
    "detect": "Finding faces",
    "align": "Aligning faces",
    "features": "Extracting face features",
    "classify": "Scoring with the temporal model",
    "explain": "Drawing Grad-CAM explanations",
    "save": "Saving the results",
    "done": "Finished",
    "failed": "Failed",
}


#: ``sha256`` of a link's rows until the worker has its file: this prefix and the id of the
#: link's first row, so the rows of one link (one per model) stay together and never match
#: an upload's hash.
PENDING_LINK = "link:"


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; they were stored as UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class Detection(db.Model):
    __tablename__ = "detection"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    filename: Mapped[str] = mapped_column(String(255))  # the client's name, for display only
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(Integer)
    media_type: Mapped[str] = mapped_column(String(8))  # "video" | "image"
    #: Random name of the stored upload under UPLOAD_FOLDER; None once deleted.
    upload_name: Mapped[str | None] = mapped_column(String(64))
    #: The link the file was fetched from (``url=``), None for an upload. Until the worker
    #: has downloaded it, ``media_type`` is "link", ``sha256`` PENDING_LINK + an id, and
    #: ``size_bytes`` 0.
    source_url: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )

    # Job state.
    status: Mapped[str] = mapped_column(String(10), default="queued", index=True)
    stage: Mapped[str] = mapped_column(String(16), default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0)  # 0..1
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: "host:pid:runner" of the process whose queue holds this job (crash recovery). Not the
    #: person: that is ``owner_id``.
    owner: Mapped[str | None] = mapped_column(String(128))
    #: Who the detection belongs to (see :class:`Owner`): only they (and admins) see it.
    #: Rows made without one (tests, scripts) fall to the legacy owner: admins only.
    owner_id: Mapped[str] = mapped_column(
        String(32),
        ForeignKey("owner.id", name="fk_detection_owner_id"),
        index=True,
        default=lambda: LEGACY_OWNER_ID,
    )
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error_code: Mapped[str | None] = mapped_column(String(32))
    error_message: Mapped[str | None] = mapped_column(Text)

    # What probing found (before analysis).
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    duration: Mapped[float | None] = mapped_column(Float)
    fps: Mapped[float | None] = mapped_column(Float)
    frame_count: Mapped[int | None] = mapped_column(Integer)

    # Result summary.
    model_version: Mapped[str | None] = mapped_column(String(64))
    verdict: Mapped[str | None] = mapped_column(String(12), index=True)
    p_fake: Mapped[float | None] = mapped_column(Float)
    frames_sampled: Mapped[int | None] = mapped_column(Integer)
    faces_found: Mapped[int | None] = mapped_column(Integer)
    n_tracks: Mapped[int | None] = mapped_column(Integer)
    processing_seconds: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (
        Index("ix_detection_sha_version", "sha256", "model_version"),
        Index("ix_detection_owner_sha", "owner_id", "sha256"),
    )

    @property
    def awaiting_download(self) -> bool:
        """A detection from a link whose file has not been downloaded yet."""
        return bool(self.source_url) and self.sha256.startswith(PENDING_LINK)

    @property
    def kind_label(self) -> str:
        """"Clip", "Photo", or "Link" while the file is not downloaded yet."""
        if self.awaiting_download:
            return "Link"
        return "Clip" if self.media_type == "video" else "Photo"

    @property
    def is_pending(self) -> bool:
        return self.status in ("queued", "running")

    @property
    def verdict_label(self) -> str:
        if self.status == "failed":
            return "Failed"
        if self.is_pending:
            return "Analysing…" if self.status == "running" else "Queued"
        return VERDICT_LABELS.get(self.verdict or "", "Unknown")

    @property
    def band(self) -> str:
        """CSS colour band: a verdict, or "pending"/"failed"."""
        if self.status == "done" and self.verdict:
            return self.verdict
        return "failed" if self.status == "failed" else "pending"

    @property
    def stage_label(self) -> str:
        return STAGE_LABELS.get(self.stage, self.stage.capitalize())

    @property
    def created_utc(self) -> datetime:
        return as_utc(self.created_at)

    def __repr__(self) -> str:
        return f"<Detection {self.id} {self.status} {self.verdict}>"


# --------------------------------------------------------------------------- who sees what

OWNER_KINDS = ("anonymous", "user", "token", "public", "legacy")
#: The owner of the rows that existed before owners did (shown to admins only).
LEGACY_OWNER_ID = "legacy"
#: The owner of API calls made without a token on a site with ``PUBLIC_API``.
PUBLIC_OWNER_ID = "public"


class Owner(db.Model):
    """Whoever detections belong to: an anonymous browser (its signed cookie holds the id), a
    user account, a stand-alone API token, the tokenless public API, or the legacy rows."""

    __tablename__ = "owner"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    def __repr__(self) -> str:
        return f"<Owner {self.id} {self.kind}>"


class User(db.Model):
    """An optional account (``flask --app app users create NAME``). Flask-Login's user."""

    __tablename__ = "user"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(12), default="member")  # "member" | "admin"
    owner_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("owner.id", name="fk_user_owner_id"), unique=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    # Flask-Login's interface.
    is_active = True
    is_authenticated = True
    is_anonymous = False

    def get_id(self) -> str:
        return str(self.id)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def __repr__(self) -> str:
        return f"<User {self.username} {self.role}>"


class ApiToken(db.Model):
    """A bearer token for the API. Only its SHA-256 is stored; the token is shown once."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))  # the first characters, to tell tokens apart
    owner_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("owner.id", name="fk_api_token_owner_id"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("user.id", name="fk_api_token_user_id", ondelete="CASCADE")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class ShareLink(db.Model):
    """A read-only link to one result (``/shared/<token>``), revocable, optionally expiring."""

    __tablename__ = "share_link"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    detection_id: Mapped[str] = mapped_column(
        String(32),
        ForeignKey("detection.id", name="fk_share_link_detection_id", ondelete="CASCADE"),
        index=True,
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    def usable(self, now: datetime | None = None) -> bool:
        now = now or utcnow()
        expires = as_utc(self.expires_at)
        return self.revoked_at is None and (expires is None or expires > now)


# --------------------------------------------------------------------------- batches


class Batch(db.Model):
    """Several files sent at once (the form's multi-file upload, ``POST /api/v1/batches``).

    Each file is still its own Detection; the batch keeps one :class:`BatchItem` per file
    sent, in order, including those refused at the door (with the reason), so nothing the
    user sent goes unmentioned. Seen by its owner (and admins) only, like a detection.
    """

    __tablename__ = "batch"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("owner.id", name="fk_batch_owner_id"), index=True
    )
    #: A label the sender chose (optional; pages fall back to "Batch of N files").
    name: Mapped[str | None] = mapped_column(String(120))
    file_count: Mapped[int] = mapped_column(Integer)  # files sent, accepted or not
    #: The model versions every file is judged by, comma-separated, the one each item's
    #: detection is by first; None: one model (the item's). See services.batches.
    models: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )
    items: Mapped[list[BatchItem]] = relationship(
        back_populates="batch",
        order_by="BatchItem.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    @property
    def title(self) -> str:
        return self.name or f"Batch of {self.file_count} file{'' if self.file_count == 1 else 's'}"

    @property
    def model_versions(self) -> list[str]:
        """The versions the batch asked for when it asked for several, else []."""
        return [v for v in (self.models or "").split(",") if v]

    @property
    def created_utc(self) -> datetime:
        return as_utc(self.created_at)

    def __repr__(self) -> str:
        return f"<Batch {self.id} {self.file_count} files>"


class BatchItem(db.Model):
    """One file of a batch: the detection it became, or why it was refused.

    ``detection_id`` is None when the file was refused (``error_code``/``error_message``) or
    when its detection has since been deleted. Two items may name the same detection: the
    same file sent twice, or a file already analysed with the same model (``reused``).
    """

    __tablename__ = "batch_item"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[str] = mapped_column(
        String(32),
        ForeignKey("batch.id", name="fk_batch_item_batch_id", ondelete="CASCADE"),
        index=True,
    )
    position: Mapped[int] = mapped_column(Integer)  # 0-based order in which the files came
    filename: Mapped[str] = mapped_column(String(255))  # the client's name, for display only
    size_bytes: Mapped[int | None] = mapped_column(Integer)
    detection_id: Mapped[str | None] = mapped_column(
        String(32),
        ForeignKey("detection.id", name="fk_batch_item_detection_id", ondelete="SET NULL"),
        index=True,
    )
    reused: Mapped[bool] = mapped_column(Boolean, default=False)
    error_code: Mapped[str | None] = mapped_column(String(32))
    error_message: Mapped[str | None] = mapped_column(Text)

    batch: Mapped[Batch] = relationship(back_populates="items")
    detection: Mapped[Detection | None] = relationship()

    __table_args__ = (UniqueConstraint("batch_id", "position", name="uq_batch_item_position"),)

    @property
    def rejected(self) -> bool:
        return self.error_code is not None
