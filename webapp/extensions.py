"""Flask extensions, created without an app and bound in :func:`webapp.create_app`."""

from __future__ import annotations

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
csrf = CSRFProtect()
migrate = Migrate()
#: Optional accounts (see ``webapp.auth``); the site works without any.
login_manager = LoginManager()
#: Per-client limits, in memory (one counter per server process): uploads and sign-in.
limiter = Limiter(key_func=get_remote_address)
