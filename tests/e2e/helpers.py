"""Request builders and contract assertions shared by the end-to-end tests."""
from __future__ import annotations

import copy
import datetime as _dt
import json
import os
import re
import secrets
import time
import uuid
from pathlib import Path

ROOT = Path(os.environ.get("E2E_ROOT") or Path(__file__).resolve().parents[2])  # E2E_ROOT: another checkout
# Okta-shaped request bodies (copied from the shared fixtures into the repo).
FIXTURES = ROOT / "tests" / "fixtures" / "okta"
TEMPLATES = Path(__file__).resolve().parents[2] / "kv-seed" / "templates"

PROVIDER = "AWS End User Messaging"
ACTION = "com.okta.telephony.action"

POOL_US = "arn:aws:sms-voice:us-east-1:111122223333:pool/pool-us"
POOL_CA = "arn:aws:sms-voice:us-east-1:111122223333:pool/pool-ca"
PHONE_ES = "arn:aws:sms-voice:us-east-1:111122223333:phone-number/phone-es"
POOL_DEFAULT = "arn:aws:sms-voice:us-east-1:111122223333:pool/pool-global"
ORIGINATION_IDENTITIES = {"US": POOL_US, "CA": POOL_CA, "ES": PHONE_ES, "default": POOL_DEFAULT}

SMS_FIXTURE = "telephony-sms-password-reset.json"
VOICE_FIXTURE = "telephony-voice-mfa.json"
PREVIEW_FIXTURE = "telephony-sms-preview.json"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture(name: str) -> dict:
    return json.loads(fixture_bytes(name))


def iso(ts: _dt.datetime) -> str:
    return ts.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def now_plus(seconds: float) -> str:
    return iso(_dt.datetime.now(_dt.timezone.utc) + _dt.timedelta(seconds=seconds))


def random_otp(n: int = 8) -> str:
    """Random digits; long enough that a leak check on logs cannot match by chance."""
    return str(secrets.randbelow(9) + 1) + "".join(str(secrets.randbelow(10)) for _ in range(n - 1))


def random_us_number() -> str:
    # 555-01xx is reserved for fiction; vary the exchange digits to keep numbers unique per test
    return "+1415555" + f"{secrets.randbelow(10000):04d}"


def variant(name: str = SMS_FIXTURE, *, otp: str | None = None, phone: str | None = None,
            channel: str | None = None, locale: str | None = None, expires_in: float | None = 300,
            event_id: str | None = None, request_type: str | None = None, url: str | None = None) -> dict:
    """A deep copy of a fixture with a fresh eventId, a fresh OTP, otpExpires = now + 5 min."""
    body = copy.deepcopy(fixture(name))
    body["eventId"] = event_id or str(uuid.uuid4())
    body["eventTime"] = now_plus(0)
    mp = body["data"]["messageProfile"]
    otp = otp or random_otp()
    old = mp["otpCode"]
    mp["otpCode"] = otp
    mp["msgTemplate"] = mp["msgTemplate"].replace(old, otp)
    if expires_in is not None:
        mp["otpExpires"] = now_plus(expires_in)
    if phone is not None:
        mp["phoneNumber"] = phone
    if channel is not None:
        mp["deliveryChannel"] = channel
    if locale is not None:
        mp["locale"] = locale
    if request_type is not None:
        body["requestType"] = request_type
    if url is not None:
        body["data"]["context"]["request"]["url"]["value"] = url
    return body


def mp(body: dict) -> dict:
    return body["data"]["messageProfile"]


def template(locale: str) -> dict:
    return json.loads((TEMPLATES / f"{locale}.json").read_text(encoding="utf-8"))


def expected_sms_body(locale: str, otp: str) -> str:
    body = template(locale)["sms"]["body"]
    return body.replace("{{otp}}", otp).replace("@otp2", otp).replace("@otp", otp)


def masked(e164: str) -> re.Pattern:
    """The log form of a phone number: +, 2 digits, stars, last 3 digits."""
    digits = e164.lstrip("+")
    return re.compile(re.escape("+" + digits[:2]) + r"\*+" + re.escape(digits[-3:]))


# ---- contract assertions ---------------------------------------------------------------------------
def _json(resp) -> dict:
    ctype = resp.headers.get("Content-Type", "")
    assert ctype.split(";")[0].strip().lower() == "application/json", f"Content-Type {ctype!r}: {resp.text[:300]}"
    return resp.json()


