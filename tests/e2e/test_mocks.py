"""Self-tests of the mocks. They need no Worker: botocore/boto3 and PyJWT play the client."""
from __future__ import annotations

import json
import threading
import time

import boto3
import jwt
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from mocks.aws import MockMessaging, model_status
from mocks.okta import ATTACKS, MockOkta, b64u_decode

AKID = "AKIDSELFTEST00000001"
SECRET = "selftest/secret/0123456789abcdefghijklmn"
TOKEN = "selftest-session-token"
POOL = "arn:aws:sms-voice:us-east-1:111122223333:pool/pool-us"


@pytest.fixture(scope="module")
def aws():
    m = MockMessaging(AKID, SECRET)
    yield m
    m.close()


@pytest.fixture(autouse=True)
def _clean(aws):
    aws.reset()


@pytest.fixture(scope="module")
def okta():
    m = MockOkta()
    yield m
    m.close()


def client(endpoint, region="us-east-1", akid=AKID, secret=SECRET, token=None):
    return boto3.client("pinpoint-sms-voice-v2", endpoint_url=endpoint, region_name=region,
                        aws_access_key_id=akid, aws_secret_access_key=secret, aws_session_token=token,
                        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}))


def signed(aws, op, params, *, region="us-east-1", secret=SECRET, akid=AKID, token=None, service="sms-voice",
           body=None):
    body = body if body is not None else json.dumps(params).encode()
    req = AWSRequest(method="POST", url=aws.endpoint + "/", data=body, headers={
        "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": f"PinpointSMSVoiceV2.{op}"})
    SigV4Auth(Credentials(akid, secret, token), service, region).add_auth(req)
    return dict(req.headers.items()), body


SMS = {"DestinationPhoneNumber": "+14155550123", "OriginationIdentity": POOL, "MessageBody": "code 123456",
       "MessageType": "TRANSACTIONAL", "TimeToLive": 300, "Context": {"oktaEventId": "evt-1"}}


# ---- AWS mock ------------------------------------------------------------------------------------
def test_boto3_send_is_accepted(aws):
    out = client(aws.endpoint).send_text_message(**SMS)
    [rec] = aws.requests()
    assert rec["signature_ok"], rec["signature_error"]
    assert rec["model_errors"] == []
    assert rec["op"] == "SendTextMessage" and rec["params"] == SMS
    assert out["MessageId"] == rec["message_id"] and aws.messages() == [rec]


def test_botocore_signed_request_accepted_and_voice_op(aws):
    params = {"DestinationPhoneNumber": "+34612345678", "OriginationIdentity": POOL,
              "MessageBody": "<speak>1 2 3</speak>", "MessageBodyTextType": "SSML", "VoiceId": "LUCIA"}
    headers, body = signed(aws, "SendVoiceMessage", params)
    r = requests.post(aws.endpoint + "/", data=body, headers=headers, timeout=5)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/x-amz-json-1.0"
    assert set(r.json()) == {"MessageId"}
    assert aws.messages()[0]["op"] == "SendVoiceMessage"


def _post(aws, headers, body):
    return requests.post(aws.endpoint + "/", data=body, headers=headers, timeout=5)


def test_tampered_body_rejected(aws):
    headers, body = signed(aws, "SendTextMessage", SMS)
    i = body.index(b"123456")
    bad = body[:i] + b"9" + body[i + 1:]
    r = _post(aws, headers, bad)
    assert r.status_code == 403
    assert r.json()["__type"] == "InvalidSignatureException"
    assert r.headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    [rec] = aws.requests()
    assert not rec["signature_ok"] and rec["signature_error"] == "signature mismatch"
    assert aws.messages() == []


@pytest.mark.parametrize("kw,why", [
    ({"region": "us-west-2"}, "region"),
    ({"secret": SECRET[:-1] + "X"}, "signature mismatch"),
    ({"akid": "AKIDSOMEONEELSE00001"}, "access key"),
    ({"service": "sms"}, "service"),
    ({"token": "unexpected"}, "security-token"),
])
def test_bad_credentials_rejected(aws, kw, why):
    headers, body = signed(aws, "SendTextMessage", SMS, **kw)
    r = _post(aws, headers, body)
    assert r.status_code == 403, r.text
    assert why in aws.requests()[0]["signature_error"]


def test_stale_date_and_tampered_header_rejected(aws):
    headers, body = signed(aws, "SendTextMessage", SMS)
    h = dict(headers, **{"X-Amz-Target": "PinpointSMSVoiceV2.SendVoiceMessage"})
    assert _post(aws, h, body).status_code == 403
    old = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() - 600))
    h = dict(headers, **{"X-Amz-Date": old})
    assert _post(aws, h, body).status_code == 403
    assert "away from now" in aws.requests()[-1]["signature_error"]


