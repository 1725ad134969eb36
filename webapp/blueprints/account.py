"""Sign-in and sign-out for the optional accounts (created with ``flask --app app users``)."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_user, logout_user

from .. import auth
from ..extensions import limiter
from ..forms import SignInForm
from ..owners import browser_owner_id, has_browser_owner, new_anonymous_owner
from .results import safe_next

bp = Blueprint("account", __name__)


def signin_rate_limit() -> str:
    return current_app.config["SIGNIN_RATE_LIMIT"]


@bp.route("/signin", methods=["GET", "POST"])
@limiter.limit(signin_rate_limit, methods=["POST"], scope="signin")
def signin():
    form = SignInForm()
    if request.method == "GET":
        form.next.data = safe_next(request.args.get("next")) or ""
    status = 200
    if form.validate_on_submit():
        user = auth.check_credentials(form.username.data.strip(), form.password.data)
        if user is not None:
            claimed = auth.claim_detections(browser_owner_id(), user) if has_browser_owner() else 0
            login_user(user)
            message = f"Signed in as {user.username}."
            if claimed:
                message += (
                    f" The {claimed} detection{'s' if claimed != 1 else ''} made in this browser "
                    f"before signing in {'are' if claimed != 1 else 'is'} now in your account."
                )
            flash(message, "success")
            return redirect(safe_next(form.next.data) or url_for("history.index"), code=303)
        form.password.errors = ["Wrong user name or password."]
        status = 401
    elif form.is_submitted():
        status = 400
    return render_template(
        "account/signin.html",
        form=form,
        accounts=auth.accounts_exist(),
        signed_in=current_user.is_authenticated,
    ), status


@bp.post("/signout")
def signout():
    # The CSRF check (CSRFProtect) runs first: another site cannot sign you out.
    if current_user.is_authenticated:
        logout_user()
        new_anonymous_owner()  # this browser starts afresh; the account's history stays put
        flash("Signed out. Detections you make now belong to this browser only.", "info")
    return redirect(url_for("pages.index"), code=303)
