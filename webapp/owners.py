"""Who is asking, and which detections they may see.

Every detection belongs to an :class:`~webapp.models.Owner`. Who the requester is:

- a browser: an anonymous owner whose id is in a signed, HttpOnly, SameSite cookie, set on
  the first visit (the Owner row itself is written with the first upload, by
  ``webapp.services.database.ensure_owner``);
- a signed-in browser: the account's owner (Flask-Login; see ``webapp.auth``);
- an API call: its bearer token's owner, or, on a site configured with ``PUBLIC_API``, the
  browser's owner or else the shared "public" owner (see ``webapp.auth.api_identity``).

Admins see and delete everything, including the "legacy" rows made before owners existed.
Anyone else asking for a detection (or a batch) that is not theirs gets a 404, exactly as for
an id that does not exist.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import Flask, abort, current_app, g
from flask_login import current_user
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import Select, select
from sqlalchemy.orm import selectinload

from .extensions import db
from .models import Batch, BatchItem, Detection, new_id

COOKIE_NAME = "faceproof_owner"
COOKIE_SALT = "faceproof.owner"
COOKIE_MAX_AGE = timedelta(days=400)  # browsers cap a cookie's life at 400 days
OWNER_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class Identity:
    """The requester: whose detections they work with, and whether they see everyone's."""

    owner_id: str
    kind: str  # "anonymous" | "user" | "token" | "public"
    is_admin: bool = False
    username: str | None = None


# --------------------------------------------------------------------------- the cookie


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.secret_key, salt=COOKIE_SALT)


def sign_owner(owner_id: str) -> str:
    return _serializer().dumps(owner_id)


def cookie_owner(value: str | None) -> str | None:
    """The owner id in a cookie value, or None if absent, forged or malformed."""
    if not value:
        return None
    try:
        owner_id = _serializer().loads(value)
    except BadSignature:
        return None
    return owner_id if isinstance(owner_id, str) and OWNER_ID.fullmatch(owner_id) else None


def new_anonymous_owner() -> str:
    """Start a new anonymous owner for this browser (the cookie is set on the response)."""
    owner_id = new_id()
    g.new_owner_cookie = owner_id
    return owner_id


def browser_owner_id() -> str:
    """This browser's anonymous owner id, creating one on its first visit."""
    from flask import request

    if g.get("new_owner_cookie"):
        return g.new_owner_cookie
    return cookie_owner(request.cookies.get(COOKIE_NAME)) or new_anonymous_owner()


def has_browser_owner() -> bool:
    from flask import request

    return cookie_owner(request.cookies.get(COOKIE_NAME)) is not None


def _set_cookie(response: Any) -> Any:
    owner_id = g.get("new_owner_cookie")
    if owner_id:
        cfg = current_app.config
        response.set_cookie(
            COOKIE_NAME,
            sign_owner(owner_id),
            max_age=int(COOKIE_MAX_AGE.total_seconds()),
            httponly=True,
            samesite=cfg.get("SESSION_COOKIE_SAMESITE") or "Lax",
            secure=bool(cfg.get("SESSION_COOKIE_SECURE")),
            path="/",
        )
    return response


# --------------------------------------------------------------------------- identity


def browser_identity() -> Identity:
    """A browser's identity: its signed-in account, else its anonymous owner."""
    if current_user and current_user.is_authenticated:
        return Identity(current_user.owner_id, "user", current_user.is_admin, current_user.username)
    return Identity(browser_owner_id(), "anonymous")


def current_identity() -> Identity:
    """Who is asking (the API sets ``g.identity`` from its token before the view runs)."""
    identity = g.get("identity")
    if identity is None:
        identity = g.identity = browser_identity()
    return identity


# --------------------------------------------------------------------------- scoping


def visible(
    stmt: Select[Any], identity: Identity | None = None, owner_column: Any = Detection.owner_id
) -> Select[Any]:
    """``stmt`` (a select of detections, or of what ``owner_column`` belongs to: a batch)
    limited to what the requester may see."""
    identity = identity or current_identity()
    if identity.is_admin:
        return stmt
    return stmt.where(owner_column == identity.owner_id)


def can_see(row: Detection | Batch, identity: Identity | None = None) -> bool:
    identity = identity or current_identity()
    return identity.is_admin or row.owner_id == identity.owner_id


def get_visible_or_404(detection_id: str) -> Detection:
    """The requester's detection; 404 for one that is missing *or* someone else's."""
    det = db.session.get(Detection, detection_id)
    if det is None or not can_see(det):
        abort(404)
    return det


def get_visible_batch_or_404(batch_id: str) -> Batch:
    """The requester's batch with its items; 404 for one that is missing *or* someone else's."""
    batch = db.session.scalars(
        select(Batch)
        .where(Batch.id == batch_id)
        .options(selectinload(Batch.items).selectinload(BatchItem.detection))
    ).first()
    if batch is None or not can_see(batch):
        abort(404)
    return batch


def init_app(app: Flask) -> None:
    @app.before_request
    def _first_visit() -> None:
        """Name a new browser's anonymous owner on its first page (not on the API or files)."""
        from flask import request

        if request.blueprint != "api" and request.endpoint not in (None, "static"):
            current_identity()

    app.after_request(_set_cookie)
