"""Authentication of Okta's calls: OAuth access tokens (JWKS) and the header-secret mode."""
from __future__ import annotations

import secrets
import time

import pytest

from conftest import HOOK_HEADER, HOOK_SECRET
from helpers import SMS_FIXTURE, assert_successful, assert_unauthorized, variant
from mocks.okta import ATTACKS, b64u


@pytest.fixture
def w(oauth_worker):
    oauth_worker.aws.reset()
    oauth_worker.okta.reset_counters()
    return oauth_worker


@pytest.fixture
def hw(header_worker):
    header_worker.aws.reset()
    return header_worker


def bearer(token: str) -> dict:
    return {"Authorization": "Bearer " + token}


def post(w, token: str | None = None, headers: dict | None = None, body=None):
    h = dict(headers or {})
    if token is not None:
        h.update(bearer(token))
    return w.post_telephony(body if body is not None else variant(SMS_FIXTURE), h, auth=False)


# ---- OAuth: the happy path and the header --------------------------------------------------------
def test_valid_token_is_accepted(w):
    assert_successful(post(w, w.okta.mint()), w.aws)


def test_missing_authorization_is_401_missing_credentials(w):
    assert_unauthorized(post(w), w.aws, reason="MISSING_CREDENTIALS")


@pytest.mark.parametrize("value", ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNzd29yZA==", "Token abc.def.ghi",
                                   "Bearer not-a-jwt", "Bearer a.b.c", "Bearer ...."])
def test_malformed_authorization_is_401(w, value):
    assert_unauthorized(post(w, headers={"Authorization": value}), w.aws)


def test_raw_token_without_scheme_is_401(w):
    assert_unauthorized(post(w, headers={"Authorization": w.okta.mint()}), w.aws)


def test_auth_is_checked_before_the_body_is_parsed(w):
    assert_unauthorized(post(w, body=b"{not json"), w.aws)
    assert_unauthorized(post(w, "x.y.z", body=b"{not json"), w.aws)


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

REJECTED_CLAIMS = {
    "iss_other_server": lambda o: {"iss": o.issuer.replace("aus_test", "aus_other")},
    "iss_trailing_slash": lambda o: {"iss": o.issuer + "/"},
    "iss_https": lambda o: {"iss": o.issuer.replace("http://", "https://")},
    "iss_org_server": lambda o: {"iss": o.base},
    "iss_missing": lambda o: {"iss": None},
    "aud_wrong": lambda o: {"aud": "api://default"},
    "aud_array_without": lambda o: {"aud": ["api://default", "api://okta-edge-hooks-2"]},
    "aud_prefix": lambda o: {"aud": "api://okta-edge-hook"},
    "aud_missing": lambda o: {"aud": None},
    "cid_not_allowed": lambda o: {"cid": "0oaOTHERCLIENT", "sub": "0oaOTHERCLIENT"},
    "cid_case_changed": lambda o: {"cid": "0oatestclient"},
    "cid_missing": lambda o: {"cid": None},
    "scp_missing": lambda o: {"scp": None},
    "scp_array_without": lambda o: {"scp": ["okta.users.read"]},
    "scp_prefix_only": lambda o: {"scp": ["okta.telephony"]},
    "scp_superstring": lambda o: {"scp": "okta.telephony.sendx"},
    "scp_empty": lambda o: {"scp": []},
    "exp_past_beyond_leeway": lambda o: {"exp": _now() - 300, "iat": _now() - 3900},
    "exp_90s_ago_default_leeway_60": lambda o: {"exp": _now() - 90, "iat": _now() - 3690},
    "nbf_90s_ahead_default_leeway_60": lambda o: {"nbf": _now() + 90},
    "exp_missing": lambda o: {"exp": None},
    "exp_not_a_number": lambda o: {"exp": "tomorrow"},
    "nbf_future_beyond_leeway": lambda o: {"nbf": _now() + 600},
    "iat_future_beyond_leeway": lambda o: {"iat": _now() + 600, "exp": _now() + 4200},
}


