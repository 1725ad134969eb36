"""Private by default: each owner sees, downloads, shares and deletes only their own detections.

Two browsers (two cookie jars) and two API tokens try every route of the URL map against each
other's detections; accounts, the admin role, sign-in (CSRF, rate limit, claiming), tokens
(hashed, revocable), share links (read-only, revocable, expiring), per-owner dedup, and the
migration of an old database file.
"""

from __future__ import annotations

import io
import re
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import detection_id_from, make_app, owner_of, upload, wait_for_job

from webapp import auth
from webapp.extensions import db
from webapp.models import LEGACY_OWNER_ID, ApiToken, Detection, ShareLink, User, utcnow
from webapp.owners import COOKIE_NAME

PASSWORD = "correct horse battery"


@pytest.fixture
def app(tmp_path, model_dir, detector):
    """The site as deployed: the API needs a token (PUBLIC_API off)."""
    app = make_app(
        tmp_path, MODEL_DIR=str(model_dir), DETECTOR_LOADER=lambda _d: detector, PUBLIC_API=False
    )
    yield app
    app.extensions["detection_runner"].shutdown()


def browser(app, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def csrf(client, path: str = "/upload") -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)


def make_token(app, name: str, username: str | None = None) -> str:
    with app.app_context():
        user = auth.find_user(username) if username else None
        return auth.create_token(name, user)[1]


def make_user(app, name: str, role: str = "member") -> None:
    with app.app_context():
        auth.create_user(name, PASSWORD, role)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def api_upload(app, client, path: Path, name: str, token: str | None = None):
    with open(path, "rb") as fh:
        response = client.post(
            "/api/v1/detections",
            data={"file": (fh, name)},
            content_type="multipart/form-data",
            headers=bearer(token) if token else {},
        )
    assert response.status_code in (200, 202), response.get_data(as_text=True)
    return wait_for_job(app, response.json["id"])


def browser_upload(app, client, path: Path, name: str) -> Detection:
    return wait_for_job(app, detection_id_from(upload(client, path, name=name)))


def finish_batch(app, body: dict) -> str:
    for item in body["items"]:
        if item["detection_id"]:
            wait_for_job(app, item["detection_id"])
    return body["id"]


def batch_parts(paths: list[Path]) -> list[tuple]:
    """Several ``file`` parts, named "alice-secret-<n><suffix>"."""
    return [
        (io.BytesIO(path.read_bytes()), f"alice-secret-{n}{path.suffix}")
        for n, path in enumerate(paths)
    ]


def browser_batch(app, client, paths: list[Path]) -> str:
    """A batch through the form (several files); its id, once its jobs are done."""
    response = client.post(
        "/upload",
        data={"csrf_token": csrf(client), "name": "alice-batch", "file": batch_parts(paths)},
    )
    assert response.status_code == 303 and "/batches/" in response.headers["Location"]
    batch_id = response.headers["Location"].rsplit("/", 1)[-1]
    return finish_batch(app, client.get(f"/batches/{batch_id}/status").json)


