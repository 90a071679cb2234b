"""Authentication of Okta's calls: OAuth access tokens (JWKS) and the header-secret mode."""
from __future__ import annotations

import secrets
import time

import pytest

from conftest import HOOK_HEADER, HOOK_SECRET
from helpers import (SMS_FIXTURE, assert_auth_unavailable, assert_successful, assert_unauthorized, log_mark,
                     refusal_in_log, variant)
from mocks.okta import ATTACKS, MockOkta, b64u


@pytest.fixture
def w(w):
    """conftest's `w`, its Okta stand-in's counters cleared too."""
    w.okta.reset_counters()
    return w


def bearer(token: str) -> dict:
    return {"Authorization": "Bearer " + token}


def post(w, token: str | None = None, headers: dict | None = None, body=None):
    h = dict(headers or {})
    if token is not None:
        h.update(bearer(token))
    return w.post_telephony(body if body is not None else variant(SMS_FIXTURE), h, auth=False)


def refused(w, send, log_reason, *, body_reason: str | None = "INVALID_CREDENTIALS", locations=("Authorization",)):
    """Sends with `send()`, then checks the generic 401 body (`body_reason`) and that the request's
    own log line names the exact cause: `REFUSED:<log_reason>` (a str, or a set of acceptable ones).
    `body_reason=None` where "nothing presented" and "not accepted" are both fair (an empty header,
    the secret in another header): then the body says MISSING_CREDENTIALS exactly when the log does."""
    mark = log_mark(w)
    r = send()
    assert_unauthorized(r, w.aws, reason=body_reason, locations=locations)
    got = refusal_in_log(w, mark, status=401)
    allowed = {log_reason} if isinstance(log_reason, str) else set(log_reason)
    if body_reason is None:
        said = r.json()["error"]["errorCauses"][0]["reason"]
        if said == "MISSING_CREDENTIALS":
            allowed = {"MISSING_CREDENTIALS"}
        else:
            allowed -= {"MISSING_CREDENTIALS"}
    assert got in allowed, f"log says REFUSED:{got}, expected one of {sorted(allowed)}"
    return r


# ---- OAuth: the happy path and the header --------------------------------------------------------
def test_valid_token_is_accepted(w):
    assert_successful(post(w, w.okta.mint()), w.aws)


def test_missing_authorization_is_401_missing_credentials(w):
    refused(w, lambda: post(w), "MISSING_CREDENTIALS", body_reason="MISSING_CREDENTIALS")


MALFORMED_AUTHORIZATION = {
    "": "MALFORMED_CREDENTIALS", "Bearer": "MALFORMED_CREDENTIALS", "Bearer ": "MALFORMED_CREDENTIALS",
    "Basic dXNlcjpwYXNzd29yZA==": "MALFORMED_CREDENTIALS", "Token abc.def.ghi": "MALFORMED_CREDENTIALS",
    "Bearer not-a-jwt": "MALFORMED_TOKEN", "Bearer a.b.c": "MALFORMED_TOKEN", "Bearer ....": "MALFORMED_TOKEN",
}


@pytest.mark.parametrize("value", list(MALFORMED_AUTHORIZATION))
def test_malformed_authorization_is_401(w, value):
    if value == "":  # an empty header: "nothing presented" or "not accepted" are both fair
        refused(w, lambda: post(w, headers={"Authorization": value}), {"MISSING_CREDENTIALS", "MALFORMED_CREDENTIALS"},
                body_reason=None)
        return
    refused(w, lambda: post(w, headers={"Authorization": value}), MALFORMED_AUTHORIZATION[value])


def test_raw_token_without_scheme_is_401(w):
    refused(w, lambda: post(w, headers={"Authorization": w.okta.mint()}), "MALFORMED_CREDENTIALS")


def test_auth_is_checked_before_the_body_is_parsed(w):
    refused(w, lambda: post(w, body=b"{not json"), "MISSING_CREDENTIALS", body_reason="MISSING_CREDENTIALS")
    refused(w, lambda: post(w, "x.y.z", body=b"{not json"), "MALFORMED_TOKEN")