def assert_successful(resp, aws, *, transaction_prefix: str | None = None) -> dict:
    """HTTP 200 with exactly the success command; transactionId = the mock's MessageId.
    Returns the (single) accepted send, or None for a simulated answer."""
    v = _command_value(resp, "SUCCESSFUL")
    body = v
    assert set(v) == {"status", "provider", "transactionId", "transactionMetadata"}, body
    assert isinstance(v["transactionMetadata"], str), body
    assert isinstance(v["transactionId"], str) and v["transactionId"], body
    if transaction_prefix is not None:
        assert v["transactionId"].startswith(transaction_prefix), body
        return None
    sent = aws.messages()
    assert len(sent) == 1, f"expected exactly one accepted send, got {len(sent)}: {_summary(aws)}"
    assert v["transactionId"] == sent[0]["message_id"], (v, sent[0]["message_id"])
    return sent[0]


FORBIDDEN_WORDING = ("Exception", "AWS", "arn:")


def _command_value(resp, status: str) -> dict:
    """HTTP 200 with exactly one telephony action command of `status`; returns its value."""
    assert resp.status_code == 200, f"{resp.status_code}: {resp.text[:500]}"
    body = _json(resp)
    assert set(body) == {"commands"}, body
    assert isinstance(body["commands"], list) and len(body["commands"]) == 1, body
    cmd = body["commands"][0]
    assert set(cmd) == {"type", "value"} and cmd["type"] == ACTION, body
    assert isinstance(cmd["value"], list) and len(cmd["value"]) == 1, body
    v = cmd["value"][0]
    assert v.get("status") == status and v.get("provider") == PROVIDER, body
    return v


def _metadata(v: dict, reason, secret_text: str | None) -> dict:
    assert isinstance(v["transactionMetadata"], str), v
    try:
        meta = json.loads(v["transactionMetadata"])
    except ValueError:
        raise AssertionError(f"transactionMetadata is not JSON: {v['transactionMetadata']!r}") from None
    assert isinstance(meta, dict), meta
    allowed = (reason,) if isinstance(reason, str) else tuple(reason)
    assert meta.get("reason") in allowed, f"reason {meta.get('reason')!r} not in {allowed}: {meta}"
    for word in FORBIDDEN_WORDING + ((secret_text,) if secret_text else ()):
        assert word not in v["transactionMetadata"], f"{word!r} leaks into transactionMetadata {meta}"
    return meta


def assert_pending(resp, reason, *, secret_text: str | None = None, transaction_id: bool | None = False) -> dict:
    """HTTP 200, one `PENDING` command: the outcome is unknown (AWS may have accepted the message).
    `reason`: the metadata's reason, or a tuple of acceptable ones. `transaction_id`: False = the
    key must be absent (no MessageId known), True = present, None = either. Returns the metadata."""
    v = _command_value(resp, "PENDING")
    keys = {"status", "provider", "transactionMetadata"}
    if transaction_id is None:
        assert set(v) in (keys, keys | {"transactionId"}), v
    elif transaction_id:
        assert set(v) == keys | {"transactionId"} and isinstance(v["transactionId"], str) and v["transactionId"], v
    else:
        assert set(v) == keys, f"PENDING without a MessageId must have no transactionId: {v}"
    meta = _metadata(v, reason, secret_text)
    if secret_text:
        assert secret_text not in resp.text
    return meta


def assert_failed(resp, reason, *, secret_text: str | None = None) -> dict:
    """HTTP 200, one `FAILED` command (a deliberate per-destination refusal), no transactionId,
    the metadata's reason `reason` (or one of a tuple). Returns the metadata."""
    v = _command_value(resp, "FAILED")
    assert set(v) == {"status", "provider", "transactionMetadata"}, f"FAILED must have no transactionId: {v}"
    meta = _metadata(v, reason, secret_text)
    if secret_text:
        assert secret_text not in resp.text
    return meta


