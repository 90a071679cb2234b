"""Request builders and contract assertions shared by the end-to-end tests."""
from __future__ import annotations

import copy
import datetime as _dt
import json
import os
import re
import secrets
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
    assert resp.status_code == 200, f"{resp.status_code}: {resp.text[:500]}"
    body = _json(resp)
    assert set(body) == {"commands"}, body
    assert isinstance(body["commands"], list) and len(body["commands"]) == 1, body
    cmd = body["commands"][0]
    assert set(cmd) == {"type", "value"} and cmd["type"] == ACTION, body
    assert isinstance(cmd["value"], list) and len(cmd["value"]) == 1, body
    v = cmd["value"][0]
    assert set(v) == {"status", "provider", "transactionId", "transactionMetadata"}, body
    assert v["status"] == "SUCCESSFUL" and v["provider"] == PROVIDER, body
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


def assert_unauthorized(resp, aws, *, reason: str | None = None, locations=("Authorization",)) -> dict:
    assert resp.status_code == 401, f"{resp.status_code}: {resp.text[:500]}"
    body = _error_object(resp)
    err = body["error"]
    assert err["errorSummary"] == "Unauthorized", body
    c = err["errorCauses"][0]
    assert c["locationType"] == "header", body
    assert c["location"].lower() in {l.lower() for l in locations}, body
    assert c["domain"] == "authentication", body
    assert isinstance(c["reason"], str) and c["reason"], body
    if reason is not None:
        assert c["reason"] == reason, body
    assert aws.requests() == [], f"AWS was called: {_summary(aws)}"
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
