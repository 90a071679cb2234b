"""The telephony inline hook, end to end: payload handling, the AWS requests, the answers to Okta."""
from __future__ import annotations

import json
import threading
import time
import uuid
import xml.etree.ElementTree as ET

import pytest

from helpers import (PHONE_ES, POOL_CA, POOL_DEFAULT, POOL_US, PREVIEW_FIXTURE, SMS_FIXTURE, VOICE_FIXTURE,
                     answer_kind, assert_bad_request, assert_clean_request, assert_delivery_error, assert_failed,
                     assert_pending, assert_successful, digits_subsequence, expected_sms_body, fixture_bytes,
                     masked, mp, random_us_number, template, variant)


def assert_sms(rec, body, *, e164, identity, locale, ttl=(5, 300)):
    assert_clean_request(rec)
    assert rec["op"] == "SendTextMessage", rec["op"]
    p = rec["params"]
    m = mp(body)
    assert p["DestinationPhoneNumber"] == e164
    assert p["OriginationIdentity"] == identity
    assert p["MessageType"] == "TRANSACTIONAL"
    assert p["MessageBody"] == expected_sms_body(locale, m["otpCode"])
    lo, hi = ttl
    assert isinstance(p["TimeToLive"], int) and lo <= p["TimeToLive"] <= hi, p["TimeToLive"]
    assert p["Context"]["oktaEventId"] == body["eventId"], p.get("Context")
    return p


def assert_voice(rec, body, *, e164, identity, locale, ttl=(5, 300)):
    assert_clean_request(rec)
    assert rec["op"] == "SendVoiceMessage", rec["op"]
    p = rec["params"]
    otp = mp(body)["otpCode"]
    assert p["DestinationPhoneNumber"] == e164
    assert p["OriginationIdentity"] == identity
    assert p["MessageBodyTextType"] == "SSML"
    assert p["VoiceId"] == template(locale)["voice"]["voiceId"]
    ssml = p["MessageBody"]
    assert ssml.lstrip().startswith("<speak"), ssml
    ET.fromstring(ssml)  # well-formed XML
    assert digits_subsequence(otp, ssml), f"OTP digits {otp} not spoken in order: {ssml}"
    assert otp not in ssml, f"OTP spoken as one number: {ssml}"
    assert "MessageType" not in p and "MaxPrice" not in p
    lo, hi = ttl
    assert isinstance(p["TimeToLive"], int) and lo <= p["TimeToLive"] <= hi, p["TimeToLive"]
    assert p["Context"]["oktaEventId"] == body["eventId"], p.get("Context")
    return p