def test_session_token_required_when_configured():
    m = MockMessaging(AKID, SECRET, session_token=TOKEN)
    try:
        assert client(m.endpoint, token=TOKEN).send_text_message(**SMS)["MessageId"]
        with pytest.raises(Exception):
            client(m.endpoint).send_text_message(**SMS)
        assert [r["signature_ok"] for r in m.requests()] == [True, False]
    finally:
        m.close()


@pytest.mark.parametrize("params,needle", [
    ({k: v for k, v in SMS.items() if k != "DestinationPhoneNumber"}, "DestinationPhoneNumber"),
    (dict(SMS, TimeToLive=4), "TimeToLive"),
    (dict(SMS, TimeToLive=259201), "TimeToLive"),
    (dict(SMS, TimeToLive="300"), "TimeToLive"),
    (dict(SMS, MessageType="OTP"), "MessageType"),
    (dict(SMS, MaxPrice="0.050000"), "MaxPrice"),
    (dict(SMS, MaxPrice="$0.05"), "MaxPrice"),
    (dict(SMS, MaxPrice="0.5"), None),
    (dict(SMS, DestinationPhoneNumber="+1 415 555 0123"), "DestinationPhoneNumber"),
    (dict(SMS, MaxPrice="0.05000"), None),
    (dict(SMS, VoiceId="JOANNA"), "VoiceId"),
    (dict(SMS, Context={f"k{i}": "v" for i in range(6)}), "Context"),
    (dict(SMS, Context={"oktaEventId": ""}), "Context"),
    (dict(SMS, MessageBody="x" * 1601), "MessageBody"),
])
def test_model_validation(aws, params, needle):
    headers, body = signed(aws, "SendTextMessage", params)
    r = _post(aws, headers, body)
    rec = aws.requests()[0]
    assert rec["signature_ok"]
    if needle is None:
        assert r.status_code == 200 and rec["model_errors"] == []
    else:
        assert r.status_code == 400, r.text
        assert r.json()["__type"] == "ValidationException"
        assert any(needle in e for e in rec["model_errors"]), rec["model_errors"]
        assert aws.messages() == []


def test_voice_requires_origination_identity(aws):
    headers, body = signed(aws, "SendVoiceMessage", {"DestinationPhoneNumber": "+34612345678"})
    assert _post(aws, headers, body).status_code == 400
    assert any("OriginationIdentity" in e for e in aws.requests()[0]["model_errors"])


def test_framing_checked(aws):
    headers, body = signed(aws, "SendTextMessage", SMS)
    h = {k: v for k, v in headers.items()}
    h["Content-Type"] = "application/json"  # not signed by botocore -> signature still fine
    r = _post(aws, h, body)
    rec = aws.requests()[0]
    if rec["signature_ok"]:
        assert r.status_code == 400 and any("Content-Type" in e for e in rec["model_errors"])
    else:
        assert r.status_code == 403
    headers, body = signed(aws, "NoSuchOperation", SMS)
    r = _post(aws, headers, body)
    assert r.status_code == 400 and r.json()["__type"] == "UnknownOperationException"


def test_exception_status_codes_from_model():
    assert model_status("ValidationException") == 400
    assert model_status("ConflictException") == 400
    assert model_status("ServiceQuotaExceededException") == 400  # the model has no httpStatusCode trait
    assert model_status("ThrottlingException") == 400
    assert model_status("InternalServerException") == 500        # "fault": true


def test_fault_script_order_and_boto3_parses_errors(aws):
    aws.script([
        {"type": "ConflictException", "body": {"Message": "opted out", "Reason": "DESTINATION_PHONE_NUMBER_OPTED_OUT",
                                               "ResourceType": "phone-number", "ResourceId": "+14155550123"}},
        {"type": "ValidationException", "body": {"Message": "blocked", "Reason": "DESTINATION_COUNTRY_BLOCKED"}},
        {"type": "ServiceQuotaExceededException", "body": {"Message": "limit",
                                                           "Reason": "MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT"}},
        {"type": "ThrottlingException"},
        {"status": 500, "raw": "<html>oops</html>"},
        {"ok": True, "MessageId": "fixed-id"},
    ])
    c = client(aws.endpoint)
    seen = []
    for _ in range(5):
        try:
            c.send_text_message(**SMS)
            seen.append(("ok", None, None))
        except c.exceptions.ClientError as e:
            seen.append((e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"],
                         e.response.get("Reason")))
    assert seen == [
        ("ConflictException", 400, "DESTINATION_PHONE_NUMBER_OPTED_OUT"),
        ("ValidationException", 400, "DESTINATION_COUNTRY_BLOCKED"),
        ("ServiceQuotaExceededException", 400, "MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT"),
        ("ThrottlingException", 400, None),
        ("500", 500, None),
    ]
    assert c.send_text_message(**SMS)["MessageId"] == "fixed-id"
    assert aws.pending_script() == 0
    assert [r["outcome"] for r in aws.requests()] == ["error"] * 5 + ["sent"]
    assert len(aws.messages()) == 1


