"""Fetching a link safely: the address guard and a pinned HTTP client. No Flask, no database.

Safe by construction, for a server that fetches what strangers name:

- only ``http`` and ``https``, no user name or password in the URL;
- the host name is resolved once and *every* address it resolves to is checked against the
  private, loopback, link-local (cloud metadata: 169.254.169.254, fd00:ec2::254), multicast,
  reserved, shared (100.64/10) and unspecified ranges, IPv4 and IPv6 alike, IPv4 hidden in
  IPv6 too (mapped ``::ffff:a.b.c.d``, 6to4, NAT64, Teredo); one refused address refuses the
  name. Addresses in :attr:`Policy.allowed` (the LINK_ALLOWED_NETWORKS setting) are let
  through: a deployment that means to fetch from its own network says so;
- the connection goes to the address that was checked, never to a second look-up of the
  name (a name that answers a public address to the check and a private one to the
  connection, "DNS rebinding", gets nowhere); HTTPS still checks the certificate against
  the name;
- redirects are followed by hand, at most :attr:`Policy.max_redirects`, each hop checked as
  the first;
- no cookies, no credentials, no proxy from the environment; a timeout on every socket
  operation and on the whole download; the body is streamed to disk and cut at
  :attr:`Policy.max_bytes`.

Every refusal is a :class:`LinkError` whose message a person can act on.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ..detection.errors import DetectionError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

USER_AGENT = "Faceproof-link-check/1 (+deepfake detector; fetches one file per request)"
CHUNK = 256 * 1024
REDIRECTS = (301, 302, 303, 307, 308)
#: Ranges refused on top of what ``ipaddress`` calls not global (which already covers
#: private, loopback, link-local, shared 100.64/10, documentation, benchmarking, reserved).
EXTRA_BLOCKED: tuple[Network, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "224.0.0.0/4",  # multicast (is_global is True for some of it)
        "240.0.0.0/4",
        "255.255.255.255/32",
        "ff00::/8",
        "fd00:ec2::254/128",  # AWS metadata over IPv6 (ULA, also not global)
        "100.100.100.200/32",  # Alibaba Cloud metadata (inside 100.64/10)
    )
)


class LinkError(DetectionError):
    """A link that cannot be fetched; ``code`` names why, ``str(err)`` says what to do."""

    def __init__(self, message: str, code: str = "link_error"):
        super().__init__(message)
        self.code = code


def resolve_host(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (the system resolver), in its order, no repeats.
    Tests replace this (``monkeypatch``) to make a name resolve where they want."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as err:
        raise LinkError(
            f"The name {host!r} could not be found. Check the link for typing mistakes.",
            "unreachable",
        ) from err
    return list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))


@dataclass
class Policy:
    """What a fetch may do. ``allowed``: networks let through although private (the
    LINK_ALLOWED_NETWORKS setting); ``max_bytes``/``max_duration``: the upload limits."""

    max_bytes: int | None = None
    max_duration: float | None = None
    allowed: tuple[Network, ...] = ()
    timeout: float = 15.0  # seconds per socket operation
    total_seconds: float = 300.0  # seconds for the whole fetch
    #: ``time.monotonic()`` by which everything must be done (set by :meth:`start`); a
    #: connection still open then is cut, even one a server holds open byte by byte.
    deadline: float | None = None
    max_redirects: int = 5
    #: Name -> addresses; None: :func:`resolve_host` (looked up at each call, so tests may
    #: replace it).
    resolve: Callable[[str, int], list[str]] | None = None

    def start(self) -> Policy:
        """Start the clock of :attr:`total_seconds` (once; later calls keep it)."""
        if self.deadline is None:
            self.deadline = time.monotonic() + self.total_seconds
        return self

    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def too_slow(self) -> LinkError:
        return LinkError(
            f"The download took longer than {self.total_seconds:.0f} s and was stopped. The "
            "server is too slow; try again later, or download the file and upload it.",
            "unreachable",
        )

    @classmethod
    def from_settings(
        cls,
        allowed: Iterable[str] | str | None,
        **kwargs,
    ) -> Policy:
        return cls(allowed=parse_networks(allowed), **kwargs)


def parse_networks(value: Iterable[str] | str | None) -> tuple[Network, ...]:
    """``"127.0.0.1/32, 10.0.0.0/8"`` or a list of such: the networks. Raises ValueError."""
    if not value:
        return ()
    parts = value.split(",") if isinstance(value, str) else list(value)
    return tuple(ipaddress.ip_network(str(p).strip(), strict=False) for p in parts if str(p).strip())


# --------------------------------------------------------------------------- the guard


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64, Teredo), else None."""
    if ip.version != 6:
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in ipaddress.ip_network("64:ff9b::/96") or ip in ipaddress.ip_network("64:ff9b:1::/48"):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def refusal(ip: IPAddress, allowed: tuple[Network, ...] = ()) -> str | None:
    """Why ``ip`` may not be fetched from ("a private address", ...), None when it may."""
    if any(ip.version == net.version and ip in net for net in allowed):
        return None
    inner = embedded_ipv4(ip)
    if inner is not None:
        return refusal(inner, allowed)
    if ip.is_unspecified:
        return "a reserved address"
    if ip.is_loopback:
        return "a loopback address (this server itself)"
    if ip.is_link_local:
        return "a link-local address (where cloud metadata services live)"
    if ip.is_multicast or any(ip.version == n.version and ip in n for n in EXTRA_BLOCKED):
        return "a reserved or metadata address"
    if ip.is_private:
        return "a private network address"
    if ip.is_reserved or not ip.is_global:
        return "a reserved address"
    return None


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (``addresses``, every one checked) and what to ask."""

    url: str
    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...]


def check_url(url: str) -> urllib.parse.SplitResult:
    """The URL split, if its form is acceptable (scheme, host, no credentials)."""
    url = (url or "").strip()
    if not url:
        raise LinkError("Paste the link to a video, a photo or a page with a video.", "bad_url")
    if len(url) > 2048:
        raise LinkError("This link is longer than 2,048 characters; it cannot be fetched.", "bad_url")
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as err:
        raise LinkError("This is not a valid web address.", "bad_url") from err
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        shown = f"{scheme}://" if scheme else "no scheme"
        raise LinkError(
            f"Only http:// and https:// links can be checked (this one has {shown}). "
            "Paste the web address of the video, starting with https://.",
            "bad_scheme",
        )
    if not parts.hostname:
        raise LinkError("This link has no server name. Paste the full address.", "bad_url")
    if parts.username is not None or parts.password is not None:
        raise LinkError(
            "This link holds a user name or password; links with credentials are never "
            "fetched. Remove them (the part before @) or download the file and upload it.",
            "bad_url",
        )
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise LinkError("This link contains spaces or control characters.", "bad_url")
    return parts


def check_target(url: str, policy: Policy) -> Target:
    """Check the URL's form, resolve its name and check every address. Raises LinkError."""
    parts = check_url(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    resolve = policy.resolve or resolve_host
    addresses = [str(literal)] if literal is not None else resolve(host, port)
    if not addresses:
        raise LinkError(f"The name {host!r} has no address.", "unreachable")
    for address in addresses:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError as err:
            raise LinkError(f"The name {host!r} resolved to a malformed address.", "refused_address") from err
        why = refusal(ip, policy.allowed)
        if why is not None:
            raise LinkError(
                f"This link points to {why} ({host} is {address}), which this server does not "
                "fetch from, for safety. Use a public link, or download the file and upload it.",
                "refused_address",
            )
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(url, parts.scheme.lower(), host, port, path, tuple(addresses))


# --------------------------------------------------------------------------- the client


class _PinnedHTTP(http.client.HTTPConnection):
    """An HTTP connection to a checked address, whatever the name resolves to now, cut at
    the policy's deadline."""

    def __init__(self, target: Target, address: str, policy: Policy):
        super().__init__(target.host, target.port, timeout=policy.timeout)
        self._address = address
        self._policy = policy
        self.watchdog: threading.Timer | None = None

    def _open(self) -> socket.socket:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.watchdog = _watch(sock, self._policy)
        return sock

    def connect(self) -> None:
        self.sock = self._open()

    def close(self) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()
        super().close()


class _PinnedHTTPS(_PinnedHTTP, http.client.HTTPSConnection):
    """HTTPS to a checked address; the certificate is still checked against the name."""

    def __init__(self, target: Target, address: str, policy: Policy):
        http.client.HTTPSConnection.__init__(
            self, target.host, target.port, timeout=policy.timeout,
            context=ssl.create_default_context(),
        )
        self._address = address
        self._policy = policy
        self.watchdog = None

    def connect(self) -> None:
        self.sock = self._context.wrap_socket(self._open(), server_hostname=self.host)


#: Request headers never sent as asked, whoever asks (yt-dlp's format headers included):
#: credentials and cookies never, the Host is the checked URL's, the body comes unencoded.
FORBIDDEN_HEADERS = {"cookie", "authorization", "proxy-authorization", "host", "accept-encoding"}


def _request(target: Target, policy: Policy, method: str, headers: dict[str, str]):
    """Send one request to the first checked address that answers; the response."""
    sent = {"user-agent": USER_AGENT, "accept": "*/*"}
    sent |= {k.lower(): v for k, v in headers.items() if k.lower() not in FORBIDDEN_HEADERS}
    sent["accept-encoding"] = "identity"
    last: Exception | None = None
    policy.start()
    for address in target.addresses:
        if policy.expired():
            raise policy.too_slow()
        cls = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
        conn = cls(target, address, policy)
        try:
            conn.request(method, target.path, headers=sent)
            response = conn.getresponse()
        except ssl.SSLCertVerificationError as err:
            conn.close()
            raise LinkError(
                f"The site's certificate is not valid for {target.host} "
                f"({err.verify_message or 'not trusted'}), so nothing was fetched.",
                "unreachable",
            ) from err
        except ssl.SSLError as err:
            conn.close()
            raise LinkError(
                f"The secure connection to {target.host} failed ({err.reason or err}).",
                "unreachable",
            ) from err
        except (OSError, http.client.HTTPException) as err:
            conn.close()
            last = err
            continue
        response.pinned_connection = conn  # closed by close_response
        return response
    raise LinkError(
        f"The server at {target.host} could not be reached ({_why(last)}). Check the link, or "
        "try again later.",
        "unreachable",
    ) from last


def _watch(sock: socket.socket, policy: Policy) -> threading.Timer | None:
    """Cut ``sock`` at the policy's deadline (a blocked read then ends at once)."""
    if policy.deadline is None:
        return None

    def cut() -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(max(0.0, policy.deadline - time.monotonic()), cut)
    timer.daemon = True
    timer.start()
    return timer


def _why(err: Exception | None) -> str:
    if isinstance(err, TimeoutError | socket.timeout):
        return "no answer in time"
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    return type(err).__name__ if err else "no address answered"


def open_url(
    url: str, policy: Policy, *, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[http.client.HTTPResponse, str]:
    """GET (or HEAD) ``url`` following redirects by hand, each hop checked. Returns the
    final response (status below 300, the caller reads and closes it) and its URL.
    Raises LinkError: refused, unreachable, too many redirects, an HTTP error status."""
    for _hop in range(policy.max_redirects + 1):
        target = check_target(url, policy)
        try:
            response = _request(target, policy, method, headers or {})
        except LinkError:
            if policy.expired():
                raise policy.too_slow() from None
            raise
        if response.status in REDIRECTS:
            location = response.getheader("Location")
            close_response(response)
            if not location:
                raise LinkError("The server sent a redirect without saying where to.", "unreachable")
            url = urllib.parse.urljoin(url, location.strip())
            continue
        if response.status >= 400:
            close_response(response)
            raise LinkError(
                f"The server answered {response.status} {response.reason or ''}".rstrip()
                + f" for {target.host}: "
                + ("the file is not there (check the link)." if response.status in (404, 410)
                   else "it does not let us fetch this link."),
                "unreachable",
            )
        if response.status >= 300:
            close_response(response)
            raise LinkError(f"The server answered {response.status}, not a file.", "unreachable")
        return response, url
    raise LinkError(
        f"The link redirected more than {policy.max_redirects} times; it was not followed further.",
        "too_many_redirects",
    )


def close_response(response: http.client.HTTPResponse) -> None:
    """Close a response of :func:`open_url` and its connection."""
    response.close()
    conn = getattr(response, "pinned_connection", None)
    if conn is not None:
        conn.close()


def too_large_error(limit: int) -> LinkError:
    mb = limit / (1024 * 1024)
    return LinkError(
        f"The file at this link is larger than the {mb:.0f} MB limit. Trim the clip or find a "
        "smaller copy, then try again.",
        "too_large",
    )


@dataclass
class Download:
    """A body saved to disk: its size, SHA-256, content type and the URL it came from."""

    path: Path
    size: int
    sha256: str
    content_type: str
    url: str


def content_type(response: http.client.HTTPResponse) -> str:
    return (response.getheader("Content-Type") or "").split(";")[0].strip().lower()


def save_body(
    response: http.client.HTTPResponse,
    url: str,
    dest: Path,
    policy: Policy,
    progress: Callable[[int, int | None], None] | None = None,
) -> Download:
    """Stream the response body to ``dest`` (created), cut at ``policy.max_bytes``, by the
    policy's deadline. Closes the response. Raises LinkError (a body shorter than the
    server announced, or cut by the deadline, is never kept)."""
    limit = policy.max_bytes
    policy.start()
    try:
        total = int(response.getheader("Content-Length") or "")
    except ValueError:
        total = None
    try:
        if limit is not None and total is not None and total > limit:
            raise too_large_error(limit)
        digest = hashlib.sha256()
        size = 0
        with open(dest, "xb") as out:
            while chunk := _read(response, policy):
                size += len(chunk)
                if limit is not None and size > limit:
                    raise too_large_error(limit)
                if policy.expired():
                    raise policy.too_slow()
                digest.update(chunk)
                out.write(chunk)
                if progress is not None:
                    progress(size, total)
            if policy.expired():
                raise policy.too_slow()
            if total is not None and size < total:
                raise LinkError(
                    f"The connection broke during the download ({size:,} of {total:,} bytes "
                    "arrived). Try again later.",
                    "unreachable",
                )
    finally:
        close_response(response)
    if size == 0:
        raise LinkError("The link gave an empty file.", "not_media")
    return Download(dest, size, digest.hexdigest(), content_type(response), url)


def _read(response: http.client.HTTPResponse, policy: Policy) -> bytes:
    """What has arrived, up to CHUNK bytes (``read1``: no waiting for a full chunk, so the
    progress moves and the deadline is checked while a slow server sends)."""
    try:
        return response.read1(CHUNK)
    except (OSError, http.client.HTTPException, ValueError) as err:
        if policy.expired():  # cut by the watchdog
            raise policy.too_slow() from err
        raise LinkError(
            f"The connection broke during the download ({_why(err)}). Try again later.",
            "unreachable",
        ) from err
