"""The upload form. Flask-WTF gives it a CSRF token.

The extension check here is only the first, cheap filter; the file is accepted only if the
engine's ``probe_media`` can open it (see :func:`webapp.services.create_detection`).
"""

from __future__ import annotations

from flask import request
from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField, FileRequired
from wtforms import SubmitField
from wtforms.validators import StopValidation

from .config import ALLOWED_EXTENSIONS

ACCEPT_ATTR = ",".join(f".{ext}" for ext in ALLOWED_EXTENSIONS) + ",video/*,image/*"

FORMATS_MESSAGE = (
    "This type of file is not supported. Upload a video (MP4, MOV, AVI, MKV, WebM) "
    "or a photo (JPEG, PNG, WebP, BMP)."
)


def one_file(form, field) -> None:
    """Refuse a field holding several files (the form would silently keep the first)."""
    if len([f for f in request.files.getlist(field.name) if f.filename]) > 1:
        raise StopValidation("Upload one file at a time: the form held several files.")


class UploadForm(FlaskForm):
    file = FileField(
        "Video clip or photo",
        validators=[
            one_file,
            FileRequired("Choose a video clip or a photo to analyse."),
            FileAllowed(ALLOWED_EXTENSIONS, FORMATS_MESSAGE),
        ],
        render_kw={"accept": ACCEPT_ATTR},
    )
    submit = SubmitField("Analyse")
