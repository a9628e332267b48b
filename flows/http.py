"""Outbound HTTP for the ``http_request`` element: which URLs may be called,
and a connection that keeps to them.

Two checks, both needed:

* ``check_url`` reads the URL with urllib3's parser, the one requests uses to
  decide where to connect, and refuses anything a second parser could read
  differently (backslashes, user names, blanks, numeric host spellings) before
  comparing the host with ``BATON_HTTP_ALLOWED_HOSTS``. A URL that only looks
  allowed to ``urlsplit`` (``http://127.0.0.1:80\\@allowed.test/``) no longer
  passes.
* ``open_session`` gives a requests session whose connections check again at
  connect time: the host the socket is for must be allowed, and every address
  it resolves to must be public unless the host is listed in
  ``BATON_HTTP_ALLOW_PRIVATE_HOSTS``. The socket then connects to one of the
  addresses just checked, so a DNS answer that changes between the check and
  the connection (rebinding) cannot send it elsewhere. Proxies and netrc from
  the environment are ignored, since a proxy would be the real peer.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, LocationParseError, NewConnectionError
from urllib3.util import connection as urllib3_connection
from urllib3.util import parse_url

from .conf import baton_settings

SCHEMES = ("http", "https")
# Characters that parsers disagree on or that have no place in a host:
# backslash (WHATWG reads it as "/", RFC 3986 parsers do not), blanks and
# control characters.
_AMBIGUOUS = re.compile(r"[\\\s\x00-\x1f\x7f]")
# A last label that is a number makes WHATWG and inet_aton read the whole
# host as an IPv4 address (2130706433, 0x7f000001, 127.1, 0177.0.0.1).
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")


class RefusedURL(Exception):
    """A URL or an address the http_request element may not call. Not an
    OSError, so urllib3 and requests let it through unwrapped."""

    def __init__(self, message, host_not_allowed=None):
        super().__init__(message)
        self.host_not_allowed = host_not_allowed  # set when that is the reason


@dataclass(frozen=True)
class HostPolicy:
    allowed: frozenset  # "host" or "host:port", lower case
    private_allowed: frozenset  # hosts that may resolve to non-public addresses

    @classmethod
    def from_settings(cls):
        def names(setting):
            return frozenset(h.strip().lower() for h in getattr(baton_settings, setting) or [] if h.strip())

        return cls(names("BATON_HTTP_ALLOWED_HOSTS"), names("BATON_HTTP_ALLOW_PRIVATE_HOSTS"))

    def permits(self, host, port):
        host = host.lower()
        return host in self.allowed or (port is not None and f"{host}:{port}" in self.allowed)

    def refusal(self, host):
        return (f"host {host!r} is not in BATON_HTTP_ALLOWED_HOSTS "
                f"({', '.join(sorted(self.allowed)) or 'empty'})")


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # without IPv6 brackets, lower case
    port: int | None


def check_url(url, policy):
    """The scheme, host and port ``url`` connects to, or RefusedURL saying why
    not. Makes no network call (definitions are checked with it too)."""
    if not isinstance(url, str) or not url:
        raise RefusedURL("the URL is empty")
    if _AMBIGUOUS.search(url):
        raise RefusedURL(f"refused {url!r}: backslashes, spaces and control characters are not allowed in a URL")
    try:
        parsed = parse_url(url)
    except LocationParseError as exc:
        raise RefusedURL(f"refused {url!r}: not a valid URL ({exc})") from exc
    scheme = (parsed.scheme or "").lower()
    host = (parsed.host or "").lower()
    if scheme not in SCHEMES or not host:
        raise RefusedURL(f"refused {url!r}: only http and https URLs with a host may be called")
    authority = url.split("//", 1)[-1].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if parsed.auth is not None or "@" in authority:
        raise RefusedURL(f"refused {url!r}: user names and passwords in a URL are not allowed (send them in a header)")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if (urlsplit(url).hostname or "").lower() != host:
        raise RefusedURL(f"refused {url!r}: the host is ambiguous")
    _check_host_spelling(url, host)
    if not policy.permits(host, parsed.port):
        raise RefusedURL(f"refused {url!r}: {policy.refusal(host)}", host_not_allowed=host)
    return Target(scheme, host, parsed.port)


def _check_host_spelling(url, host):
    try:
        ipaddress.ip_address(host)
        return  # a canonical IPv4 or IPv6 address
    except ValueError:
        pass
    if _NUMERIC_LABEL.match(host.rstrip(".").rsplit(".", 1)[-1]):
        raise RefusedURL(f"refused {url!r}: {host!r} is not a host name or a dotted IPv4 address")


def is_public(address):
    ip = ipaddress.ip_address(address)
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def checked_addresses(host, port, policy):
    """The addresses ``host`` resolves to, all of them allowed by ``policy``,
    or RefusedURL. One non-public answer refuses the host (unless it may be
    private): a resolver under an attacker's control could list a public
    address first and a private one second."""
    if not policy.permits(host, port):
        raise RefusedURL(f"refused a connection to {host!r}: {policy.refusal(host)}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise RefusedURL(f"cannot resolve {host!r}: {exc}") from exc
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if host.lower() not in policy.private_allowed:
        private = [a for a in addresses if not is_public(a)]
        if private:
            raise RefusedURL(
                f"refused a connection to {host!r}: it resolves to the non-public address {private[0]} "
                f"(a loopback, private or link-local host must be listed in BATON_HTTP_ALLOW_PRIVATE_HOSTS)")
    return addresses


class _CheckedConnectionMixin:
    policy: HostPolicy

    def _new_conn(self):
        # Same as urllib3's, but connecting only to addresses checked just now.
        addresses = checked_addresses(self._dns_host, self.port, self.policy)
        last_error = None
        for address in addresses:
            try:
                return urllib3_connection.create_connection(
                    (address, self.port), self.timeout,
                    source_address=self.source_address, socket_options=self.socket_options)
            except OSError as exc:
                last_error = exc
        return self._fail_connect(last_error)

    def _fail_connect(self, error):
        if isinstance(error, TimeoutError):
            raise ConnectTimeoutError(self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})")
        raise NewConnectionError(self, f"Failed to establish a new connection: {error}")


class _PolicyAdapter(HTTPAdapter):
    def __init__(self, policy):
        http = type("CheckedHTTPConnection", (_CheckedConnectionMixin, HTTPConnection), {"policy": policy})
        https = type("CheckedHTTPSConnection", (_CheckedConnectionMixin, HTTPSConnection), {"policy": policy})
        self._pool_classes = {
            "http": type("CheckedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http}),
            "https": type("CheckedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https}),
        }
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pool_classes

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        raise RefusedURL("http_request does not use proxies")


def open_session(policy):
    """A requests session that can only reach what ``policy`` allows."""
    session = requests.Session()
    session.trust_env = False  # no proxies or netrc credentials from the environment
    session.adapters.clear()
    adapter = _PolicyAdapter(policy)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