@pytest.mark.parametrize("name", sorted(ACCEPTED_CLAIMS))
def test_claims_accepted(w, name):
    tok = w.okta.mint(**ACCEPTED_CLAIMS[name](w.okta))
    assert_successful(post(w, tok), w.aws)


@pytest.mark.parametrize("name", sorted(REJECTED_CLAIMS))
def test_claims_rejected(w, name):
    tok = w.okta.mint(**REJECTED_CLAIMS[name](w.okta))
    assert_unauthorized(post(w, tok), w.aws)


# ---- OAuth: hostile tokens ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_is_rejected(w, name):
    tok = w.okta.attack(name)
    assert_unauthorized(post(w, tok), w.aws)
    assert w.okta.attacker_requests == 0, "the Worker fetched a URL named by the token"


@pytest.mark.parametrize("field", ["jku", "x5u", "jwk", "x5c"])
def test_key_location_headers_are_ignored_on_a_genuine_token(w, field):
    o = w.okta
    value = {"jku": o.attacker_jwks_uri, "x5u": o.attacker_cert_uri, "jwk": o.attacker.jwk(),
             "x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]}[field]
    tok = o.mint(headers={field: value})
    assert_successful(post(w, tok), w.aws)
    assert o.attacker_requests == 0


def test_unknown_kid_signed_with_a_known_key_is_rejected(w):
    tok = w.okta.mint(headers={"kid": "unknown-" + secrets.token_hex(8)})
    assert_unauthorized(post(w, tok), w.aws)


def test_typ_header_is_tolerated(w):
    assert_successful(post(w, w.okta.mint(headers={"typ": "JWT"})), w.aws)


def test_token_size_limit(w):
    small = w.okta.mint(pad="A" * 5400)
    assert 7000 < len(small) <= 8192
    assert_successful(post(w, small), w.aws)
    w.aws.reset()
    big = w.okta.mint(pad="A" * 6300)
    assert 8192 < len(big) < 9500
    assert_unauthorized(post(w, big), w.aws)


def test_every_rejection_has_the_okta_error_shape(w):
    body = assert_unauthorized(post(w, w.okta.mint(aud="api://default")), w.aws)
    cause = body["error"]["errorCauses"][0]
    assert set(cause) == {"errorSummary", "reason", "locationType", "location", "domain"}
    assert cause["reason"] != "MISSING_CREDENTIALS"


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
        assert_unauthorized(post(w, tok), w.aws)
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
        assert_unauthorized(post(w, tok), w.aws)


# ---- header-secret mode ----------------------------------------------------------------------------
def test_header_secret_accepted(hw):
    assert_successful(hw.post_telephony(variant(SMS_FIXTURE)), hw.aws)


HEADER_LOCATIONS = ("Authorization", HOOK_HEADER)


def test_header_secret_missing_is_401_missing_credentials(hw):
    r = hw.post_telephony(variant(SMS_FIXTURE), auth=False)
    assert_unauthorized(r, hw.aws, reason="MISSING_CREDENTIALS", locations=HEADER_LOCATIONS)


@pytest.mark.parametrize("value", [
    "", "wrong-secret-of-similar-length-000", HOOK_SECRET[:-1], HOOK_SECRET + "x", HOOK_SECRET.upper(),
    HOOK_SECRET + " x", "Bearer " + HOOK_SECRET, HOOK_SECRET[:8],
], ids=["empty", "other", "one_short", "one_long", "upper_case", "with_suffix", "bearer_prefix", "prefix"])
def test_header_secret_wrong_is_401(hw, value):
    r = hw.post_telephony(variant(SMS_FIXTURE), {HOOK_HEADER: value}, auth=False)
    assert_unauthorized(r, hw.aws, locations=HEADER_LOCATIONS)


def test_secret_in_another_header_is_401(hw, mocks):
    body = variant(SMS_FIXTURE)
    r = hw.post_telephony(body, {"Authorization": HOOK_SECRET}, auth=False)
    assert_unauthorized(r, hw.aws, locations=HEADER_LOCATIONS)
    r = hw.post_telephony(body, {"Authorization": "Bearer " + mocks.okta.mint()}, auth=False)
    assert_unauthorized(r, hw.aws, locations=HEADER_LOCATIONS)
