"""http_request may reach only the hosts allowed, as the HTTP client sees them,
and only public addresses unless a host is allowed to be private on purpose.

A real HTTP server on 127.0.0.1 records every request it gets, so a test
proves that a refused URL made no connection at all."""
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from flows import http as flow_http
from flows.compiled import clear_cache
from flows.models import Flow
from flows.runtime import FlowError, run_flow
from flows.versioning import DefinitionStatus
from orchestration.lifecycle import ActivationRefused, activate
from tests.flow_builders import autolaunched, make_flow, var

pytestmark = pytest.mark.django_db


class _Recorder(BaseHTTPRequestHandler):
    hits = []

    def do_GET(self):  # noqa: N802
        _Recorder.hits.append(self.path)
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        payload = b'{"reached": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def loopback_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    _Recorder.hits.clear()
    clear_cache()
    yield server.server_port
    server.shutdown()
    server.server_close()
    clear_cache()


def calling():
    """A flow that GETs the URL given as its input ``url``."""
    return autolaunched({"type": "http_request", "url": "{!url}", "into": "r", "timeout": 5},
                        {"type": "assign", "set": {"status": "r.status"}},
                        inputs=[var("url")], outputs=[var("status", "number")])


@pytest.mark.parametrize("separator", ["\\@", "\\\\@"])
def test_backslash_userinfo_bypass_from_a_flow_input_is_refused(loopback_server, settings, separator):
    settings.BATON_HTTP_ALLOWED_HOSTS = ["allowed.test"]
    url = f"http://127.0.0.1:{loopback_server}{separator}allowed.test/x"
    with pytest.raises(FlowError, match="backslashes") as info:
        run_flow(calling(), {"url": url})
    assert "element #1 (http_request)" in str(info.value)
    assert _Recorder.hits == []  # before the fix the server got GET /%5C@allowed.test/x


def test_backslash_userinfo_bypass_written_in_a_definition_is_refused_at_activation(loopback_server, settings):
    settings.BATON_HTTP_ALLOWED_HOSTS = ["allowed.test"]
    flow = make_flow(api_name="sneaky_call", elements=[
        {"type": "http_request", "url": f"http://127.0.0.1:{loopback_server}\\@allowed.test/{{!id}}"}],
        inputs=[var("id")])
    with pytest.raises(ActivationRefused) as info:
        activate(flow)
    assert "elements[0].url" in str(info.value) and "backslashes" in str(info.value)
    assert Flow.objects.get(pk=flow.pk).status == DefinitionStatus.DRAFT
    assert _Recorder.hits == []


@pytest.mark.parametrize("host, allowed, reason", [
    ("allowed.test@127.0.0.1:{port}", "127.0.0.1", "user names and passwords"),
    ("127.0.0.1:{port}@allowed.test", "allowed.test", "user names and passwords"),
    ("2130706433:{port}", "2130706433", "not a host name or a dotted IPv4 address"),
    ("0x7f000001:{port}", "0x7f000001", "not a host name or a dotted IPv4 address"),
    ("127.1:{port}", "127.1", "not a host name or a dotted IPv4 address"),
    ("0177.0.0.1:{port}", "0177.0.0.1", "not a host name or a dotted IPv4 address"),
    ("[::ffff:127.0.0.1]:{port}", "::ffff:127.0.0.1", "non-public address"),
    ("localhost:{port}", "allowed.test", "'localhost' is not in BATON_HTTP_ALLOWED_HOSTS"),
    ("localhost:{port}", "localhost", "non-public address 127.0.0.1"),
    ("127.0.0.1:{port}", "127.0.0.1", "non-public address 127.0.0.1"),
])
def test_loopback_spellings_are_refused(loopback_server, settings, host, allowed, reason):
    settings.BATON_HTTP_ALLOWED_HOSTS = [allowed]
    with pytest.raises(FlowError, match=reason):
        run_flow(calling(), {"url": f"http://{host.format(port=loopback_server)}/x"})
    assert _Recorder.hits == []


