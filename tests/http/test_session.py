"""The session factory and IntegrationSession: defaults that hold whatever the caller
or the environment does (security.md #13-14, #20)."""

from __future__ import annotations

import ssl
import threading
from datetime import timedelta

import pytest
import requests
import trustme
from django.db import connection, connections
from django.utils import timezone

from integrations import services
from integrations.exceptions import IntegrationDisabled, RequestRefused
from integrations.http import create_session
from integrations.models import CallLog, Integration
from tests.loopback import LoopbackServer, Reply

pytestmark = pytest.mark.django_db


def test_paths_and_same_origin_urls_resolve_against_base_url(server, make_integration):
    """reference.md: a path is appended to base_url; an absolute URL on the same origin is fine."""
    server.route("GET", "/api/v3/user", lambda r: Reply(200, {}))
    make_integration(base_url=f"{server.url}/api/v3")
    session = services.get_session("billing")
    assert session.get("user").status_code == 200
    assert session.get(f"{server.url}/api/v3/user").status_code == 200


@pytest.mark.parametrize(
    "url",
    ["http://evil.example/api/x", "https://127.0.0.1:{port}/api/x", "http://u:p@127.0.0.1:{port}/x"],
)
def test_absolute_url_to_another_origin_is_refused(server, make_integration, url):
    """A session never sends its credentials to another host, scheme or userinfo."""
    make_integration(base_url=f"{server.url}/api/")
    with pytest.raises(RequestRefused, match="another host"):
        services.request("billing", "GET", url.format(port=server.port))
    assert server.requests == []


def test_user_agent_and_integration_headers_are_sent(server, make_integration):
    """The factory sets User-Agent; the integration's headers go on every call."""
    server.route("GET", "/api/x", lambda r: Reply(200, {}))
    make_integration(base_url=f"{server.url}/api/", headers={"Accept": "application/json"})
    services.request("billing", "GET", "x")
    sent = server.requests[0].headers
    assert sent["User-Agent"].startswith("django-integrations/")
    assert sent["Accept"] == "application/json"


