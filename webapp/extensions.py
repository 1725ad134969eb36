"""Flask extensions, created without an app and bound in :func:`webapp.create_app`."""

from __future__ import annotations

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
csrf = CSRFProtect()
#: Per-client limits, in memory (one counter per server process). Only uploads are limited.
limiter = Limiter(key_func=get_remote_address)