# ---- routing -------------------------------------------------------------------------------------
def test_healthz(w):
    r = w.request("GET", "/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


@pytest.mark.parametrize("method,path", [("GET", "/"), ("GET", "/nope"), ("POST", "/okta/telephony/x"),
                                         ("POST", "/okta"), ("GET", "/okta/telephonyx")])
def test_unknown_paths_are_404_json(w, method, path):
    r = w.request(method, path, data=b"{}")
    assert r.status_code == 404, r.text
    assert r.headers.get("Content-Type", "").startswith("application/json")
    r.json()
    assert w.aws.requests() == []


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_other_methods_on_the_hook_are_405(w, method):
    r = w.request(method, "/okta/telephony", headers=w.auth_headers())
    assert r.status_code == 405, r.text
    assert w.aws.requests() == []


# ---- the fixtures exactly as Okta sends them ------------------------------------------------------
def test_fixture_sms_password_reset_as_is(w):
    raw = fixture_bytes(SMS_FIXTURE)
    body = json.loads(raw)
    r = w.post_telephony(raw)
    rec = assert_successful(r, w.aws)
    assert r.elapsed.total_seconds() < 3.0, "slower than Okta's 3 s hook timeout"
    p = assert_sms(rec, body, e164="+14155550123", identity=POOL_US, locale="en-US", ttl=(5, 5))
    assert p["ConfigurationSetName"] == "otp"
    assert "ProtectConfigurationId" not in p and "MaxPrice" not in p
    assert "x-amz-security-token" not in rec["headers"]


def test_fixture_sms_preview_as_is_is_sent_by_default(w):
    raw = fixture_bytes(PREVIEW_FIXTURE)
    body = json.loads(raw)
    rec = assert_successful(w.post_telephony(raw), w.aws)
    assert_sms(rec, body, e164="+9876543210", identity=POOL_DEFAULT, locale="en-US", ttl=(5, 5))


def test_fixture_voice_mfa_as_is(w):
    raw = fixture_bytes(VOICE_FIXTURE)
    body = json.loads(raw)
    rec = assert_successful(w.post_telephony(raw), w.aws)
    p = assert_voice(rec, body, e164="+34612345678", identity=PHONE_ES, locale="es-ES", ttl=(5, 5))
    assert p["ConfigurationSetName"] == "otp"
    assert "MaxPricePerMinute" not in p and "ProtectConfigurationId" not in p
    lines = w.wait_for_log(body["eventId"])
    assert lines, "no log line carries the eventId"
    assert any(masked("+34612345678").search(l) for l in lines), lines


# ---- channel ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("channel,op", [
    ("sms", "SendTextMessage"), ("SMS", "SendTextMessage"), ("Sms", "SendTextMessage"),
    ("voice call", "SendVoiceMessage"), ("Voice Call", "SendVoiceMessage"), ("voice", "SendVoiceMessage"),
    ("Voice", "SendVoiceMessage"), ("VOICE", "SendVoiceMessage"), ("call", "SendVoiceMessage"),
    ("CALL", "SendVoiceMessage"),
])
def test_channel(w, channel, op):
    body = variant(SMS_FIXTURE, channel=channel)
    rec = assert_successful(w.post_telephony(body), w.aws)
    if op == "SendTextMessage":
        assert_sms(rec, body, e164="+14155550123", identity=POOL_US, locale="en-US")
    else:
        assert_voice(rec, body, e164="+14155550123", identity=POOL_US, locale="en-US")


# ---- phone numbers and origination identities ------------------------------------------------------
@pytest.mark.parametrize("raw,e164", [
    ("9876543210", "+9876543210"),
    ("+1 (415) 555-0123", "+14155550123"),
    ("0034612345678", "+34612345678"),
    ("+34612345678", "+34612345678"),
])
def test_phone_normalisation(w, raw, e164):
    body = variant(SMS_FIXTURE, phone=raw)
    rec = assert_successful(w.post_telephony(body), w.aws)
    assert rec["params"]["DestinationPhoneNumber"] == e164


@pytest.mark.parametrize("e164,identity", [
    ("+14155550123", POOL_US),
    ("+14165550123", POOL_CA),       # Toronto
    ("+18765550123", POOL_DEFAULT),  # Jamaica shares +1 but is not US/CA
    ("+34612345678", PHONE_ES),
    ("+9876543210", POOL_DEFAULT),   # Iran
    ("+447700900123", POOL_DEFAULT),
])
def test_origination_identity_by_destination_country(w, e164, identity):
    body = variant(SMS_FIXTURE, phone=e164)
    rec = assert_successful(w.post_telephony(body), w.aws)
    assert rec["params"]["OriginationIdentity"] == identity
    assert_clean_request(rec)


def test_voice_origination_identity_by_country(w):
    body = variant(VOICE_FIXTURE, phone="+14165550199")
    rec = assert_successful(w.post_telephony(body), w.aws)
    assert_voice(rec, body, e164="+14165550199", identity=POOL_CA, locale="es-ES")