def token_batch(app, client, paths: list[Path], token: str) -> str:
    response = client.post(
        "/api/v1/batches",
        data={"name": "alice-batch", "file": batch_parts(paths)},
        headers=bearer(token),
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    return finish_batch(app, response.json)


def sign_in(client, username: str, password: str = PASSWORD, token: str | None = None):
    return client.post(
        "/signin",
        data={
            "csrf_token": token or csrf(client, "/signin"),
            "username": username,
            "password": password,
        },
    )


def share(app, client, det_id: str, expires: str = "7") -> ShareLink:
    token = csrf(client, f"/results/{det_id}")
    response = client.post(
        f"/results/{det_id}/share", data={"csrf_token": token, "expires": expires}
    )
    assert response.status_code == 303
    with app.app_context():
        return db.session.scalars(
            db.select(ShareLink)
            .where(ShareLink.detection_id == det_id)
            .order_by(ShareLink.id.desc())
        ).first()


# --------------------------------------------------------------------------- every route


#: Routes without parameters: what each may show. Any other parameter fails the test below,
#: so a new route has to be classified here before it can ship.
PLAIN_ROUTES = {
    "/",
    "/healthz",
    "/upload",
    "/history",
    "/info",
    "/model",
    "/signin",
    "/signout",
    "/api/v1/detections",
    "/api/v1/batches",
}
KNOWN_PARAMS = {"detection_id", "batch_id", "name", "token", "filename"}


def attempts(app, victim_ids: list[str], link: ShareLink, batch_ids: list[str]):
    """(method, url, rule) for every route and method, aimed at the victim's detections and
    batches."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        unknown = set(rule.arguments) - KNOWN_PARAMS
        assert not unknown, f"{rule.rule}: classify this new route in test_privacy.py"
        methods = sorted(rule.methods - {"HEAD", "OPTIONS"})
        if not rule.arguments:
            assert rule.rule in PLAIN_ROUTES, f"{rule.rule}: classify this new route"
        for method in methods:
            if "token" in rule.arguments:  # a guessed (or revoked) share token
                for name in ("thumb.jpg", "chips/000.jpg"):
                    url = rule.rule.replace("<token>", "x" * 32).replace("<path:name>", name)
                    yield method, url, rule
                continue
            if "batch_id" in rule.arguments:
                for batch_id in batch_ids:
                    yield method, rule.rule.replace("<batch_id>", batch_id), rule
                continue
            for det_id in victim_ids if "detection_id" in rule.arguments else [None]:
                url = rule.rule.replace("<detection_id>", det_id or "")
                names = ["thumb.jpg", "chips/000.jpg", "heatmaps/000.jpg"]
                for name in names if "<path:name>" in url else [None]:
                    yield method, url.replace("<path:name>", name or ""), rule


def test_two_browsers_and_two_tokens_cannot_reach_each_others_detections(app, files):
    alice = browser(app, "198.51.100.1")
    bob = browser(app, "198.51.100.2")
    make_user(app, "tok-a")
    token_a, token_b = make_token(app, "alice-script"), make_token(app, "bob-script")

    mine = browser_upload(app, alice, files["clip"], "alice-secret-clip.mp4")
    by_token = api_upload(app, alice, files["photo_jpg"], "alice-secret-photo.jpg", token_a)
    link = share(app, alice, mine.id)
    web_batch = browser_batch(app, alice, [files["photo_png"], files["text_mp4"]])
    api_batch = token_batch(app, alice, [files["clip"], files["photo_jpg"]], token_a)
    bobs = browser_upload(app, bob, files["photo_png"], "bob-own.png")
    victims = [mine.id, by_token.id]
    batch_ids = [web_batch, api_batch]
    secrets_ = [
        "alice-secret", mine.id, by_token.id, mine.sha256[:16], link.token, *batch_ids,
        "alice-batch",
    ]

    bob_csrf = csrf(bob)
    tried = 0
    for who, client, headers in (("bob's browser", bob, {}), ("bob's token", bob, bearer(token_b))):
        for method, url, rule in attempts(app, victims, link, batch_ids):
            data = {
                "csrf_token": bob_csrf,
                "expires": "7",
                "link": str(link.id),
                "username": "tok-a",
                "password": "wrong password",
            }
            if (
                rule.rule
                in ("/upload", "/signin", "/signout", "/api/v1/detections", "/api/v1/batches")
                and method == "POST"
            ):
                continue  # no one's detection is involved (tested elsewhere)
            response = client.open(
                url, method=method, headers=headers, data=data if method == "POST" else None
            )
            tried += 1
            body = response.get_data(as_text=True)
            for secret in secrets_:
                assert secret not in body, f"{who}: {method} {url} shows {secret!r}"
            if rule.arguments:
                # Not 403: an id that exists and one that does not look the same. (The API
                # refuses a browser without a token before it looks at any id.)
                expected = 401 if url.startswith("/api/") and not headers else 404
                assert response.status_code == expected, f"{who}: {method} {url}: {response.status}"
            else:
                assert response.status_code in (200, 303, 401), f"{who}: {method} {url}"
    assert tried > 40

    # Lists show each their own; Bob's token sees nothing of Alice's, and vice versa.
    assert bobs.id in bob.get("/history").get_data(as_text=True)
    listed = bob.get("/api/v1/detections", headers=bearer(token_b)).json
    assert listed["total"] == 0
    assert bob.get("/api/v1/batches", headers=bearer(token_b)).json["total"] == 0
    batch_body = alice.get(f"/api/v1/batches/{api_batch}", headers=bearer(token_a)).json
    batch_dets = {item["detection_id"] for item in batch_body["items"]}
    assert by_token.id in batch_dets  # the token's photo again: its own stored result
    listed = alice.get("/api/v1/detections", headers=bearer(token_a)).json
    assert {d["id"] for d in listed["items"]} == {by_token.id} | batch_dets
    listed = alice.get("/api/v1/batches", headers=bearer(token_a)).json
    assert [b["id"] for b in listed["items"]] == [api_batch]  # not the browser's batch
    assert "alice-batch" not in bob.get("/history").get_data(as_text=True)

    # Nothing of Alice's was deleted, changed or revoked: she still reaches all of it.
    for url in (
        f"/results/{mine.id}",
        f"/results/{mine.id}/files/thumb.jpg",
        f"/results/{mine.id}/files/chips/000.jpg",
        f"/results/{mine.id}/result.json",
        f"/results/{mine.id}/frames.csv",
        f"/results/{mine.id}/status",
        f"/results/{mine.id}/compare",
        f"/shared/{link.token}",
        f"/batches/{web_batch}",
        f"/batches/{web_batch}/status",
        f"/batches/{web_batch}/export.csv",
        f"/batches/{web_batch}/export.json",
    ):
        assert alice.get(url).status_code == 200, url
    assert alice.get(f"/api/v1/batches/{api_batch}", headers=bearer(token_a)).status_code == 200
    assert alice.get(f"/batches/{api_batch}/export.csv", headers=bearer(token_a)).status_code == 200
    for url in (f"/api/v1/detections/{by_token.id}", f"/api/v1/detections/{by_token.id}/analyses"):
        assert alice.get(url, headers=bearer(token_a)).status_code == 200, url
    with app.app_context():
        assert (
            db.session.get(Detection, mine.id).owner_id
            != db.session.get(Detection, bobs.id).owner_id
        )
        assert db.session.get(ShareLink, link.id).revoked_at is None


def test_the_owner_cookie_is_signed_httponly_and_samesite(app, files):
    alice = app.test_client()
    response = alice.get("/")
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith(COOKIE_NAME))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Max-Age=" in cookie
    mine = browser_upload(app, alice, files["photo_jpg"], "mine.jpg")
    # A forged or altered cookie names nobody: the site starts a new owner instead.
    forger = app.test_client()
    owner = owner_of(alice)
    forger.set_cookie(COOKIE_NAME, owner)  # the bare id, unsigned
    assert forger.get(f"/results/{mine.id}").status_code == 404
    value = alice.get_cookie(COOKIE_NAME).value
    forger.set_cookie(COOKIE_NAME, value[:-2] + ("AA" if value[-2:] != "AA" else "BB"))
    assert forger.get(f"/results/{mine.id}").status_code == 404
    thief = app.test_client()  # the genuine cookie is the whole key (hence HttpOnly)
    thief.set_cookie(COOKIE_NAME, value)
    assert thief.get(f"/results/{mine.id}").status_code == 200


def test_identical_upload_by_someone_else_is_analysed_again_as_theirs(app, files, detector):
    alice, bob = app.test_client(), app.test_client()
    first = browser_upload(app, alice, files["photo_jpg"], "a.jpg")
    response = upload(bob, files["photo_jpg"], name="b.jpg", follow=True)
    html = response.get_data(as_text=True)
    assert "already analysed" not in html and first.id not in html
    bob_ids = re.findall(r"/results/([0-9a-f]{32})", html)
    assert bob_ids and first.id not in bob_ids
    wait_for_job(app, bob_ids[0])  # the job runs in the background: wait for it, then count
    assert len(detector.calls) == 2  # analysed twice, once per owner
    again = upload(alice, files["photo_jpg"], name="again.jpg", follow=True)  # but not twice
    assert "You already analysed this exact file" in again.get_data(as_text=True)
    assert len(detector.calls) == 2


# --------------------------------------------------------------------------- accounts


def test_users_cli_hashes_the_password_and_refuses_bad_input(app):
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["users", "create", "editor", "--password-stdin"], input=PASSWORD + "\n"
    )
    assert result.exit_code == 0, result.output
    assert "Created member editor" in result.output
    with app.app_context():
        user = auth.find_user("editor")
        assert PASSWORD not in user.password_hash and user.password_hash.startswith("scrypt:")
    for args, text, message in (
        (["editor"], PASSWORD, "already a user called"),
        (["new"], "short", "at least 10 characters"),
        (["bad name!"], PASSWORD, "A user name is"),
    ):
        result = runner.invoke(
            args=["users", "create", *args, "--password-stdin"], input=text + "\n"
        )
        assert result.exit_code == 1 and message in result.output, result.output
    listed = runner.invoke(args=["users", "list"])
    assert "editor" in listed.output and "member" in listed.output


def test_sign_in_claims_the_browsers_detections_and_follows_the_user(app, files):
    make_user(app, "editor")
    laptop = browser(app, "198.51.100.10")
    before = browser_upload(app, laptop, files["photo_jpg"], "before-signin.jpg")
    wrong = sign_in(laptop, "editor", "not the password")
    assert wrong.status_code == 401 and "Wrong user name or password" in wrong.get_data(
        as_text=True
    )
    unknown = sign_in(laptop, "nobody")
    assert unknown.status_code == 401 and "Wrong user name or password" in unknown.get_data(
        as_text=True
    )
    ok = sign_in(laptop, "editor")
    assert ok.status_code == 303
    page = laptop.get("/history").get_data(as_text=True)
    assert "before-signin.jpg" in page and "Signed in as editor" in page
    assert "now in your account" in page
    # The same account in another browser sees the same detections; a stranger does not.
    phone = browser(app, "198.51.100.11")
    assert phone.get(f"/results/{before.id}").status_code == 404
    sign_in(phone, "editor")
    assert phone.get(f"/results/{before.id}").status_code == 200
    # Signing out leaves the account's detections behind: the browser starts afresh.
    assert laptop.post("/signout", data={"csrf_token": csrf(laptop)}).status_code == 303
    assert laptop.get(f"/results/{before.id}").status_code == 404
    assert "before-signin.jpg" not in laptop.get("/history").get_data(as_text=True)


def test_admin_sees_and_deletes_everything_others_see_their_own(app, files):
    make_user(app, "root", "admin")
    make_user(app, "member")
    alice = app.test_client()
    mine = browser_upload(app, alice, files["photo_jpg"], "alice.jpg")
    with app.app_context():  # a row from before owners existed
        legacy = Detection(
            filename="legacy.mp4",
            sha256="1" * 64,
            size_bytes=1,
            media_type="video",
            status="failed",
            stage="failed",
        )
        db.session.add(legacy)
        db.session.commit()
        legacy_id = legacy.id
        assert legacy.owner_id == LEGACY_OWNER_ID
    member = app.test_client()
    sign_in(member, "member")
    assert member.get(f"/results/{legacy_id}").status_code == 404
    assert member.get(f"/results/{mine.id}").status_code == 404
    admin = app.test_client()
    sign_in(admin, "root")
    page = admin.get("/history").get_data(as_text=True)
    assert "alice.jpg" in page and "legacy.mp4" in page and "everyone" in page
    admin_token = make_token(app, "ops", "root")
    listed = admin.get("/api/v1/detections", headers=bearer(admin_token)).json
    assert {d["id"] for d in listed["items"]} == {mine.id, legacy_id}
    token = csrf(admin)
    assert admin.post(f"/results/{mine.id}/delete", data={"csrf_token": token}).status_code == 303
    assert alice.get(f"/results/{mine.id}").status_code == 404


def test_sign_in_and_out_need_the_csrf_token(app):
    make_user(app, "editor")
    client = browser(app, "198.51.100.20")
    refused = client.post("/signin", data={"username": "editor", "password": PASSWORD})
    assert refused.status_code == 400
    assert ">Sign out</button>" not in client.get("/history").get_data(as_text=True)
    sign_in(client, "editor")
    assert client.post("/signout", data={}).status_code == 400  # another site cannot sign you out
    assert ">Sign out</button>" in client.get("/history").get_data(as_text=True)  # still in
    # Every form on the pages a signed-in owner sees carries the token.
    html = "".join(client.get(u).get_data(as_text=True) for u in ("/", "/history", "/signin"))
    forms = re.findall(r"<form[^>]*method=\"post\"[^>]*>(.*?)</form>", html, re.S | re.I)
    assert len(forms) >= 3 and all('name="csrf_token"' in form for form in forms)


def test_sign_in_is_rate_limited_per_address(tmp_path, model_dir, detector):
    app = make_app(
        tmp_path,
        MODEL_DIR=str(model_dir),
        DETECTOR_LOADER=lambda _d: detector,
        SIGNIN_RATE_LIMIT="3 per minute",
    )
    try:
        make_user(app, "editor")
        attacker = browser(app, "203.0.113.77")
        token = csrf(attacker, "/signin")
        for _ in range(3):
            assert sign_in(attacker, "editor", "guess", token).status_code == 401
        blocked = sign_in(attacker, "editor", PASSWORD, token)  # even the right password
        assert blocked.status_code == 429
        assert "Too many sign-in attempts" in blocked.get_data(as_text=True)
        assert int(blocked.headers["Retry-After"]) > 0
        assert attacker.get("/signin").status_code == 200  # only the posts are counted
        other = browser(app, "203.0.113.78")
        assert sign_in(other, "editor").status_code == 303
    finally:
        app.extensions["detection_runner"].shutdown()


# --------------------------------------------------------------------------- API tokens


def test_api_needs_a_token_and_a_revoked_token_stops_working(app, files):
    client = app.test_client()
    for method, url in (
        ("GET", "/api/v1/detections"),
        ("POST", "/api/v1/detections"),
        ("GET", "/api/v1/detections/x"),
        ("DELETE", "/api/v1/detections/x"),
    ):
        response = client.open(url, method=method)
        assert response.status_code == 401, url
        assert response.json["error"]["code"] == "auth_required"
        assert "Authorization: Bearer" in response.json["error"]["message"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    runner = app.test_cli_runner()
    created = runner.invoke(args=["tokens", "create", "newsroom-bot"])
    assert created.exit_code == 0, created.output
    plain = next(line for line in created.output.splitlines() if line.startswith("fp_"))
    assert plain.startswith("fp_") and len(plain) > 40
    with app.app_context():  # only a hash is stored
        row = db.session.scalars(db.select(ApiToken)).one()
        assert row.token_hash != plain and plain not in row.token_hash
    listed = runner.invoke(args=["tokens", "list"])
    assert "newsroom-bot" in listed.output and plain not in listed.output
    det = api_upload(app, client, files["photo_jpg"], "bot.jpg", plain)
    assert client.get(f"/api/v1/detections/{det.id}", headers=bearer(plain)).status_code == 200
    thumb = client.get(f"/results/{det.id}/files/thumb.jpg", headers=bearer(plain))
    assert thumb.status_code == 200  # the API's file links work with the token
    for bad in ("Bearer fp_not-a-token", "Basic Zm9vOmJhcg==", "Bearer "):
        response = client.get("/api/v1/detections", headers={"Authorization": bad})
        assert response.status_code == 401 and response.json["error"]["code"] == "invalid_token"
    revoked = runner.invoke(args=["tokens", "revoke", str(row.id)])
    assert revoked.exit_code == 0 and "Revoked" in revoked.output
    gone = client.get(f"/api/v1/detections/{det.id}", headers=bearer(plain))
    assert gone.status_code == 401 and "revoked" in gone.json["error"]["message"]
    assert (
        client.get(f"/results/{det.id}/files/thumb.jpg", headers=bearer(plain)).status_code == 401
    )
    assert runner.invoke(args=["tokens", "revoke", "999"]).exit_code == 1
    assert runner.invoke(args=["tokens", "create", "x", "--user", "nobody"]).exit_code == 1


def test_user_token_acts_for_the_account(app, files):
    make_user(app, "editor")
    token = make_token(app, "editor-laptop", "editor")
    client = app.test_client()
    api_upload(app, client, files["photo_jpg"], "via-token.jpg", token)
    web = app.test_client()
    sign_in(web, "editor")
    assert "via-token.jpg" in web.get("/history").get_data(as_text=True)


def test_public_api_answers_without_a_token_but_keeps_owners_apart(
    tmp_path, model_dir, detector, files
):
    app = make_app(
        tmp_path, MODEL_DIR=str(model_dir), DETECTOR_LOADER=lambda _d: detector, PUBLIC_API=True
    )
    try:
        alice = app.test_client()
        mine = browser_upload(app, alice, files["photo_jpg"], "alice.jpg")
        # The browser's own API calls see its detections...
        assert alice.get(f"/api/v1/detections/{mine.id}").status_code == 200
        # ...but not when sent by another site, and a cookie-less caller sees none of them.
        evil = alice.delete(
            f"/api/v1/detections/{mine.id}",
            headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        )
        assert evil.status_code == 404
        anonymous = app.test_client(use_cookies=False)
        assert anonymous.get("/api/v1/detections").json["total"] == 0
        assert anonymous.get(f"/api/v1/detections/{mine.id}").status_code == 404
        assert alice.get(f"/results/{mine.id}").status_code == 200
        # A wrong token is refused even on a public site.
        assert anonymous.get("/api/v1/detections", headers=bearer("fp_x")).status_code == 401
    finally:
        app.extensions["detection_runner"].shutdown()


# --------------------------------------------------------------------------- share links


def test_share_link_is_read_only_revocable_and_expires(app, files):
    alice = app.test_client()
    mine = browser_upload(app, alice, files["clip"], "for-the-editor.mp4")
    link = share(app, alice, mine.id)
    assert len(link.token) >= 32
    page = alice.get(f"/results/{mine.id}").get_data(as_text=True)
    assert f"/shared/{link.token}" in page and "Revoke" in page
    editor = app.test_client()
    shared = editor.get(f"/shared/{link.token}")
    html = shared.get_data(as_text=True)
    assert shared.status_code == 200 and "for-the-editor.mp4" in html
    assert "/delete" not in html and "Create a share link" not in html
    assert "read-only copy" in html
    assert f"/results/{mine.id}" not in html  # no owner URLs leak into the shared page
    for url in re.findall(rf'(?:src|href)="(/shared/{link.token}/[^"]+)"', html):
        assert editor.get(url).status_code == 200, url
    shared_json = editor.get(f"/shared/{link.token}/result.json")
    assert shared_json.json["id"] == mine.id
    chip_urls = [c[k] for c in shared_json.json["result"]["chips"] for k in ("image_url", "heatmap_url") if k in c]
    assert chip_urls and all(f"/shared/{link.token}/" in u for u in chip_urls), chip_urls  # never owner URLs
    assert f"/results/{mine.id}" not in shared_json.get_data(as_text=True)
    assert editor.get(f"/shared/{link.token}/frames.csv").status_code == 200
    # The link opens this result only, nothing of the owner's.
    assert editor.get(f"/results/{mine.id}").status_code == 404
    assert "for-the-editor.mp4" not in editor.get("/history").get_data(as_text=True)
    assert editor.post(f"/shared/{link.token}", data={}).status_code in (400, 405)

    # Revoked: every URL of the link stops working.
    token = csrf(alice, f"/results/{mine.id}")
    revoked = alice.post(
        f"/results/{mine.id}/share/revoke", data={"csrf_token": token, "link": str(link.id)}
    )
    assert revoked.status_code == 303
    for suffix in ("", "/result.json", "/frames.csv", "/files/thumb.jpg"):
        assert editor.get(f"/shared/{link.token}{suffix}").status_code == 404, suffix

    # Expired: a link past its date stops working too.
    second = share(app, alice, mine.id, expires="1")
    assert second.expires_at is not None
    assert editor.get(f"/shared/{second.token}").status_code == 200
    with app.app_context():
        db.session.get(ShareLink, second.id).expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    assert editor.get(f"/shared/{second.token}").status_code == 404
    assert editor.get(f"/shared/{second.token}/files/thumb.jpg").status_code == 404
    # Deleting the detection deletes its links.
    alice.post(f"/results/{mine.id}/delete", data={"csrf_token": token})
    with app.app_context():
        assert db.session.scalars(db.select(ShareLink)).all() == []


def test_only_finished_results_can_be_shared(app, files, detector):
    detector.error = RuntimeError("boom")
    alice = app.test_client()
    failed = browser_upload(app, alice, files["photo_jpg"], "x.jpg")
    token = csrf(alice, f"/results/{failed.id}")
    response = alice.post(
        f"/results/{failed.id}/share", data={"csrf_token": token}, follow_redirects=True
    )
    assert "once its analysis has finished" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalars(db.select(ShareLink)).all() == []


# --------------------------------------------------------------------------- migrations

#: The schema every database had before owners existed (db.create_all() of that model).
OLD_SCHEMA = """
CREATE TABLE detection (
    id VARCHAR(32) NOT NULL, filename VARCHAR(255) NOT NULL, sha256 VARCHAR(64) NOT NULL,
    size_bytes INTEGER NOT NULL, media_type VARCHAR(8) NOT NULL, upload_name VARCHAR(64),
    created_at DATETIME NOT NULL, status VARCHAR(10) NOT NULL, stage VARCHAR(16) NOT NULL,
    progress FLOAT NOT NULL, attempts INTEGER NOT NULL, owner VARCHAR(128),
    started_at DATETIME, finished_at DATETIME, error_code VARCHAR(32), error_message TEXT,
    width INTEGER, height INTEGER, duration FLOAT, fps FLOAT, frame_count INTEGER,
    model_version VARCHAR(64), verdict VARCHAR(12), p_fake FLOAT, frames_sampled INTEGER,
    faces_found INTEGER, n_tracks INTEGER, processing_seconds FLOAT, PRIMARY KEY (id)
);
CREATE INDEX ix_detection_sha256 ON detection (sha256);
CREATE INDEX ix_detection_created_at ON detection (created_at);
CREATE INDEX ix_detection_verdict ON detection (verdict);
CREATE INDEX ix_detection_status ON detection (status);
CREATE INDEX ix_detection_sha_version ON detection (sha256, model_version);
"""


@pytest.fixture
def old_database(tmp_path) -> tuple[Path, list[tuple]]:
    """A SQLite file as the site wrote it before owners: three detections, no alembic table."""
    path = tmp_path / "old.sqlite"
    now = utcnow().strftime("%Y-%m-%d %H:%M:%S.%f")
    rows = [
        (
            f"{i:032x}",
            f"old-{i}.mp4",
            f"{i:064x}",
            1000 + i,
            "video",
            now,
            "done",
            "done",
            1.0,
            1,
            "real",
            0.1 * i,
        )
        for i in range(1, 4)
    ]
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD_SCHEMA)
        conn.executemany(
            "INSERT INTO detection (id, filename, sha256, size_bytes, media_type, created_at,"
            " status, stage, progress, attempts, verdict, p_fake)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    return path, rows


def test_migration_keeps_every_old_row_for_the_admin(tmp_path, model_dir, detector, old_database):
    path, rows = old_database
    settings = dict(
        MODEL_DIR=str(model_dir),
        DETECTOR_LOADER=lambda _d: detector,
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{path}",
    )
    app = make_app(tmp_path, **settings)
    try:
        with sqlite3.connect(path) as conn:
            kept = conn.execute(
                "SELECT id, filename, sha256, size_bytes, verdict, p_fake, owner_id"
                " FROM detection ORDER BY id"
            ).fetchall()
            version = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        assert [r[:4] for r in kept] == [(r[0], r[1], r[2], r[3]) for r in rows]
        assert [(r[4], r[5]) for r in kept] == [(r[10], r[11]) for r in rows]
        assert {r[6] for r in kept} == {LEGACY_OWNER_ID}
        assert version == [("0005_source_url",)]
        visitor = app.test_client()
        assert visitor.get(f"/results/{rows[0][0]}").status_code == 404
        assert "old-1.mp4" not in visitor.get("/history").get_data(as_text=True)
        make_user(app, "root", "admin")
        admin = app.test_client()
        sign_in(admin, "root")
        page = admin.get("/history").get_data(as_text=True)
        assert all(f"old-{i}.mp4" in page for i in range(1, 4))
    finally:
        app.extensions["detection_runner"].shutdown()
    again = make_app(tmp_path, **settings)  # a second start changes nothing
    try:
        with again.app_context():
            assert db.session.query(Detection).count() == 3
            assert db.session.query(User).count() == 1
    finally:
        again.extensions["detection_runner"].shutdown()


def test_migrations_build_exactly_the_models_schema(app):
    """A new database made by the migrations matches the models: nothing is left for
    ``flask db migrate`` to find, so the two cannot drift apart unnoticed."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with app.app_context(), db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, db.metadata) == []