def test_invalid_requests_do_not_consume_the_script(aws):
    aws.script([{"type": "ThrottlingException"}])
    headers, body = signed(aws, "SendTextMessage", SMS, region="eu-west-1")
    assert _post(aws, headers, body).status_code == 403
    assert aws.pending_script() == 1


def test_hang_does_not_block_other_requests(aws):
    aws.script([{"hang": 3}])
    out = {}

    def slow():
        headers, body = signed(aws, "SendTextMessage", SMS)
        t = time.monotonic()
        try:
            out["status"] = _post(aws, headers, body).status_code
        finally:
            out["elapsed"] = time.monotonic() - t

    th = threading.Thread(target=slow)
    th.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    headers, body = signed(aws, "SendTextMessage", SMS)
    assert _post(aws, headers, body).status_code == 200
    assert time.monotonic() - t0 < 1.0
    assert aws.requests()[0]["outcome"] == "hang"  # recorded before the sleep
    th.join(10)
    assert out["status"] == 200 and out["elapsed"] >= 2.9


def test_abort_is_a_network_error(aws):
    aws.script([{"abort": True}])
    headers, body = signed(aws, "SendTextMessage", SMS)
    with pytest.raises(requests.exceptions.ConnectionError):
        _post(aws, headers, body)
    assert aws.requests()[0]["outcome"] == "aborted"


def test_delay_answers_late_and_as_the_rest_of_the_entry_says(aws):
    aws.script([{"delay": 0.4, "ok": True, "MessageId": "late-id"}, {"delay": 0.2, "type": "ThrottlingException"},
                {"delay": 0.1}])
    c = client(aws.endpoint)
    t0 = time.monotonic()
    assert c.send_text_message(**SMS)["MessageId"] == "late-id"
    assert time.monotonic() - t0 >= 0.39
    t0 = time.monotonic()
    with pytest.raises(c.exceptions.ThrottlingException):
        c.send_text_message(**SMS)
    assert time.monotonic() - t0 >= 0.19
    assert c.send_text_message(**SMS)["MessageId"]
    assert [r["outcome"] for r in aws.requests()] == ["sent", "error", "sent"]
    assert len(aws.messages()) == 2


def test_delayed_answers_overlap(aws):
    aws.script([{"delay": 0.5, "ok": True}] * 4)
    out = []

    def one():
        headers, body = signed(aws, "SendTextMessage", SMS)
        out.append(_post(aws, headers, body).status_code)

    t0 = time.monotonic()
    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert out == [200] * 4
    assert time.monotonic() - t0 < 1.5, "the delays ran one after another"