# ---- OAuth: claims ---------------------------------------------------------------------------------
def _now():
    return int(time.time())


ACCEPTED_CLAIMS = {
    "aud_array_containing": lambda o: {"aud": ["api://other", o.audience]},
    "scp_space_separated": lambda o: {"scp": "openid okta.telephony.send profile"},
    "scp_extra_scopes": lambda o: {"scp": ["okta.users.read", "okta.telephony.send"]},
    "exp_30s_ago_within_leeway": lambda o: {"exp": _now() - 30, "iat": _now() - 3630},
    "nbf_30s_ahead_within_leeway": lambda o: {"nbf": _now() + 30},
    "nbf_past": lambda o: {"nbf": _now() - 10},
    "iat_30s_ahead_within_leeway": lambda o: {"iat": _now() + 30},
    "no_sub": lambda o: {"sub": None},
    "extra_claims": lambda o: {"uid": "00uXXXX", "groups": ["a", "b"], "custom": {"x": 1}},
}

# name -> (claim overrides, the reason the log line must give)
REJECTED_CLAIMS = {
    "iss_other_server": (lambda o: {"iss": o.issuer.replace("aus_test", "aus_other")}, "INVALID_ISSUER"),
    "iss_trailing_slash": (lambda o: {"iss": o.issuer + "/"}, "INVALID_ISSUER"),
    "iss_https": (lambda o: {"iss": o.issuer.replace("http://", "https://")}, "INVALID_ISSUER"),
    "iss_org_server": (lambda o: {"iss": o.base}, "INVALID_ISSUER"),
    "iss_missing": (lambda o: {"iss": None}, "INVALID_ISSUER"),
    "aud_wrong": (lambda o: {"aud": "api://default"}, "INVALID_AUDIENCE"),
    "aud_array_without": (lambda o: {"aud": ["api://default", "api://okta-edge-hooks-2"]}, "INVALID_AUDIENCE"),
    "aud_prefix": (lambda o: {"aud": "api://okta-edge-hook"}, "INVALID_AUDIENCE"),
    "aud_missing": (lambda o: {"aud": None}, "INVALID_AUDIENCE"),
    "cid_not_allowed": (lambda o: {"cid": "0oaOTHERCLIENT", "sub": "0oaOTHERCLIENT"}, "CLIENT_NOT_ALLOWED"),
    "cid_case_changed": (lambda o: {"cid": "0oatestclient"}, "CLIENT_NOT_ALLOWED"),
    "cid_missing": (lambda o: {"cid": None}, "CLIENT_NOT_ALLOWED"),
    "scp_missing": (lambda o: {"scp": None}, "INSUFFICIENT_SCOPE"),
    "scp_array_without": (lambda o: {"scp": ["okta.users.read"]}, "INSUFFICIENT_SCOPE"),
    "scp_prefix_only": (lambda o: {"scp": ["okta.telephony"]}, "INSUFFICIENT_SCOPE"),
    "scp_superstring": (lambda o: {"scp": "okta.telephony.sendx"}, "INSUFFICIENT_SCOPE"),
    "scp_empty": (lambda o: {"scp": []}, "INSUFFICIENT_SCOPE"),
    "exp_past_beyond_leeway": (lambda o: {"exp": _now() - 300, "iat": _now() - 3900}, "TOKEN_EXPIRED"),
    "exp_90s_ago_default_leeway_60": (lambda o: {"exp": _now() - 90, "iat": _now() - 3690}, "TOKEN_EXPIRED"),
    "nbf_90s_ahead_default_leeway_60": (lambda o: {"nbf": _now() + 90}, "TOKEN_NOT_YET_VALID"),
    "exp_missing": (lambda o: {"exp": None}, "TOKEN_EXPIRED"),
    # not a NumericDate: the claims do not even parse
    "exp_not_a_number": (lambda o: {"exp": "tomorrow"}, {"MALFORMED_TOKEN", "TOKEN_EXPIRED"}),
    "nbf_future_beyond_leeway": (lambda o: {"nbf": _now() + 600}, "TOKEN_NOT_YET_VALID"),
    "iat_future_beyond_leeway": (lambda o: {"iat": _now() + 600, "exp": _now() + 4200}, "TOKEN_ISSUED_IN_FUTURE"),
}