def test_netrc_and_proxy_variables_change_nothing(server, make_integration, tmp_path, monkeypatch):
    """security.md #13: a ~/.netrc entry for the host and HTTP(S)_PROXY variables neither
    replace the Bearer token nor route the call elsewhere."""
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login alice password s3cret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(netrc))
    with LoopbackServer() as proxy:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "ALL_PROXY"):
            monkeypatch.setenv(name, proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        server.route("GET", "/api/x", lambda r: Reply(200, {}))
        make_integration(base_url=f"{server.url}/api/")
        services.request("billing", "GET", "x")
        assert proxy.requests == []
    assert server.requests[0].headers["Authorization"].startswith("Bearer ey")


def test_verify_false_cannot_be_passed_or_set(server, make_integration):
    """security.md #14: neither verify=False per call nor session.verify = False turns TLS
    verification off; both are refused before anything is sent."""
    make_integration(base_url=f"{server.url}/api/")
    with pytest.raises(RequestRefused, match="TLS verification cannot be turned off"):
        services.request("billing", "GET", "x", verify=False)
    session = create_session()
    session.verify = False
    with pytest.raises(RequestRefused):
        session.get(f"{server.url}/x")
    assert server.requests == []


def test_proxies_argument_is_refused(server, make_integration):
    """security.md #13: a proxy would bypass the address guard."""
    make_integration(base_url=f"{server.url}/api/")
    with pytest.raises(RequestRefused, match="proxies"):
        services.request("billing", "GET", "x", proxies={"http": "http://127.0.0.1:1"})


def test_cookies_are_never_kept_on_the_shared_session(server, make_integration):
    """security.md #20: the cookie jar is shared by threads, so it stays empty."""
    server.route("GET", "/api/x", lambda r: Reply(200, {}, {"Set-Cookie": "sid=abc; Path=/"}))
    make_integration(base_url=f"{server.url}/api/")
    session = services.get_session("billing")
    session.get("x")
    session.get("x")
    assert len(session.cookies) == 0 and "Cookie" not in server.requests[1].headers


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture
def tls_server(ca):
    with LoopbackServer() as srv:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("localhost", "127.0.0.1").configure_cert(ssl_context)
        srv.httpd.socket = ssl_context.wrap_socket(srv.httpd.socket, server_side=True)
        yield srv


def _hook(response, **kwargs):
    return response


@pytest.mark.parametrize(
    "kwargs",
    [
        {"method": "get", "url": "http://127.0.0.1:9/a?x=1"},
        {"method": b"POST", "url": "http://127.0.0.1:9/a", "json": {"a": [1, "é"]}},
        {"method": "POST", "url": "http://127.0.0.1:9/a", "data": {"k": "v", "n": None}},
        {"method": "PUT", "url": "http://127.0.0.1:9/a", "data": b"raw bytes"},
        {"method": "GET", "url": "http://127.0.0.1:9/a", "params": {"q": "a b", "none": None}},
        {"method": "GET", "url": "http://127.0.0.1:9/a?x=1", "params": [("q", "1"), ("q", "2")]},
        {"method": "GET", "url": "http://127.0.0.1:9/a", "params": "raw=1&y"},
        {"method": "GET", "url": "http://127.0.0.1:9/a", "headers": {"x-session": "mine"}},
        {"method": "GET", "url": "http://127.0.0.1:9/a", "headers": {"X-Session": None}},
        {"method": "GET", "url": "http://127.0.0.1:9/a", "auth": ("ann", "secret")},
        {"method": "GET", "url": "http://127.0.0.1:9/a", "cookies": {"sid": "1"}},
        {"method": "GET", "url": "http://127.0.0.1:9/a", "hooks": {"response": _hook}},
    ],
)
def test_lean_preparation_prepares_what_requests_would(kwargs):
    """GuardedSession.prepare_request skips requests' merging of cookies, params and
    environment (none apply to it): the prepared request is the same as requests' own."""
    session = create_session()
    session.headers["X-Session"] = "session"
    session.auth = requests.auth.HTTPBasicAuth("session", "pw")
    ours = session.prepare_request(requests.Request(**kwargs))
    theirs = requests.Session.prepare_request(session, requests.Request(**kwargs))
    assert (ours.method, ours.url, ours.body) == (theirs.method, theirs.url, theirs.body)
    assert list(ours.headers.items()) == list(theirs.headers.items())
    assert ours.hooks == theirs.hooks


def test_session_environment_settings_pass_through():
    """Without trust_env, stream/verify/cert come from the call or the session, and a
    proxy set to None (requests' way of saying "no proxy") is no proxy."""
    session = create_session(ca_bundle="/etc/ssl/certs/ca-certificates.crt")
    settings = session.merge_environment_settings(
        "http://127.0.0.1:9/", {"http": None}, None, None, None
    )
    assert settings == {
        "proxies": {},
        "stream": False,
        "verify": "/etc/ssl/certs/ca-certificates.crt",
        "cert": None,
    }
    assert session.merge_environment_settings("u", None, True, "/ca.pem", "c.pem") == {
        "proxies": {},
        "stream": True,
        "verify": "/ca.pem",
        "cert": "c.pem",
    }


def test_private_ca_needs_the_integrations_ca_bundle(tls_server, make_integration, ca, tmp_path):
    """security.md #14: a server signed by a private CA fails verification, and works once
    the integration names that CA's bundle."""
    tls_server.route("GET", "/api/x", lambda r: Reply(200, {"tls": True}))
    base = f"https://localhost:{tls_server.port}/api/"
    make_integration(base_url=base)
    with pytest.raises(requests.exceptions.SSLError):
        services.request("billing", "GET", "x")
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    make_integration("private", base_url=base, ca_bundle=str(bundle))
    assert services.request("private", "GET", "x").json() == {"tls": True}
    assert tls_server.requests[-1].bearer


@pytest.mark.django_db(transaction=True)
def test_32_threads_share_one_session(server, make_integration):
    """security.md #20: 32 threads calling through one session each get their own response,
    no errors, the same cached token, and (where the database takes concurrent writers)
    one log row per call."""
    def echo(request):
        return Reply(200, {"n": request.query["n"][0]})

    server.route("GET", "/api/echo", echo)
    # In-memory SQLite (shared cache) refuses concurrent writers outright; PostgreSQL
    # and file SQLite (bench/calls.py) take them.
    logging = connection.vendor != "sqlite"
    make_integration(base_url=f"{server.url}/api/", log_calls="all" if logging else "none")
    session = services.get_session("billing")
    threads, per_thread = 32, 10
    results: dict[int, str] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def work(t: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                n = t * per_thread + i
                results[n] = session.get("echo", params={"n": str(n)}).json()["n"]
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    calls = threads * per_thread
    assert errors == []
    assert results == {n: str(n) for n in range(calls)}
    assert len(server.requests) == calls
    assert len({r.bearer for r in server.requests}) == 1
    if logging:
        assert CallLog.objects.filter(ok=True).count() == calls


def test_edit_takes_effect_on_the_next_call(server, make_integration):
    """An integration saved (admin, import) in this process applies to the next call."""
    server.route("GET", "/api/x", lambda r: Reply(200, {}))
    integration = make_integration(base_url=f"{server.url}/api/")
    services.request("billing", "GET", "x")
    integration.headers = {"X-Version": "2"}
    integration.save()
    services.request("billing", "GET", "x")
    assert server.requests[-1].headers.get("X-Version") == "2"
    integration.enabled = False
    integration.save()
    with pytest.raises(IntegrationDisabled):
        services.request("billing", "GET", "x")


def test_edit_in_another_process_is_seen_after_the_recheck_interval(
    server, make_integration, settings
):
    """A change no signal announced (another process) is picked up once SESSION_RECHECK
    has passed, by comparing updated_at and enabled."""
    server.route("GET", "/api/x", lambda r: Reply(200, {}))
    make_integration(base_url=f"{server.url}/api/")
    services.request("billing", "GET", "x")
    later = timezone.now() + timedelta(seconds=1)
    Integration.objects.filter(slug="billing").update(headers={"X-Edited": "yes"}, updated_at=later)
    services.request("billing", "GET", "x")
    assert "X-Edited" not in server.requests[-1].headers  # within the interval: no query
    settings.INTEGRATIONS_SESSION_RECHECK = 0
    services.request("billing", "GET", "x")
    assert server.requests[-1].headers.get("X-Edited") == "yes"
    Integration.objects.filter(slug="billing").update(enabled=False)
    with pytest.raises(IntegrationDisabled):
        services.request("billing", "GET", "x")


def test_sessions_are_reused(make_integration, server):
    """One session per integration and process: pooled connections, cached provider."""
    make_integration(base_url=f"{server.url}/api/")
    assert services.get_session("billing") is services.get_session("billing")


def test_a_forked_child_starts_with_fresh_sessions_and_threads(server, make_integration):
    """A worker forked after calls were made (gunicorn --preload) shares no pooled socket
    with its parent and starts its own watchdog and log-writer threads."""
    import os
    import warnings

    from integrations.calllog import writer
    from integrations.http.bounds import watchdog

    server.route("GET", "/api/x", lambda r: Reply(200, {}))
    make_integration(base_url=f"{server.url}/api/")
    services.request("billing", "GET", "x")
    writer._started()  # as the first queued row would
    assert services._sessions and watchdog._thread is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads running
        pid = os.fork()
    if pid == 0:
        fresh = not services._sessions and watchdog._thread is None and writer._thread is None
        os._exit(0 if fresh else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