def test_stall_body_sends_headers_and_part_of_the_body_then_stalls(aws):
    import socket
    from urllib.parse import urlparse

    aws.script([{"stall_body": 2}])
    headers, body = signed(aws, "SendTextMessage", SMS)
    u = urlparse(aws.endpoint)
    s = socket.create_connection((u.hostname, u.port), timeout=5)
    try:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        s.sendall(f"POST / HTTP/1.1\r\nHost: {u.netloc}\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode() + body)
        t0 = time.monotonic()
        got = b""
        s.settimeout(1.0)
        while b"\r\n\r\n" not in got:
            got += s.recv(65536)
        head_raw, _, part = got.partition(b"\r\n\r\n")
        assert head_raw.startswith(b"HTTP/1.1 200"), head_raw
        length = int([l.split(b":", 1)[1] for l in head_raw.split(b"\r\n") if l.lower().startswith(b"content-length:")][0])
        try:
            while len(part) < length // 2:
                part += s.recv(65536)
        except socket.timeout:
            pass
        assert 0 < len(part) < length, (len(part), length)
        with pytest.raises(socket.timeout):   # nothing more for a while
            s.recv(65536)
        assert time.monotonic() - t0 < 2.0
        s.settimeout(5)
        while len(part) < length:
            chunk = s.recv(65536)
            assert chunk, "closed before the rest of the body"
            part += chunk
        assert time.monotonic() - t0 >= 1.9
        assert json.loads(part)["MessageId"] == aws.requests()[0]["message_id"]
    finally:
        s.close()
    rec = aws.requests()[0]
    assert rec["outcome"] == "stalled" and rec["status"] == 200 and rec["message_id"]
    assert aws.messages() == [], "a stalled answer is not counted as a confirmed send"


# ---- Okta mock -----------------------------------------------------------------------------------
def verify(okta, token, **kw):
    key = jwt.PyJWKClient(okta.jwks_uri, cache_keys=False, cache_jwk_set=False).get_signing_key_from_jwt(token)
    return jwt.decode(token, key.key, algorithms=kw.pop("algorithms", ["RS256"]), audience=okta.audience,
                      issuer=okta.issuer, **kw)


def test_jwks_shape_and_headers(okta):
    okta.reset_counters()
    r = requests.get(okta.jwks_uri, timeout=5)
    assert r.status_code == 200 and r.headers["Cache-Control"] == "max-age=3600"
    [k] = [k for k in r.json()["keys"] if k["kid"] == okta.current.kid]
    assert set(k) == {"kty", "use", "alg", "kid", "n", "e"}
    assert (k["kty"], k["use"], k["alg"], k["e"]) == ("RSA", "sig", "RS256", "AQAB")
    assert len(b64u_decode(k["n"])) == 256
    assert okta.jwks_requests == 1
    okta.cache_control = "max-age=5, must-revalidate"
    assert requests.get(okta.jwks_uri, timeout=5).headers["Cache-Control"] == "max-age=5, must-revalidate"
    okta.cache_control = "max-age=3600"


def test_minted_token_verifies_with_pyjwt(okta):
    tok = okta.mint()
    header = jwt.get_unverified_header(tok)
    assert header == {"alg": "RS256", "kid": okta.current.kid}
    claims = verify(okta, tok)
    assert claims["ver"] == 1 and claims["jti"].startswith("AT.")
    assert claims["cid"] == claims["sub"] == "0oaTESTCLIENT"
    assert claims["scp"] == ["okta.telephony.send"]
    assert claims["exp"] - claims["iat"] == 3600
    assert "cid" not in verify(okta, okta.mint(cid=None))
    assert verify(okta, okta.mint(scp="a okta.telephony.send"))["scp"] == "a okta.telephony.send"


def test_rotation_remove_and_failures(okta):
    old = okta.current.kid
    old_tok = okta.mint()
    new = okta.add_key()
    assert okta.current.kid == new != old
    kids = [k["kid"] for k in requests.get(okta.jwks_uri, timeout=5).json()["keys"]]
    assert old in kids and new in kids
    assert verify(okta, okta.mint())["iss"] == okta.issuer
    assert verify(okta, old_tok)
    okta.remove_key(old)
    assert old not in [k["kid"] for k in okta.jwks()["keys"]]
    with pytest.raises(jwt.exceptions.PyJWKClientError):
        verify(okta, old_tok)
    okta.publish([old, new])
    assert verify(okta, old_tok)
    okta.fail_next(2)
    n = okta.jwks_requests
    assert [requests.get(okta.jwks_uri, timeout=5).status_code for _ in range(3)] == [503, 503, 200]
    assert okta.jwks_requests == n + 3


# attacks that are well signed (but violate policy) vs. attacks that must fail any RS256 verifier
WELL_SIGNED = {"rs384": ["RS384"], "ps256": ["PS256"], "oversized": ["RS256"]}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_builders(okta, name):
    okta.reset_counters()
    tok = okta.attack(name)
    if name in WELL_SIGNED:
        assert verify(okta, tok, algorithms=WELL_SIGNED[name])
        if name == "oversized":
            assert len(tok) > 8192
        else:
            with pytest.raises(jwt.exceptions.InvalidAlgorithmError):
                verify(okta, tok)
        return
    if name == "no_kid":
        assert "kid" not in jwt.get_unverified_header(tok)
        assert jwt.decode(tok, okta.current.public, algorithms=["RS256"], audience=okta.audience)
        return
    with pytest.raises(Exception):
        verify(okta, tok)
    segments = tok.split(".")
    if name == "two_segments":
        assert len(segments) == 2
    elif name == "four_segments":
        assert len(segments) == 4
    else:
        assert len(segments) == 3
    assert okta.attacker_requests == 0  # PyJWT, like the Worker, must never follow jku/x5u


def test_attacker_endpoints_count(okta):
    okta.reset_counters()
    assert requests.get(okta.attacker_jwks_uri, timeout=5).json()["keys"][0]["kid"] == okta.attacker.kid
    assert okta.attacker_requests == 1
    okta.reset_counters()
