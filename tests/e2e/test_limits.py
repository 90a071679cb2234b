"""Bounded reads and safe endpoints (issue #9).

- The hook's body is read as a stream, up to the limit: a chunked body that exceeds 64 KB is
  refused with 413 while the client is still sending, never buffered whole.
- AWS's answer is read under the deadline too: an answer whose body stalls ends as PENDING/TIMEOUT
  (AWS may have accepted the message), and is not retried.
- AWS endpoints must be https:// unless they are loopback, and the JWKS must come from the issuer's
  origin unless OKTA_JWKS_ALLOW_OTHER_ORIGIN=true: otherwise every request is a 500
  CONFIGURATION_ERROR and nothing leaves."""
from __future__ import annotations

import json
import socket
import time

import pytest

from helpers import (SMS_FIXTURE, assert_pending, assert_server_error, assert_successful, log_entries, log_mark,
                     random_us_number, variant)
from mocks._server import LoopbackServer, Reply
from mocks.okta import MockOkta

LIMIT = 65536


# ---- raw HTTP/1.1 over a socket --------------------------------------------------------------------
def _read_response(sock: socket.socket, deadline: float) -> tuple[int, dict, bytes]:
    """Status, headers (lower-case names) and body of one HTTP/1.1 answer, or TimeoutError."""
    buf = b""

    def more():
        nonlocal buf
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no complete answer in time; got {buf[:300]!r}")
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            raise TimeoutError(f"no complete answer in time; got {buf[:300]!r}") from None
        if not chunk:
            raise ConnectionError(f"closed; got {buf[:300]!r}")
        buf += chunk

    while b"\r\n\r\n" not in buf:
        more()
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    buf = rest
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(buf) < n:
            more()
        return status, headers, buf[:n]
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            while b"\r\n" not in buf:
                more()
            size_line, _, buf = buf.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(buf) < size + 2:
                more()
            body += buf[:size]
            buf = buf[size + 2:]
            if size == 0:
                return status, headers, body
    try:
        while True:
            more()
    except ConnectionError:
        return status, headers, buf


def _open(w) -> socket.socket:
    return socket.create_connection(("127.0.0.1", w.port), timeout=5)


def _head(w, extra: dict) -> bytes:
    token = w.okta.mint()
    w.sensitive.add_request(None, {"Authorization": "Bearer " + token})
    h = {"Host": f"127.0.0.1:{w.port}", "Content-Type": "application/json", "Accept": "application/json",
         "Authorization": "Bearer " + token, **extra}
    return ("POST /okta/telephony HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n").encode()


def _send(sock: socket.socket, data: bytes) -> bool:
    """False once the Worker has stopped reading (closed or reset the connection)."""
    try:
        sock.sendall(data)
        return True
    except (BrokenPipeError, ConnectionResetError):
        return False


def _assert_413(status, headers, body):
    assert status == 413, (status, body[:300])
    assert headers.get("content-type", "").split(";")[0].strip() == "application/json", headers
    err = json.loads(body)["error"]
    cause = err["errorCauses"][0]
    assert cause["reason"] == "BODY_TOO_LARGE" and cause["locationType"] == "body", err


# ---- the hook's body -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def raw_worker(worker_factory):
    """An instance of its own for the abandoned upload: under `wrangler dev`, the request right after
    a client gave up on an unterminated body is answered 503 "Your worker restarted mid-request" by
    wrangler's local proxy (its dev-only body-drain middleware fails with "Network connection lost"),
    which must not land on another test's request."""
    w = worker_factory.get("raw-body", {"TEMPLATE_CACHE_SECONDS": "66"})
    return w


def test_unterminated_chunked_body_over_the_limit_is_413_at_once(raw_worker):
    """Transfer-Encoding: chunked, no Content-Length, 80 KB of chunks and never the final 0-chunk:
    a Worker that buffered the whole body would wait forever. It must answer 413 within seconds."""
    w = raw_worker
    w.aws.reset()
    sock = _open(w)
    try:
        assert _send(sock, _head(w, {"Transfer-Encoding": "chunked"}))
        prefix = b'{"eventType":"com.okta.telephony.provider","padding":"'
        chunks = [prefix] + [b"x" * 8192] * 10
        sent = 0  # bytes of chunk data written before the Worker stopped reading (if it did)
        for c in chunks:
            if not _send(sock, f"{len(c):x}\r\n".encode() + c + b"\r\n"):
                break
            sent += len(c)
        t0 = time.monotonic()
        status, headers, body = _read_response(sock, t0 + 5.0)  # the socket stays open, unterminated
        _assert_413(status, headers, body)
    finally:
        sock.close()
    time.sleep(0.2)
    assert w.aws.requests() == []


def test_declared_content_length_over_the_limit_is_413_without_the_body(w):
    """Content-Length: 200000 and only 1 KB sent: the limit is known from the header, so the Worker
    decides at once, without waiting for a body it would refuse anyway.

    Under `wrangler dev` the answer itself is held back until the request body is drained (wrangler's
    dev-only middleware `ensure-req-body-drained`; deployed Workers have none), so the decision is
    timed on the Worker's own log line, and the rest of the body is sent before reading the answer."""
    declared = 200_000
    mark = log_mark(w)
    sock = _open(w)
    try:
        t0 = time.monotonic()
        assert _send(sock, _head(w, {"Content-Length": str(declared)}) + b"{" + b" " * 1023)
        entries = log_entries(w, mark, msg="telephony", timeout=5.0,
                              pred=lambda e: str(e.get("outcome", "")).startswith("INVALID:"))
        decided = time.monotonic() - t0
        assert entries, "the Worker did not decide while the body was incomplete:\n" + \
            "\n".join(w.log_lines()[mark:][-10:])
        assert entries[-1]["status"] == 413 and entries[-1]["outcome"] == "INVALID:BODY_TOO_LARGE", entries[-1]
        assert decided < 3.0, f"decided after {decided:.1f}s"
        _send(sock, b" " * (declared - 1024))  # let wrangler's drain finish (the Worker has answered)
        status, headers, body = _read_response(sock, time.monotonic() + 10.0)
        _assert_413(status, headers, body)
    finally:
        sock.close()
    assert w.aws.requests() == []


