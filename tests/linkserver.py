"""A local web server for the link tests: a threading ``http.server`` on 127.0.0.1 and a free
port, serving the files of a folder plus a few routes that behave like the web does
(redirects, a page with a ``<video>``, a file sent without its length, a slow drip).

It records the headers of every request it gets, so tests can check what was (not) sent.
"""

from __future__ import annotations

import http.server
import ssl
import threading
import time
import urllib.parse
from pathlib import Path


class _Handler(http.server.SimpleHTTPRequestHandler):
    server: LinkServer.HTTPServer

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        owner: LinkServer = self.server.owner  # type: ignore[attr-defined]
        owner.requests.append((self.path, dict(self.headers.items())))
        parts = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        if parts.path == "/redirect":
            self.send_response(int(query.get("status", 302)))
            self.send_header("Location", query["to"])
            self.send_header("Set-Cookie", "session=secret; Path=/")
            self.end_headers()
            return
        if parts.path == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.end_headers()
            return
        if parts.path.startswith("/unsized/"):  # no Content-Length: the cap must cut it
            data = (Path(self.directory) / parts.path.removeprefix("/unsized/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
            return
        if parts.path.startswith("/slow/"):  # the whole file, with its length, over ~3 s
            data = (Path(self.directory) / parts.path.removeprefix("/slow/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            step = max(1, len(data) // 30)
            for i in range(0, len(data), step):
                self.wfile.write(data[i : i + step])
                self.wfile.flush()
                time.sleep(0.1)
            return
        if parts.path == "/stall":  # headers that never end, a line every half second
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\n")
            try:
                for i in range(40):
                    self.wfile.write(f"X-Wait-{i}: yes\r\n".encode())
                    self.wfile.flush()
                    time.sleep(0.5)
            except OSError:
                pass
            self.close_connection = True
            return
        if parts.path == "/drip":  # a byte every so often, for ever
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.end_headers()
            try:
                for _ in range(600):
                    self.wfile.write(b"\0" * 64)
                    self.wfile.flush()
                    time.sleep(0.05)
            except OSError:
                pass
            return
        super().do_GET()

    def guess_type(self, path):
        if str(path).endswith(".txt"):
            return "text/plain"
        return super().guess_type(path)


class LinkServer:
    """``with LinkServer(folder) as server: server.url("/clip.mp4")``."""

    def __init__(self, folder: Path, tls: tuple[Path, Path] | None = None):
        """``tls``: (certificate chain, key) to serve HTTPS instead of HTTP."""
        self.folder = folder
        self.scheme = "https" if tls else "http"
        self.requests: list[tuple[str, dict[str, str]]] = []

        def handler(*args, **kwargs):
            return _Handler(*args, directory=str(folder), **kwargs)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def __enter__(self) -> LinkServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def make_certificates(folder: Path, name: str) -> tuple[Path, Path, Path]:
    """A throw-away certificate authority and a server certificate for ``name`` signed by it
    (the ``openssl`` command): (CA certificate, server certificate, server key)."""
    import subprocess

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Test CA",
        "-keyout", "ca.key", "-out", "ca.pem")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", "server.key",
        "-out", "server.csr")
    (folder / "san.ext").write_text(f"subjectAltName=DNS:{name}\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.pem")
    return folder / "ca.pem", folder / "server.pem", folder / "server.key"
