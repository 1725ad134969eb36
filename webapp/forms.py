"""The forms: upload, sign-in, share links. Flask-WTF gives each a CSRF token.

The extension check here is only the first, cheap filter; the file is accepted only if the
engine's ``probe_media`` can open it (see :func:`webapp.services.intake.create_detection`).
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField
from wtforms import (
    HiddenField,
    PasswordField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from .config import ALLOWED_EXTENSIONS, FORMATS_MESSAGE

ACCEPT_ATTR = ",".join(f".{ext}" for ext in ALLOWED_EXTENSIONS) + ",video/*,image/*"

NO_INPUT_MESSAGE = "Choose a video clip or a photo to analyse, or paste a link to one."


class UploadForm(FlaskForm):
    """One file, or several: the view hands several files (a batch) to
    :func:`webapp.services.batches.create_batch`, which checks each one as a single upload
    is checked, with the same messages."""

    file = FileField(
        "Video clips or photos",
        validators=[FileAllowed(ALLOWED_EXTENSIONS, FORMATS_MESSAGE)],
        render_kw={"accept": ACCEPT_ATTR, "multiple": True},
    )
    # Links to fetch instead (or as well), one per line: services.links checks each one.
    urls = TextAreaField("Or check a link", validators=[Length(max=50_000)], default="")
    # A registry version; checked against the registry when the upload is stored
    # (services.intake.chosen_model). Empty: the default model.
    model = StringField("Model", validators=[Length(max=80)], default="")
    # "all" (the form's checkbox "Judge with every installed model") or a comma-separated
    # list of versions, as on the API (services.intake.chosen_models). Empty: one model.
    models = StringField("Models", validators=[Length(max=400)], default="")
    submit = SubmitField("Analyse")

    def validate(self, extra_validators=None) -> bool:
        """A file or a link is required (either field may be empty, not both)."""
        valid = super().validate(extra_validators)
        if not (self.file.data and getattr(self.file.data, "filename", "")) and not (
            self.urls.data or ""
        ).strip():
            self.file.errors = [*self.file.errors, NO_INPUT_MESSAGE]
            return False
        return valid


class SignInForm(FlaskForm):
    username = StringField(
        "User name",
        validators=[DataRequired("Enter your user name."), Length(max=64)],
        render_kw={"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false"},
    )
    password = PasswordField(
        "Password",
        validators=[DataRequired("Enter your password."), Length(max=1024)],
        render_kw={"autocomplete": "current-password"},
    )
    next = HiddenField()
    submit = SubmitField("Sign in")


#: How long a share link works, in days ("" = until revoked).
SHARE_EXPIRY = {"7": "7 days", "1": "1 day", "30": "30 days", "": "Until I revoke it"}


class ShareForm(FlaskForm):
    expires = SelectField(
        "Link works for",
        choices=[SelectChoice(value, label) for value, label in SHARE_EXPIRY.items()],
        default="7",
    )
    submit = SubmitField("Create a share link")


class RevokeShareForm(FlaskForm):
    link = HiddenField(validators=[DataRequired("Which link? Reload the page and try again.")])
    submit = SubmitField("Revoke")