def answer_kind(resp) -> tuple[str, str | None]:
    """(`SUCCESSFUL`|`PENDING`|`FAILED`|`error`|`HTTP <status>`, reason) of an answer, for messages
    and for tests that accept more than one outcome."""
    if resp.status_code != 200:
        return f"HTTP {resp.status_code}", None
    try:
        body = resp.json()
    except ValueError:
        return "not JSON", None
    if "error" in body:
        try:
            return "error", body["error"]["errorCauses"][0]["reason"]
        except (KeyError, IndexError, TypeError):
            return "error", None
    try:
        v = body["commands"][0]["value"][0]
        meta = json.loads(v.get("transactionMetadata") or "{}")
        return v["status"], meta.get("reason") if isinstance(meta, dict) else None
    except (KeyError, IndexError, TypeError, ValueError):
        return "unknown", None


def assert_delivery_error(resp, reason: str | None, *, secret_text: str | None = None) -> dict:
    """HTTP 200 with Okta's error object; AWS detail must not leak into the summaries."""
    assert resp.status_code == 200, f"{resp.status_code}: {resp.text[:500]}"
    body = _json(resp)
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"errorSummary", "errorCauses"}, body
    causes = err["errorCauses"]
    assert isinstance(causes, list) and len(causes) >= 1, body
    summaries = [err["errorSummary"]] + [c.get("errorSummary") for c in causes]
    for s in summaries:
        assert isinstance(s, str) and s.strip(), body
        for word in FORBIDDEN_WORDING + ((secret_text,) if secret_text else ()):
            assert word not in s, f"{word!r} leaks into errorSummary {s!r}"
    c = causes[0]
    assert set(c) == {"errorSummary", "reason", "locationType", "location", "domain"}, body
    assert c["locationType"] == "body" and c["location"] == "data.messageProfile", body
    assert c["domain"] == "end-user-messaging", body
    assert isinstance(c["reason"], str) and c["reason"], body
    if reason is not None:
        assert c["reason"] == reason, body
    return body


def _error_object(resp) -> dict:
    body = _json(resp)
    assert set(body) == {"error"}, body
    err = body["error"]
    assert isinstance(err.get("errorSummary"), str) and err["errorSummary"], body
    causes = err.get("errorCauses")
    assert isinstance(causes, list) and len(causes) >= 1, body
    for c in causes:
        assert {"errorSummary", "reason", "locationType", "location", "domain"} <= set(c), body
    return body


# Words that would tell a prober which check its token failed: never in a 401/503 body.
AUTH_DETAIL_WORDS = ("audience", "aud", "expired", "expiry", "exp", "issuer", "iss", "kid", "key", "keys", "jwks",
                     "scope", "scp", "signature", "algorithm", "alg", "cid", "client", "nbf", "iat", "claim",
                     "claims", "RS256", "HS256", "bearer", "base64", "malformed", "future", "leeway")


def assert_no_auth_detail(resp, *extra: str):
    """The body names no claim, key, algorithm or URL (`extra`: more substrings, e.g. the JWKS URL)."""
    text = resp.text
    for word in AUTH_DETAIL_WORDS:
        assert not re.search(r"(?<![A-Za-z])" + re.escape(word) + r"(?![A-Za-z])", text, re.I), \
            f"{word!r} in the body: {text[:500]}"
    for s in extra:
        if s:
            assert s not in text, f"{s!r} in the body: {text[:500]}"
    assert "http://" not in text and "https://" not in text, text[:500]


def assert_unauthorized(resp, aws, *, reason: str | None = None, locations=("Authorization",)) -> dict:
    """401 with the generic body: `MISSING_CREDENTIALS` when nothing was presented, otherwise
    `INVALID_CREDENTIALS` (`reason` = the one expected; None = either of the two). The exact cause
    is in the log line only (see `refusal_in_log`)."""
    assert resp.status_code == 401, f"{resp.status_code}: {resp.text[:500]}"
    body = _error_object(resp)
    err = body["error"]
    assert err["errorSummary"] == "Unauthorized", body
    assert body["error"]["errorCauses"][0]["reason"] in ("MISSING_CREDENTIALS", "INVALID_CREDENTIALS"), body
    assert_no_auth_detail(resp)
    c = err["errorCauses"][0]
    assert c["locationType"] == "header", body
    assert c["location"].lower() in {l.lower() for l in locations}, body
    assert c["domain"] == "authentication", body
    assert isinstance(c["reason"], str) and c["reason"], body
    if reason is not None:
        assert c["reason"] == reason, body
    assert aws.requests() == [], f"AWS was called: {_summary(aws)}"
    return body


