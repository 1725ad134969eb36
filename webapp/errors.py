"""Error pages in the site's look for browsers, JSON under /api/, and security headers."""

from __future__ import annotations

from flask import Flask, Response, current_app, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError, ServiceUnavailable

from .services.batches import too_large_message as batch_too_large_message
from .services.database import BUSY_MESSAGE, is_locked_error
from .services.intake import request_too_large_message
from .services.storage import InsufficientStorage, is_storage_error

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

TITLES = {
    400: "That request didn't work",
    401: "Sign-in needed",
    403: "Only its owner can do that",
    404: "Page not found",
    405: "Method not allowed",
    413: "That file is too large",
    415: "Unsupported file type",
    429: "Slow down a little",
    500: "Something broke on our side",
    503: "The server is busy",
    507: "The server is out of storage",
}

CODES = {
    400: "bad_request",
    401: "auth_required",
    403: "not_owner",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media",
    429: "rate_limited",
    500: "internal_error",
    503: "busy",
    507: "storage_error",
}


def wants_json() -> bool:
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return (
        best == "application/json"
        and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]
    )


def message_for(err: HTTPException) -> str:
    code = err.code or 500
    if isinstance(err, CSRFError):
        return (
            "The form had expired or was sent from another site, so it was refused. "
            "Reload the page and try again."
        )
    if code == 413 and request.endpoint == "api.create_batch":
        return batch_too_large_message()
    if code == 413:  # the upload form takes one file, or several at once (a batch)
        return request_too_large_message(batch_form=request.endpoint == "upload.upload")
    if code == 429 and request.endpoint == "account.signin":
        return (
            "Too many sign-in attempts from your address (limit: "
            f"{current_app.config['SIGNIN_RATE_LIMIT'].replace(';', ', ')}). "
            "Wait a minute, then try again."
        )
    if code == 429 and (request.endpoint or "").startswith("report."):
        return (
            "You have downloaded many PDF reports in a short time (limit: "
            f"{current_app.config['REPORT_RATE_LIMIT'].replace(';', ', ')}). "
            "Wait a minute, then try again."
        )
    if code == 429:
        return (
            f"You have uploaded many files in a short time (limit: "
            f"{current_app.config['UPLOAD_RATE_LIMIT'].replace(';', ', ')}). "
            "Please wait a minute and try again."
        )
    if code == 404:
        return (
            "There is nothing here. The detection may have been deleted or made in another "
            "browser (sign in if it is in your account), or the link is mistyped, revoked or "
            "expired."
        )
    if code == 500:
        return "An unexpected error stopped this page. It has been logged. Please try again later."
    if code == 503:
        return BUSY_MESSAGE
    return err.description or "The request could not be handled."


def error_response(err: HTTPException) -> tuple[Response | str, int]:
    code = err.code or 500
    message = message_for(err)
    if wants_json():
        error_code = "csrf_failed" if isinstance(err, CSRFError) else CODES.get(code, "error")
        if code == 413 and request.endpoint == "api.create_batch":
            error_code = "batch_too_large"
        return jsonify(error={"code": error_code, "status": code, "message": message}), code
    return render_template(
        "errors/error.html", code=code, title=TITLES.get(code, err.name), message=message
    ), code


def set_security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault(
        "Permissions-Policy", "camera=(), microphone=(), geolocation=(), interest-cohort=()"
    )
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if current_app.config.get("HSTS"):
        headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    return response


def register(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException):
        return error_response(err)

    @app.errorhandler(Exception)
    def _unexpected(err: Exception):
        if is_storage_error(err):  # e.g. the request body could not be spooled to disk
            app.logger.error(
                "Storage full or not writable on %s %s: %s", request.method, request.path, err
            )
            return error_response(InsufficientStorage())
        if is_locked_error(err):  # SQLite still locked after its busy timeout
            app.logger.error("Database locked on %s %s: %s", request.method, request.path, err)
            response, status = error_response(ServiceUnavailable())
            return response, status, {"Retry-After": "30"}
        app.logger.exception("Unhandled error on %s %s", request.method, request.path)
        return error_response(InternalServerError())

    app.after_request(set_security_headers)