# ---- locales and templates -------------------------------------------------------------------------
@pytest.mark.parametrize("locale,resolved", [
    ("EN-US", "en-US"), ("en-US", "en-US"), ("en_us", "en-US"), ("es", "es-ES"), ("pt", "pt-BR"),
    ("pt_BR", "pt-BR"), ("fr-BE", "fr-FR"), ("xx-YY", "en-US"), ("de-de", "de-DE"),
])
def test_sms_locale_resolution(w, locale, resolved):
    body = variant(SMS_FIXTURE, locale=locale)
    rec = assert_successful(w.post_telephony(body), w.aws)
    assert rec["params"]["MessageBody"] == expected_sms_body(resolved, mp(body)["otpCode"])


@pytest.mark.parametrize("locale,resolved", [("ES", "es-ES"), ("en-us", "en-US"), ("pt", "pt-BR"),
                                             ("fr_be", "fr-FR"), ("xx-YY", "en-US")])
def test_voice_locale_resolution(w, locale, resolved):
    body = variant(VOICE_FIXTURE, locale=locale)
    rec = assert_successful(w.post_telephony(body), w.aws)
    assert_voice(rec, body, e164="+34612345678", identity=PHONE_ES, locale=resolved)


@pytest.mark.parametrize("otp", ["0000", "0123456789", "4829"])
def test_otp_lengths_and_leading_zeros(w, otp):
    body = variant(SMS_FIXTURE, otp=otp)
    rec = assert_successful(w.post_telephony(body), w.aws)
    assert rec["params"]["MessageBody"] == expected_sms_body("en-US", otp)
    body = variant(VOICE_FIXTURE, otp=otp)
    w.aws.reset()
    rec = assert_successful(w.post_telephony(body), w.aws)
    assert digits_subsequence(otp, rec["params"]["MessageBody"]) and otp not in rec["params"]["MessageBody"]


# ---- TimeToLive, Context, requestType --------------------------------------------------------------
@pytest.mark.parametrize("expires_in,lo,hi", [(300, 240, 300), (-3600, 5, 5), (2, 5, 5),
                                              (10 * 86400, 259200, 259200)])
def test_time_to_live(w, expires_in, lo, hi):
    body = variant(SMS_FIXTURE, expires_in=expires_in)
    rec = assert_successful(w.post_telephony(body), w.aws)
    assert lo <= rec["params"]["TimeToLive"] <= hi, rec["params"]["TimeToLive"]


def test_context_carries_the_event_id(w):
    body = variant(VOICE_FIXTURE)
    rec = assert_successful(w.post_telephony(body), w.aws)
    ctx = rec["params"]["Context"]
    assert ctx["oktaEventId"] == body["eventId"]
    assert mp(body)["otpCode"] not in json.dumps(ctx)


@pytest.mark.parametrize("rt", ["com.okta.user.telephony.account-unlock", "com.okta.user.telephony.something-new"])
def test_request_types_are_served(w, rt):
    body = variant(SMS_FIXTURE, request_type=rt)
    assert_successful(w.post_telephony(body), w.aws)


# ---- malformed payloads ----------------------------------------------------------------------------
def _drop(path):
    def f(b):
        node = b
        for k in path[:-1]:
            node = node[k]
        del node[path[-1]]
        return b
    return f


def _set(path, value):
    def f(b):
        node = b
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
        return b
    return f