@pytest.mark.parametrize("name", sorted(ACCEPTED_CLAIMS))
def test_claims_accepted(w, name):
    tok = w.okta.mint(**ACCEPTED_CLAIMS[name](w.okta))
    assert_successful(post(w, tok), w.aws)


@pytest.mark.parametrize("name", sorted(REJECTED_CLAIMS))
def test_claims_rejected(w, name):
    claims, reason = REJECTED_CLAIMS[name]
    tok = w.okta.mint(**claims(w.okta))
    r = refused(w, lambda: post(w, tok), reason)
    assert w.okta.issuer not in r.text and w.okta.jwks_uri not in r.text


# ---- OAuth: hostile tokens ---------------------------------------------------------------------------
ALG = "ALGORITHM_NOT_ALLOWED"
# attack -> the reason (or the acceptable reasons) the log line must give
ATTACK_REASONS = {
    "alg_none": {ALG, "MALFORMED_TOKEN"},
    "alg_none_capitalised": {ALG, "MALFORMED_TOKEN"},
    "empty_signature_rs256": "MALFORMED_TOKEN",
    "hs256_public_key": ALG,
    "hs256_public_key_pkcs1": ALG,
    "rs384": ALG,
    "ps256": ALG,
    "no_kid": "MISSING_KEY_ID",
    "wrong_key_legit_kid": "INVALID_SIGNATURE",
    "jku_attacker": "UNKNOWN_KEY_ID",
    "x5u_attacker": "UNKNOWN_KEY_ID",
    "jwk_attacker": "UNKNOWN_KEY_ID",
    "jwk_attacker_legit_kid": "INVALID_SIGNATURE",
    "x5c_attacker": "UNKNOWN_KEY_ID",
    "tampered_claims": "INVALID_SIGNATURE",
    "tampered_scope": "INVALID_SIGNATURE",
    "truncated_signature": {"INVALID_SIGNATURE", "MALFORMED_TOKEN"},
    "two_segments": "MALFORMED_TOKEN",
    "four_segments": "MALFORMED_TOKEN",
    "bad_base64": {"MALFORMED_TOKEN", "INVALID_SIGNATURE"},
    "oversized": "TOKEN_TOO_LARGE",
}


def test_every_attack_has_an_expected_reason():
    assert set(ATTACK_REASONS) == set(ATTACKS)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_is_rejected(w, name):
    tok = w.okta.attack(name)
    r = refused(w, lambda: post(w, tok), ATTACK_REASONS[name])
    assert w.okta.attacker_requests == 0, "the Worker fetched a URL named by the token"
    assert w.okta.attacker_jwks_uri not in r.text and w.okta.jwks_uri not in r.text