def test_a_private_host_allowed_on_purpose_is_called(loopback_server, settings):
    settings.BATON_HTTP_ALLOWED_HOSTS = ["localhost", "127.0.0.1"]
    settings.BATON_HTTP_ALLOW_PRIVATE_HOSTS = ["localhost"]
    assert run_flow(calling(), {"url": f"http://localhost:{loopback_server}/x"}) == {"status": 200.0}
    with pytest.raises(FlowError, match="non-public"):  # allowed, but not as a private host
        run_flow(calling(), {"url": f"http://127.0.0.1:{loopback_server}/y"})
    assert _Recorder.hits == ["/x"]


def test_redirects_are_not_followed(loopback_server, settings):
    settings.BATON_HTTP_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.BATON_HTTP_ALLOW_PRIVATE_HOSTS = ["127.0.0.1"]
    assert run_flow(calling(), {"url": f"http://127.0.0.1:{loopback_server}/redirect"}) == {"status": 302.0}
    assert _Recorder.hits == ["/redirect"]


def test_proxies_from_the_environment_are_not_used(loopback_server, settings, monkeypatch):
    # A proxy would be the real peer, outside every check.
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("http_proxy", "http://proxy.invalid:3128")
    settings.BATON_HTTP_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.BATON_HTTP_ALLOW_PRIVATE_HOSTS = ["127.0.0.1"]
    assert run_flow(calling(), {"url": f"http://127.0.0.1:{loopback_server}/direct"}) == {"status": 200.0}
    assert _Recorder.hits == ["/direct"]


def _fake_resolver(monkeypatch, answers):
    """Answer ``rebind.test`` from ``answers`` (one list of addresses per lookup)."""
    real = socket.getaddrinfo
    lookups = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host != "rebind.test":
            return real(host, port, *args, **kwargs)
        lookups.append(host)
        addresses = answers[min(len(lookups), len(answers)) - 1]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return lookups


def test_one_private_answer_among_public_ones_refuses_the_host(loopback_server, settings, monkeypatch):
    settings.BATON_HTTP_ALLOWED_HOSTS = ["rebind.test"]
    _fake_resolver(monkeypatch, [["93.184.215.14", "127.0.0.1"]])
    with pytest.raises(FlowError, match="non-public address 127.0.0.1"):
        run_flow(calling(), {"url": f"http://rebind.test:{loopback_server}/x"})
    assert _Recorder.hits == []


def test_the_connection_goes_to_the_address_checked(loopback_server, settings, monkeypatch):
    # The name is resolved once; a second answer (a rebinding resolver) is never asked for.
    settings.BATON_HTTP_ALLOWED_HOSTS = ["rebind.test"]
    settings.BATON_HTTP_ALLOW_PRIVATE_HOSTS = ["rebind.test"]
    lookups = _fake_resolver(monkeypatch, [["127.0.0.1"], ["10.255.255.1"]])
    assert run_flow(calling(), {"url": f"http://rebind.test:{loopback_server}/pinned"}) == {"status": 200.0}
    assert lookups == ["rebind.test"] and _Recorder.hits == ["/pinned"]


def test_the_connection_checks_its_own_host_against_the_allow_list():
    policy = flow_http.HostPolicy(frozenset({"allowed.test"}), frozenset())
    with pytest.raises(flow_http.RefusedURL, match="'127.0.0.1' is not in BATON_HTTP_ALLOWED_HOSTS"):
        flow_http.checked_addresses("127.0.0.1", 80, policy)


@pytest.mark.parametrize("address, public", [
    ("93.184.215.14", True), ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", True),
    ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False), ("224.0.0.1", False),
    ("::1", False), ("fe80::1", False), ("fc00::1", False), ("::ffff:127.0.0.1", False), ("::ffff:10.0.0.1", False),
])
def test_public_addresses(address, public):
    assert flow_http.is_public(address) is public