MP = ("data", "messageProfile")
BAD = {
    "not_json": b"this is not json",
    "truncated_json": b'{"eventId": "x", "data": {',
    "json_array": b"[]",
    "json_string": b'"hello"',
    "empty_object": b"{}",
    "no_data": _drop(("data",)),
    "data_not_object": _set(("data",), []),
    "no_message_profile": _drop(MP),
    "message_profile_null": _set(MP, None),
    "no_phone": _drop(MP + ("phoneNumber",)),
    "no_otp": _drop(MP + ("otpCode",)),
    "no_channel": _drop(MP + ("deliveryChannel",)),
    "otp_number_type": _set(MP + ("otpCode",), 12345678),
    "phone_number_type": _set(MP + ("phoneNumber",), 14155550123),
    "channel_number_type": _set(MP + ("deliveryChannel",), 1),
    "event_type_wrong": _set(("eventType",), "com.okta.event_hook"),
    "event_type_missing": _drop(("eventType",)),
    "otp_too_short": _set(MP + ("otpCode",), "123"),
    "otp_too_long": _set(MP + ("otpCode",), "12345678901"),
    "otp_not_digits": _set(MP + ("otpCode",), "12a456"),
    "otp_with_space": _set(MP + ("otpCode",), "123 456"),
    "otp_empty": _set(MP + ("otpCode",), ""),
    "phone_letters": _set(MP + ("phoneNumber",), "not-a-phone"),
    "phone_empty": _set(MP + ("phoneNumber",), ""),
    "phone_leading_zero_cc": _set(MP + ("phoneNumber",), "+0123456789"),
    "phone_too_long": _set(MP + ("phoneNumber",), "+1234567890123456789"),
    "channel_email": _set(MP + ("deliveryChannel",), "email"),
    "channel_empty": _set(MP + ("deliveryChannel",), ""),
    "channel_smsx": _set(MP + ("deliveryChannel",), "smsx"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_malformed_payload_is_400(w, name):
    make = BAD[name]
    body = make if isinstance(make, bytes) else make(variant(SMS_FIXTURE))
    assert_bad_request(w.post_telephony(body), w.aws)


@pytest.mark.parametrize("field", ["otpExpires", "locale", "msgTemplate"])
def test_optional_message_profile_fields(w, field):
    """Okta always sends these, but the Worker can deliver without them: it does not refuse."""
    body = variant(SMS_FIXTURE)
    del mp(body)[field]
    rec = assert_successful(w.post_telephony(body), w.aws)
    assert_clean_request(rec)
    if field == "locale":
        assert rec["params"]["MessageBody"] == expected_sms_body("en-US", mp(body)["otpCode"])


def test_oversized_body_is_413(w):
    body = variant(SMS_FIXTURE)
    body["data"]["userProfile"]["padding"] = "x" * 70_000
    raw = json.dumps(body).encode()
    assert len(raw) > 65536
    assert_bad_request(w.post_telephony(raw), w.aws, status=413)


def test_body_just_under_the_limit_is_served(w):
    body = variant(SMS_FIXTURE)
    base = len(json.dumps(body).encode())
    body["data"]["userProfile"]["padding"] = "x" * (60_000 - base)
    assert len(json.dumps(body).encode()) < 65536
    assert_successful(w.post_telephony(body), w.aws)


# ---- AWS refusals -> Okta error objects ------------------------------------------------------------
def _secret_message():
    return "mock-detail-" + uuid.uuid4().hex


# name -> (scripted AWS error, answer shape, reason): `FAILED` for a deliberate per-destination
# refusal (nobody else should send it), Okta's `error` object when the fault is ours (None = any reason).
REFUSALS = {
    "opted_out": ({"type": "ConflictException", "body": {"Reason": "DESTINATION_PHONE_NUMBER_OPTED_OUT",
                                                          "ResourceType": "phone-number", "ResourceId": "+14155550123"}},
                  "FAILED", "OPTED_OUT"),
    "country_blocked": ({"type": "ValidationException", "body": {"Reason": "DESTINATION_COUNTRY_BLOCKED"}},
                        "FAILED", "COUNTRY_BLOCKED"),
    "not_verified_in_sandbox": ({"type": "ConflictException", "body": {"Reason": "DESTINATION_PHONE_NUMBER_NOT_VERIFIED",
                                                                        "ResourceType": "phone-number",
                                                                        "ResourceId": "+14155550123"}},
                                "FAILED", "NOT_VERIFIED_IN_SANDBOX"),
    "channel_not_enabled": ({"type": "ValidationException", "body": {"Reason": "CHANNEL_NOT_ENABLED"}},
                            "FAILED", "CHANNEL_UNAVAILABLE"),
    "invalid_destination": ({"type": "ValidationException",
                             "body": {"Reason": "INVALID_PARAMETER",
                                      "Fields": [{"Name": "DestinationPhoneNumber", "Message": "not a valid number"}]}},
                            "FAILED", "INVALID_PHONE_NUMBER"),
    "price_over_threshold": ({"type": "ValidationException", "body": {"Reason": "PRICE_OVER_THRESHOLD"}},
                             "FAILED", "REJECTED"),
    "spend_limit": ({"type": "ServiceQuotaExceededException", "body": {"Reason": "MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT"}},
                    "error", "SPEND_LIMIT_REACHED"),
    "invalid_parameter": ({"type": "ValidationException", "body": {"Reason": "INVALID_PARAMETER"}}, "error", None),
    "resource_not_found": ({"type": "ResourceNotFoundException",
                            "body": {"ResourceType": "pool", "ResourceId": "pool-us"}}, "error", None),
    "access_denied": ({"type": "AccessDeniedException", "body": {"Reason": "ACCOUNT_DISABLED"}}, "error", None),
}


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_permanent_refusal_answer_and_not_retried(w, name):
    entry, shape, reason = REFUSALS[name]
    secret = _secret_message()
    entry = json.loads(json.dumps(entry))
    entry["body"]["Message"] = secret + " arn:aws:sms-voice:us-east-1:111122223333:pool/pool-us"
    w.aws.script([entry, {"ok": True}])
    body = variant(SMS_FIXTURE)
    t0 = time.monotonic()
    r = w.post_telephony(body)
    if shape == "FAILED":
        assert_failed(r, reason, secret_text=secret)
    else:
        assert_delivery_error(r, reason, secret_text=secret)
    assert secret not in r.text
    assert len(w.aws.requests()) == 1, "a permanent refusal must not be retried"
    assert time.monotonic() - t0 < 2.5


def test_account_blocked_is_an_error_object(w):
    w.aws.script([{"type": "AccessDeniedException", "body": {"Reason": "ACCOUNT_DISABLED", "Message": "disabled"}}])
    assert_delivery_error(w.post_telephony(variant(SMS_FIXTURE)), "ACCOUNT_BLOCKED", secret_text="disabled")
    assert len(w.aws.requests()) == 1


def test_2xx_without_a_message_id_is_pending_outcome_unknown_and_not_retried(w):
    """AWS answered 200 but the answer has no MessageId: it may have sent the code. PENDING (not an
    error object, which would have Okta send a second code), no retry, and the same answer again."""
    w.aws.script([{"status": 200, "raw": '{"Unexpected": true}', "content_type": "application/x-amz-json-1.0"},
                  {"ok": True}, {"ok": True}])
    body = variant(SMS_FIXTURE)
    r = w.post_telephony(body)
    assert_pending(r, "OUTCOME_UNKNOWN")
    assert len(w.aws.requests()) == 1, "an answer that may mean 'sent' must not be retried"
    r2 = w.post_telephony(body)
    assert (r2.status_code, r2.content) == (r.status_code, r.content)
    assert len(w.aws.requests()) == 1


def test_throttled_once_then_success(w):
    w.aws.script([{"type": "ThrottlingException", "body": {"Message": "Rate exceeded"}}])
    rec = assert_successful(w.post_telephony(variant(SMS_FIXTURE)), w.aws)
    assert len(w.aws.requests()) == 2
    assert_clean_request(rec)


def test_server_error_once_then_success(w):
    w.aws.script([{"status": 500, "raw": "<html>oops</html>"}])
    assert_successful(w.post_telephony(variant(VOICE_FIXTURE)), w.aws)
    assert len(w.aws.requests()) == 2


def test_internal_server_exception_once_then_success(w):
    w.aws.script([{"type": "InternalServerException", "body": {"Message": "boom", "RequestId": "r-1"}}])
    assert_successful(w.post_telephony(variant(SMS_FIXTURE)), w.aws)
    assert len(w.aws.requests()) == 2


def test_network_error_once_then_success(w):
    w.aws.script([{"abort": True}])
    assert_successful(w.post_telephony(variant(SMS_FIXTURE)), w.aws)
    assert len(w.aws.requests()) == 2


def test_persistent_throttling(w):
    w.aws.script([{"type": "ThrottlingException", "body": {"Message": "Rate exceeded"}}] * 5)
    r = w.post_telephony(variant(SMS_FIXTURE))
    assert_delivery_error(r, "THROTTLED", secret_text="Rate exceeded")
    assert 2 <= len(w.aws.requests()) <= 3
    assert w.aws.messages() == []


def test_persistent_server_error(w):
    w.aws.script([{"status": 500, "raw": "<html>oops</html>"}] * 5)
    r = w.post_telephony(variant(SMS_FIXTURE))
    assert_delivery_error(r, "PROVIDER_UNAVAILABLE", secret_text="oops")
    assert 2 <= len(w.aws.requests()) <= 3
    assert all(rec["signature_ok"] for rec in w.aws.requests())


def test_hang_past_the_deadline_is_a_timeout(hw):
    hw.aws.script([{"hang": 10}])
    t0 = time.monotonic()
    r = hw.post_telephony(variant(SMS_FIXTURE))
    elapsed = time.monotonic() - t0
    assert_pending(r, "TIMEOUT")
    assert elapsed < 1.5 + 1.0, f"answered after {elapsed:.2f}s with DEADLINE_MS=1500"
    time.sleep(0.5)
    assert len(hw.aws.requests()) == 1, "no retry after a timeout"


def test_retries_stay_within_the_deadline(hw):
    hw.aws.script([{"status": 503, "raw": "busy"}, {"hang": 10}, {"ok": True}])
    t0 = time.monotonic()
    r = hw.post_telephony(variant(SMS_FIXTURE))
    elapsed = time.monotonic() - t0
    kind = answer_kind(r)
    if kind[0] == "PENDING":
        assert_pending(r, "TIMEOUT")
    else:
        assert_delivery_error(r, "PROVIDER_UNAVAILABLE")
    assert elapsed < 1.5 + 1.0, f"answered after {elapsed:.2f}s with DEADLINE_MS=1500"
    time.sleep(0.5)
    assert len(hw.aws.requests()) == 2


# ---- idempotency -----------------------------------------------------------------------------------
def test_replay_of_a_success_is_identical_and_not_resent(w):
    body = variant(SMS_FIXTURE)
    r1 = w.post_telephony(body)
    assert_successful(r1, w.aws)
    r2 = w.post_telephony(body)
    assert r2.status_code == r1.status_code
    assert r2.content == r1.content
    assert len(w.aws.requests()) == 1


def test_replay_of_a_failure_is_identical_and_not_resent(w):
    w.aws.script([{"type": "ConflictException", "body": {"Reason": "DESTINATION_PHONE_NUMBER_OPTED_OUT",
                                                          "ResourceType": "phone-number", "ResourceId": "x"}},
                  {"ok": True}, {"ok": True}])
    body = variant(VOICE_FIXTURE)
    r1 = w.post_telephony(body)
    assert_failed(r1, "OPTED_OUT")
    r2 = w.post_telephony(body)
    assert (r2.status_code, r2.content) == (r1.status_code, r1.content)
    assert len(w.aws.requests()) == 1


def test_replay_with_a_fresh_token_is_still_deduplicated(w):
    body = variant(SMS_FIXTURE)
    r1 = w.post_telephony(body)
    r2 = w.post_telephony(body)  # post_telephony mints a new token each time
    assert r1.content == r2.content
    assert len(w.aws.requests()) == 1


def test_a_different_event_id_is_sent_again(w):
    body = variant(SMS_FIXTURE)
    assert_successful(w.post_telephony(body), w.aws)
    body2 = json.loads(json.dumps(body))
    body2["eventId"] = str(uuid.uuid4())
    w.aws.reset()
    assert_successful(w.post_telephony(body2), w.aws)


# ---- preview ----------------------------------------------------------------------------------------
def test_preview_is_sent_under_the_default_policy(w):
    body = variant(PREVIEW_FIXTURE)
    rec = assert_successful(w.post_telephony(body), w.aws)
    assert rec["params"]["DestinationPhoneNumber"] == "+9876543210"


def test_preview_is_simulated_when_configured(hw):
    body = variant(PREVIEW_FIXTURE)
    assert_successful(hw.post_telephony(body), hw.aws, transaction_prefix="preview-")
    assert hw.aws.requests() == []


def test_non_preview_is_sent_under_the_simulate_policy(hw):
    body = variant(SMS_FIXTURE, url="/idp/idx/generatePreviewish")
    assert_successful(hw.post_telephony(body), hw.aws)


# ---- optional settings ------------------------------------------------------------------------------
def test_configured_sms_fields_and_session_token(hw):
    body = variant(SMS_FIXTURE)
    rec = assert_successful(hw.post_telephony(body), hw.aws)
    p = assert_sms(rec, body, e164="+14155550123", identity=POOL_US, locale="en-US")
    assert p["ProtectConfigurationId"] == "protect-e2e0000000000000000000001"
    assert p["MaxPrice"] == "0.05000"
    assert "ConfigurationSetName" not in p
    assert "MaxPricePerMinute" not in p
    assert rec["headers"].get("x-amz-security-token")  # and the mock checked it against its token


def test_configured_voice_fields(hw):
    body = variant(VOICE_FIXTURE)
    rec = assert_successful(hw.post_telephony(body), hw.aws)
    p = assert_voice(rec, body, e164="+34612345678", identity=PHONE_ES, locale="es-ES")
    assert p["ProtectConfigurationId"] == "protect-e2e0000000000000000000001"
    assert p["MaxPricePerMinute"] == "0.10000"
    assert "MaxPrice" not in p and "ConfigurationSetName" not in p


# ---- logs ---------------------------------------------------------------------------------------------
def test_one_json_log_line_per_request_with_masked_phone(w):
    phone = random_us_number()
    body = variant(SMS_FIXTURE, phone=phone)
    assert_successful(w.post_telephony(body), w.aws)
    lines = w.wait_for_log(body["eventId"])
    assert len(lines) >= 1, "no log line carries the eventId"
    parsed = []
    for l in lines:
        try:
            parsed.append(json.loads(l))
        except ValueError:
            pass
    assert len(parsed) == 1, f"expected exactly one JSON log line for the request: {lines}"
    assert parsed[0].get("eventId") == body["eventId"], parsed[0]
    assert any(masked(phone).search(l) for l in lines), lines
    text = "\n".join(lines)
    assert mp(body)["otpCode"] not in text and phone not in text and phone[1:] not in text


def test_concurrent_requests_are_independent(w):
    bodies = [variant(SMS_FIXTURE, phone=random_us_number()) for _ in range(6)]
    results = [None] * len(bodies)

    def go(i):
        results[i] = w.post_telephony(bodies[i])

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    sent = {r["params"]["DestinationPhoneNumber"]: r for r in w.aws.messages()}
    assert len(sent) == len(bodies)
    for b, r in zip(bodies, results):
        assert r.status_code == 200, r.text
        tid = r.json()["commands"][0]["value"][0]["transactionId"]
        rec = sent[mp(b)["phoneNumber"]]
        assert tid == rec["message_id"]
        assert rec["params"]["MessageBody"] == expected_sms_body("en-US", mp(b)["otpCode"])
