"""Accounts and API tokens. Both are optional: with neither, every browser is its own
anonymous owner (``webapp.owners``) and the API needs ``PUBLIC_API``.

- Accounts (``flask --app app users create NAME``): passwords hashed by werkzeug (scrypt),
  sessions by Flask-Login; the ``admin`` role sees and deletes every detection.
- API tokens (``flask --app app tokens create NAME [--user U]``): random, shown once, stored
  as a SHA-256 (a token has 256 random bits, so a fast hash is enough), revocable.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta

from flask import Flask, Response, current_app, g, jsonify, request
from sqlalchemy import select, update
from werkzeug.security import check_password_hash, generate_password_hash

from .extensions import db, login_manager
from .models import PUBLIC_OWNER_ID, ApiToken, Batch, Detection, Owner, User, as_utc, new_id, utcnow
from .owners import Identity, browser_identity, has_browser_owner

USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
MIN_PASSWORD = 10
TOKEN_PREFIX = "fp_"
ROLES = ("member", "admin")
#: A hash to check against when the user name is unknown, so a wrong name costs as much
#: time as a wrong password (no user-name discovery by timing).
_DUMMY_HASH = generate_password_hash(secrets.token_hex(16))


class AccountError(ValueError):
    """A bad user name, password or token request. ``str(err)`` says what to fix."""


# --------------------------------------------------------------------------- accounts


def create_user(username: str, password: str, role: str = "member") -> User:
    if not USERNAME.fullmatch(username or ""):
        raise AccountError(
            "A user name is 1 to 64 letters, digits or the characters _ . @ - "
            "(starting with a letter or digit)."
        )
    if role not in ROLES:
        raise AccountError(f"The role must be one of: {', '.join(ROLES)}.")
    if len(password or "") < MIN_PASSWORD:
        raise AccountError(f"The password must be at least {MIN_PASSWORD} characters long.")
    if find_user(username) is not None:
        raise AccountError(f"There is already a user called {username!r}.")
    owner = Owner(id=new_id(), kind="user")
    db.session.add(owner)
    db.session.flush()  # the owner row first: the user's foreign key points at it
    user = User(
        username=username,
        password_hash=generate_password_hash(password),
        role=role,
        owner_id=owner.id,
    )
    db.session.add(user)
    db.session.commit()
    return user


def find_user(username: str) -> User | None:
    return db.session.scalars(select(User).where(User.username == username)).first()


def check_credentials(username: str, password: str) -> User | None:
    """The user if the password is right, else None (same work either way)."""
    user = find_user(username)
    ok = check_password_hash(user.password_hash if user else _DUMMY_HASH, password or "")
    return user if user is not None and ok else None


def accounts_exist() -> bool:
    return db.session.scalar(select(User.id).limit(1)) is not None


def claim_detections(from_owner: str, user: User) -> int:
    """Move an anonymous browser's detections (and its batches) to the account it signs in to."""
    owner = db.session.get(Owner, from_owner)
    if from_owner == user.owner_id or owner is None or owner.kind != "anonymous":
        return 0
    res = db.session.execute(
        update(Detection).where(Detection.owner_id == from_owner).values(owner_id=user.owner_id)
    )
    db.session.execute(
        update(Batch).where(Batch.owner_id == from_owner).values(owner_id=user.owner_id)
    )
    db.session.commit()
    return res.rowcount or 0


@login_manager.user_loader
def _load_user(user_id: str) -> User | None:
    try:
        return db.session.get(User, int(user_id))
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- tokens


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(name: str, user: User | None = None) -> tuple[ApiToken, str]:
    """A new token (row, plain text). Without a user it gets an owner of its own."""
    name = (name or "").strip()
    if not name or len(name) > 64:
        raise AccountError("Give the token a name of 1 to 64 characters (what it is for).")
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    if user is None:
        owner = Owner(id=new_id(), kind="token")
        db.session.add(owner)
        db.session.flush()  # before the token that points at it
        owner_id = owner.id
    else:
        owner_id = user.owner_id
    token = ApiToken(
        name=name,
        token_hash=hash_token(plain),
        prefix=plain[:10],
        owner_id=owner_id,
        user_id=user.id if user else None,
    )
    db.session.add(token)
    db.session.commit()
    return token, plain


def revoke_token(token_id: int) -> ApiToken:
    token = db.session.get(ApiToken, token_id)
    if token is None:
        raise AccountError(f"There is no token with id {token_id} (see `tokens list`).")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        db.session.commit()
    return token


def token_identity(plain: str) -> Identity | None:
    token = db.session.scalars(
        select(ApiToken).where(ApiToken.token_hash == hash_token(plain))
    ).first()
    if token is None or not token.active:
        return None
    user = db.session.get(User, token.user_id) if token.user_id is not None else None
    now = utcnow()
    last = as_utc(token.last_used_at)
    if last is None or now - last > timedelta(minutes=1):
        token.last_used_at = now  # at most one write a minute per token
        db.session.commit()
    return Identity(
        token.owner_id,
        "token",
        bool(user and user.is_admin),
        user.username if user else None,
    )


# --------------------------------------------------------------------------- the API's door


def _unauthorized(code: str, message: str) -> Response:
    response = jsonify(error={"code": code, "status": 401, "message": message})
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


def _cross_site() -> bool:
    """A browser request sent by another site (a cookie must not act for it)."""
    if request.headers.get("Sec-Fetch-Site", "") in ("cross-site", "same-site"):
        return True
    origin = request.headers.get("Origin")
    return bool(origin) and origin.rstrip("/") != request.host_url.rstrip("/")


def api_identity() -> Response | None:
    """``before_request`` of the API: set ``g.identity`` or answer 401 (JSON).

    A bearer token always decides (a wrong or revoked one is refused even on a public site).
    Without one, only a ``PUBLIC_API`` site answers: as the browser's own owner when the
    request carries its cookie (not from another site), else as the shared public owner.
    """
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, plain = header.partition(" ")
        if scheme.lower() != "bearer" or not plain.strip():
            return _unauthorized(
                "invalid_token", "Send the token as 'Authorization: Bearer <token>'."
            )
        identity = token_identity(plain.strip())
        if identity is None:
            return _unauthorized(
                "invalid_token",
                "This API token is not valid: it is mistyped or has been revoked. Ask the "
                "site's administrator for a new one.",
            )
        g.identity = identity
        return None
    if not current_app.config.get("PUBLIC_API"):
        return _unauthorized(
            "auth_required",
            "This API needs a token: send 'Authorization: Bearer <token>'. The site's "
            "administrator creates one with `flask --app app tokens create NAME`.",
        )
    from flask_login import current_user

    if (current_user.is_authenticated or has_browser_owner()) and not _cross_site():
        g.identity = browser_identity()
    else:
        g.identity = Identity(PUBLIC_OWNER_ID, "public")
    return None


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "account.signin"
    login_manager.login_message = "Sign in to see that page."
    login_manager.login_message_category = "info"