def assert_auth_unavailable(resp, aws, *, locations=("Authorization",), secret_texts: tuple = ()) -> dict:
    """503 with the generic body `AUTHENTICATION_UNAVAILABLE`: no JWKS error or URL echoed."""
    assert resp.status_code == 503, f"{resp.status_code}: {resp.text[:500]}"
    body = _error_object(resp)
    c = body["error"]["errorCauses"][0]
    assert c["reason"] == "AUTHENTICATION_UNAVAILABLE", body
    assert c["locationType"] == "header" and c["location"].lower() in {l.lower() for l in locations}, body
    assert c["domain"] == "authentication", body
    assert_no_auth_detail(resp, *secret_texts)
    assert aws.requests() == [], f"AWS was called: {_summary(aws)}"
    return body


EXCEPTION_TEXT = ("Exception", "Error:", "error:", "panicked", "RuntimeError", "TypeError", "JsValue", ".rs:",
                  "wasm", "stack", "undefined", "Durable Object", "binding")


def assert_server_error(resp, reason: str, *, status: int = 500, secret_texts: tuple = ()) -> dict:
    """An error answer (500 by default) in the error-object shape with `reason`, carrying no
    exception text, binding name or setting value."""
    assert resp.status_code == status, f"{resp.status_code}: {resp.text[:500]}"
    body = _error_object(resp)
    assert body["error"]["errorCauses"][0]["reason"] == reason, body
    for word in EXCEPTION_TEXT + tuple(secret_texts):
        assert word not in resp.text, f"{word!r} in a {status} body: {resp.text[:500]}"
    return body


def assert_bad_request(resp, aws, status: int = 400) -> dict:
    assert resp.status_code == status, f"{resp.status_code}: {resp.text[:500]}"
    body = _error_object(resp)
    assert body["error"]["errorCauses"][0]["locationType"] == "body", body
    assert aws.requests() == [], f"AWS was called: {_summary(aws)}"
    return body


def _summary(aws) -> list:
    return [(r["op"], r["status"], r["outcome"], r["signature_error"], r["model_errors"]) for r in aws.requests()]


def assert_clean_request(rec: dict):
    """The mock accepted the signature and the body against the service model."""
    assert rec["signature_ok"], f"SigV4 rejected: {rec['signature_error']}"
    assert rec["model_errors"] == [], f"model validation: {rec['model_errors']}"


def digits_subsequence(digits: str, text: str) -> bool:
    it = iter(re.findall(r"\d", text))
    return all(any(d == x for x in it) for d in digits)


# ---- the Worker's log ------------------------------------------------------------------------------
def parse_log_line(line: str) -> dict | None:
    """The JSON object of a wrangler log line (wrangler may prefix and suffix it), or None."""
    i = line.find("{")
    if i < 0:
        return None
    try:
        obj = json.JSONDecoder().raw_decode(line[i:])[0]
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def log_mark(w) -> int:
    """Where the instance's log is now: pass it to `log_entries` to see only what follows."""
    return len(w.log_lines())


def log_entries(w, since: int, *, msg: str | None = None, pred=None, timeout: float = 3.0,
                count: int = 1) -> list[dict]:
    """JSON log entries of instance `w` added after mark `since` (with `"msg": msg`, satisfying
    `pred`), waiting up to `timeout` s for at least `count` of them (stdout is flushed late)."""
    deadline = time.monotonic() + timeout
    while True:
        out = []
        for line in w.log_lines()[since:]:
            e = parse_log_line(line)
            if e is None or (msg is not None and e.get("msg") != msg) or (pred is not None and not pred(e)):
                continue
            out.append(e)
        if len(out) >= count or time.monotonic() > deadline:
            return out
        time.sleep(0.05)


def refusal_in_log(w, since: int, status: int | None = None) -> str:
    """The reason of the newest telephony log line after `since` whose outcome is
    `REFUSED:<REASON>` (the exact authentication failure, which the body does not say)."""
    entries = log_entries(w, since, msg="telephony",
                          pred=lambda e: str(e.get("outcome", "")).startswith("REFUSED:"))
    assert entries, "no telephony log line with outcome REFUSED:… after the request:\n" + \
        "\n".join(w.log_lines()[since:][-20:])
    e = entries[-1]
    if status is not None:
        assert e.get("status") == status, e
    return e["outcome"].split(":", 1)[1]