def test_chunked_body_under_the_limit_is_served(w):
    """The streaming reader still accepts a chunked body within the limit, in small pieces."""
    body = json.dumps(variant(SMS_FIXTURE, phone=random_us_number())).encode()
    w.sensitive.add_request(body, {})
    sock = _open(w)
    try:
        assert _send(sock, _head(w, {"Transfer-Encoding": "chunked"}))
        for i in range(0, len(body), 100):
            c = body[i:i + 100]
            assert _send(sock, f"{len(c):x}\r\n".encode() + c + b"\r\n")
        assert _send(sock, b"0\r\n\r\n")
        status, headers, raw = _read_response(sock, time.monotonic() + 10.0)
    finally:
        sock.close()
    assert status == 200, raw[:300]
    v = json.loads(raw)["commands"][0]["value"][0]
    assert v["status"] == "SUCCESSFUL" and v["transactionId"] == w.aws.messages()[0]["message_id"]


# ---- AWS's answer ------------------------------------------------------------------------------------
def test_aws_answer_body_stalling_is_pending_timeout_within_the_deadline(hw):
    """AWS sends 200 and its headers, then half the body, then nothing (DEADLINE_MS=1500): the
    message was probably accepted, so PENDING/TIMEOUT, in time, and no second request."""
    hw.aws.script([{"stall_body": 10}, {"ok": True}])
    t0 = time.monotonic()
    r = hw.post_telephony(variant(SMS_FIXTURE, phone=random_us_number()))
    elapsed = time.monotonic() - t0
    assert_pending(r, "TIMEOUT", transaction_id=False)
    assert elapsed < 1.5 + 1.0, f"answered after {elapsed:.2f}s with DEADLINE_MS=1500"
    time.sleep(0.5)
    assert len(hw.aws.requests()) == 1, "retried although AWS may have accepted the message"
    assert hw.aws.requests()[0]["outcome"] == "stalled"


# ---- endpoint settings ---------------------------------------------------------------------------------
def test_plain_http_aws_endpoint_off_loopback_is_a_configuration_error(worker_factory):
    """`http://example.invalid:1` is neither https nor loopback: refused when the settings are read,
    before any fetch (`.invalid` never resolves, so nothing could leave anyway)."""
    w = worker_factory.get("aws-http-remote", {"AWS_SMS_VOICE_ENDPOINT": "http://example.invalid:1"})
    mark = log_mark(w)
    r = w.post_telephony(variant(SMS_FIXTURE))
    assert_server_error(r, "CONFIGURATION_ERROR", secret_texts=("example.invalid", "AWS_SMS_VOICE_ENDPOINT"))
    entries = log_entries(w, mark, pred=lambda e: "AWS_SMS_VOICE_ENDPOINT" in json.dumps(e))
    assert entries, "no log line names the bad setting:\n" + "\n".join(w.log_lines()[mark:][-10:])


class JwksMirror:
    """The same keys as an Okta mock, served from another origin (another port on 127.0.0.1)."""

    def __init__(self, okta: MockOkta):
        self.requests = 0
        self.okta = okta

        def handle(method, path, headers, body, _h):
            if method == "GET" and path.split("?", 1)[0] == "/keys":
                self.requests += 1
                return Reply(200, okta.jwks(), headers={"Cache-Control": "max-age=3600"})
            return Reply(404, {"error": "not found"})

        self._server = LoopbackServer(handle, "JwksMirror")
        self.url = f"http://127.0.0.1:{self._server.port}/keys"

    def close(self):
        self._server.close()


@pytest.fixture(scope="module")
def mirrored():
    okta = MockOkta("aus_test")
    mirror = JwksMirror(okta)
    yield okta, mirror
    mirror.close()
    okta.close()


def test_jwks_on_another_origin_is_a_configuration_error(worker_factory, mirrored):
    okta, mirror = mirrored
    w = worker_factory.get("jwks-other-origin", {"OKTA_JWKS_URL": mirror.url}, okta=okta)
    w.aws.reset()
    mark = log_mark(w)
    r = w.post_telephony(variant(SMS_FIXTURE))
    assert_server_error(r, "CONFIGURATION_ERROR", secret_texts=(mirror.url, "OKTA_JWKS_URL"))
    assert mirror.requests == 0 and okta.jwks_requests == 0, "keys were fetched despite the bad setting"
    assert w.aws.requests() == []
    assert log_entries(w, mark, pred=lambda e: "OKTA_JWKS_URL" in json.dumps(e)), "no log line names the setting"


def test_jwks_on_another_origin_is_used_when_explicitly_allowed(worker_factory, mirrored):
    okta, mirror = mirrored
    w = worker_factory.get("jwks-other-origin-allowed",
                           {"OKTA_JWKS_URL": mirror.url, "OKTA_JWKS_ALLOW_OTHER_ORIGIN": "true"}, okta=okta)
    w.aws.reset()
    assert_successful(w.post_telephony(variant(SMS_FIXTURE)), w.aws)
    assert mirror.requests >= 1, "the keys did not come from OKTA_JWKS_URL"
    assert okta.jwks_requests == 0, "the keys were fetched from the issuer instead of OKTA_JWKS_URL"
