"""Share links of a finished result: the ones that still work, a new one, revoking one.

The routes (and what a link shows) are in ``webapp.blueprints.share``.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import select

from ..extensions import db
from ..models import Detection, ShareLink, utcnow


def links_of(det: Detection) -> list[ShareLink]:
    """The detection's links that still work, newest first."""
    rows = db.session.scalars(
        select(ShareLink)
        .where(ShareLink.detection_id == det.id, ShareLink.revoked_at.is_(None))
        .order_by(ShareLink.created_at.desc())
    ).all()
    return [link for link in rows if link.usable()]


def create_link(det: Detection, days: int | None) -> ShareLink:
    """A new link to ``det``, working for ``days`` days (None: until revoked)."""
    link = ShareLink(
        token=secrets.token_urlsafe(24),
        detection_id=det.id,
        expires_at=utcnow() + timedelta(days=days) if days else None,
    )
    db.session.add(link)
    db.session.commit()
    return link


def revoke(link: ShareLink) -> None:
    """Stop ``link`` from opening its result (again: nothing changes)."""
    if link.revoked_at is None:
        link.revoked_at = utcnow()
        db.session.commit()