@pytest.mark.parametrize("field", ["jku", "x5u", "jwk", "x5c"])
def test_key_location_headers_are_ignored_on_a_genuine_token(w, field):
    o = w.okta
    value = {"jku": o.attacker_jwks_uri, "x5u": o.attacker_cert_uri, "jwk": o.attacker.jwk(),
             "x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]}[field]
    tok = o.mint(headers={field: value})
    assert_successful(post(w, tok), w.aws)
    assert o.attacker_requests == 0


def test_unknown_kid_signed_with_a_known_key_is_rejected(w):
    kid = "unknown-" + secrets.token_hex(8)
    tok = w.okta.mint(headers={"kid": kid})
    r = refused(w, lambda: post(w, tok), "UNKNOWN_KEY_ID")
    assert kid not in r.text


def test_typ_header_is_tolerated(w):
    assert_successful(post(w, w.okta.mint(headers={"typ": "JWT"})), w.aws)


def test_token_size_limit(w):
    small = w.okta.mint(pad="A" * 5400)
    assert 7000 < len(small) <= 8192
    assert_successful(post(w, small), w.aws)
    w.aws.reset()
    big = w.okta.mint(pad="A" * 6300)
    assert 8192 < len(big) < 9500
    refused(w, lambda: post(w, big), "TOKEN_TOO_LARGE")


def test_every_rejection_has_the_okta_error_shape(w):
    r = refused(w, lambda: post(w, w.okta.mint(aud="api://default")), "INVALID_AUDIENCE")
    cause = r.json()["error"]["errorCauses"][0]
    assert set(cause) == {"errorSummary", "reason", "locationType", "location", "domain"}
    assert cause["reason"] == "INVALID_CREDENTIALS"


def test_rejections_for_different_causes_have_identical_bodies(w):
    """The body teaches a prober nothing: an expired token, a wrong audience, a bad signature and an
    unknown kid all get byte-identical 401 bodies (the cause is only in the log)."""
    o = w.okta
    tokens = {"expired": o.mint(exp=_now() - 600, iat=_now() - 4200), "audience": o.mint(aud="api://default"),
              "issuer": o.mint(iss=o.base), "scope": o.mint(scp=["x"]), "client": o.mint(cid="0oaOTHER"),
              "signature": o.attack("tampered_claims"), "kid": o.mint(headers={"kid": "nope-" + secrets.token_hex(4)}),
              "malformed": "a.b.c"}
    bodies = {}
    for name, tok in tokens.items():
        r = post(w, tok)
        assert_unauthorized(r, w.aws, reason="INVALID_CREDENTIALS")
        bodies[name] = r.content
    assert len(set(bodies.values())) == 1, bodies


# ---- OAuth: the keys cannot be fetched: 503, generic --------------------------------------------------
@pytest.fixture(scope="module")
def down_okta():
    o = MockOkta("aus_test")
    yield o
    o.close()


def test_keys_unavailable_is_503_generic(worker_factory, down_okta):
    """Okta's JWKS endpoint fails: 503 AUTHENTICATION_UNAVAILABLE. The body does not echo the JWKS
    error or URL; the log line says KEYS_UNAVAILABLE."""
    w = worker_factory.get("jwks-down", {"OKTA_JWKS_REFETCH_COOLDOWN_SECONDS": "1"}, okta=down_okta)
    w.aws.reset()
    down_okta.fail_next(10_000)
    try:
        mark = log_mark(w)
        r = post(w, down_okta.mint())
        assert_auth_unavailable(r, w.aws, secret_texts=(down_okta.jwks_uri, down_okta.issuer, "E0000009",
                                                          "Service unavailable", str(down_okta.port)))
        assert refusal_in_log(w, mark, status=503) == "KEYS_UNAVAILABLE"
        assert down_okta.jwks_requests >= 1, "the keys were never asked for"
    finally:
        down_okta.fail_next(0)


# ---- OAuth: JWKS rotation and refetch limits (own Okta mock, exact counters) -------------------------
ROTATION_COOLDOWN_S = 3  # the rotation instance's OKTA_JWKS_REFETCH_COOLDOWN_SECONDS


def test_rotation_refetch_and_cooldown(rotation_worker):
    w = rotation_worker
    o = w.okta
    w.aws.reset()
    assert_successful(post(w, o.mint()), w.aws)
    base = o.jwks_requests
    assert base >= 1

    # the cache is warm: no fetch for a known kid
    w.aws.reset()
    assert_successful(post(w, o.mint()), w.aws)
    assert o.jwks_requests == base

    # Okta rotates long after the cold fetch; here, once the cooldown that fetch may have started is over
    time.sleep(ROTATION_COOLDOWN_S + 0.5)
    o.add_key()
    w.aws.reset()
    assert_successful(post(w, o.mint()), w.aws)
    assert o.jwks_requests == base + 1, f"JWKS fetched {o.jwks_requests - base} times for a rotation"

    # a flood of unknown kids right after: at most one more fetch, all rejected, nothing sent
    t0 = time.monotonic()
    w.aws.reset()
    for _ in range(20):
        tok = o.mint(headers={"kid": b64u(secrets.token_bytes(18))})
        refused(w, lambda: post(w, tok), "UNKNOWN_KEY_ID")
    assert time.monotonic() - t0 < ROTATION_COOLDOWN_S, "flood too slow to test the cooldown"
    assert o.jwks_requests <= base + 2, f"{o.jwks_requests - base - 1} JWKS fetches for 20 unknown kids"

    # the old key is still published, so old-kid tokens still pass, from the cache
    old = [k for k in o.keys if k != o.current.kid][0]
    before = o.jwks_requests
    assert_successful(post(w, o.mint(key=o.keys[old])), w.aws)
    assert o.jwks_requests == before

    # once the cooldown has passed, the next rotation is picked up again with one fetch
    time.sleep(ROTATION_COOLDOWN_S + 0.5)
    o.add_key()
    before = o.jwks_requests
    w.aws.reset()
    assert_successful(post(w, o.mint()), w.aws)
    assert o.jwks_requests == before + 1
    assert o.attacker_requests == 0


@pytest.mark.parametrize("offset,accepted", [(-100, True), (-200, False)])
def test_configured_leeway_of_120s(rotation_worker, offset, accepted):
    """The rotation instance sets OKTA_CLOCK_SKEW_SECONDS=120."""
    w = rotation_worker
    w.aws.reset()
    tok = w.okta.mint(exp=_now() + offset, iat=_now() + offset - 3600)
    if accepted:
        assert_successful(post(w, tok), w.aws)
    else:
        refused(w, lambda: post(w, tok), "TOKEN_EXPIRED")


# ---- header-secret mode ----------------------------------------------------------------------------
def test_header_secret_accepted(hw):
    assert_successful(hw.post_telephony(variant(SMS_FIXTURE)), hw.aws)


HEADER_LOCATIONS = ("Authorization", HOOK_HEADER)


def test_header_secret_missing_is_401_missing_credentials(hw):
    refused(hw, lambda: hw.post_telephony(variant(SMS_FIXTURE), auth=False), "MISSING_CREDENTIALS",
            body_reason="MISSING_CREDENTIALS", locations=HEADER_LOCATIONS)


@pytest.mark.parametrize("value", [
    "", "wrong-secret-of-similar-length-000", HOOK_SECRET[:-1], HOOK_SECRET + "x", HOOK_SECRET.upper(),
    HOOK_SECRET + " x", "Bearer " + HOOK_SECRET, HOOK_SECRET[:8],
], ids=["empty", "other", "one_short", "one_long", "upper_case", "with_suffix", "bearer_prefix", "prefix"])
def test_header_secret_wrong_is_401(hw, value):
    r = refused(hw, lambda: hw.post_telephony(variant(SMS_FIXTURE), {HOOK_HEADER: value}, auth=False),
                {"INVALID_CREDENTIALS", "MISSING_CREDENTIALS"} if value == "" else "INVALID_CREDENTIALS",
                body_reason=None if value == "" else "INVALID_CREDENTIALS", locations=HEADER_LOCATIONS)
    assert HOOK_SECRET not in r.text


def test_secret_in_another_header_is_401(hw, mocks):
    body = variant(SMS_FIXTURE)
    # nothing in the configured header: "missing" or "not accepted", body and log agreeing
    either = {"MISSING_CREDENTIALS", "INVALID_CREDENTIALS"}
    r = refused(hw, lambda: hw.post_telephony(body, {"Authorization": HOOK_SECRET}, auth=False),
                either, body_reason=None, locations=HEADER_LOCATIONS)
    assert HOOK_SECRET not in r.text
    refused(hw, lambda: hw.post_telephony(body, {"Authorization": "Bearer " + mocks.okta.mint()}, auth=False),
            either, body_reason=None, locations=HEADER_LOCATIONS)
