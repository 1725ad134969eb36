"""Accounts and API tokens from the command line (no web page creates them):

flask --app app users create NAME [--admin]     # asks for the password twice
flask --app app users list
flask --app app tokens create NAME [--user U]   # prints the token once
flask --app app tokens list
flask --app app tokens revoke ID
"""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import func, select

from . import auth
from .extensions import db
from .models import ApiToken, Detection, User

users = AppGroup("users", help="Optional accounts: create and list them.")
tokens = AppGroup("tokens", help="API tokens: create, list and revoke them.")


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


@users.command("create")
@click.argument("username")
@click.option("--admin", is_flag=True, help="Give the account the admin role (sees everything).")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input instead of prompting.",
)
def users_create(username: str, admin: bool, password_stdin: bool) -> None:
    """Create the account USERNAME (its password is asked for, then stored hashed)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt(
            f"Password for {username} (at least {auth.MIN_PASSWORD} characters)",
            hide_input=True,
            confirmation_prompt=True,
        )
    try:
        user = auth.create_user(username, password, "admin" if admin else "member")
    except auth.AccountError as err:
        _fail(str(err))
        return
    click.echo(f"Created {user.role} {user.username}. Sign in at /signin.")


@users.command("list")
def users_list() -> None:
    """List the accounts, their role and how many detections each has."""
    rows = db.session.execute(
        select(User.username, User.role, User.created_at, func.count(Detection.id))
        .outerjoin(Detection, Detection.owner_id == User.owner_id)
        .group_by(User.id)
        .order_by(User.username)
    ).all()
    if not rows:
        click.echo("No accounts. Create one with: flask --app app users create NAME")
    for name, role, created, count in rows:
        click.echo(f"{name:<24} {role:<7} {count:>6} detections  since {created:%Y-%m-%d}")


@tokens.command("create")
@click.argument("name")
@click.option("--user", "username", default=None, help="The account the token acts for.")
def tokens_create(name: str, username: str | None) -> None:
    """Create an API token called NAME and print it (once: only its hash is kept)."""
    user = None
    if username is not None:
        user = auth.find_user(username)
        if user is None:
            _fail(f"There is no user called {username!r} (see `flask --app app users list`).")
            return
    try:
        token, plain = auth.create_token(name, user)
    except auth.AccountError as err:
        _fail(str(err))
        return
    who = f"user {user.username}" if user else "its own detections"
    click.echo(f"Token {token.id} ({token.name}, for {who}). Copy it now; it is not shown again:")
    click.echo(plain)
    click.echo("Use it as: curl -H 'Authorization: Bearer <token>' .../api/v1/detections", err=True)


@tokens.command("list")
def tokens_list() -> None:
    """List the tokens (never the tokens themselves: only their first characters)."""
    rows = db.session.execute(
        select(ApiToken, User.username)
        .outerjoin(User, User.id == ApiToken.user_id)
        .order_by(ApiToken.id)
    ).all()
    if not rows:
        click.echo("No tokens. Create one with: flask --app app tokens create NAME [--user U]")
    for token, username in rows:
        state = f"revoked {token.revoked_at:%Y-%m-%d}" if token.revoked_at else "active"
        used = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never"
        click.echo(
            f"{token.id:>4}  {token.prefix}…  {token.name:<24} {username or '-':<16} "
            f"last used {used:<16}  {state}"
        )


@tokens.command("revoke")
@click.argument("token_id", type=int)
def tokens_revoke(token_id: int) -> None:
    """Revoke the token with id TOKEN_ID (see `tokens list`): it stops working at once."""
    try:
        token = auth.revoke_token(token_id)
    except auth.AccountError as err:
        _fail(str(err))
        return
    click.echo(f"Revoked token {token.id} ({token.name}).")


def register_account_cli(app: Flask) -> None:
    app.cli.add_command(users)
    app.cli.add_command(tokens)
