"""Self-tests of the provisioning mocks (Okta org, Amazon Connect). They need no Worker: PyJWT and
requests play the Okta client, boto3's `connect` client (an independent serializer and signer) plays
the Connect client."""
from __future__ import annotations

import json
import secrets
import time
from urllib.parse import quote

import boto3
import jwt
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from mocks.connect import MockConnect
from mocks.okta_api import EVERYONE_ID, MockOktaOrg

CLIENT_ID = "0oaPROVISIONTEST01"
SCOPES = "okta.users.read okta.groups.read okta.apps.read"
AKID = "AKIDCONNECTSELFTEST1"
SECRET = "connect/selftest/secret/0123456789abcdef"
REGION = "eu-west-2"
SP, SP2, RP, RP2 = "sp-agent", "sp-supervisor", "rp-basic", "rp-sales"


# ---- Okta org ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keys():
    return MockOktaOrg.new_client_key(kid="client-key-1")


@pytest.fixture(scope="module")
def org(keys):
    m = MockOktaOrg(CLIENT_ID, keys[1])
    yield m
    m.close()


@pytest.fixture(autouse=True)
def _clean_org(org):
    org.reset()


def assertion(org, private_jwk, *, headers=None, key=None, alg="RS256", **overrides) -> str:
    now = int(time.time())
    claims = {"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": org.token_url, "iat": now, "exp": now + 300,
              "jti": secrets.token_hex(16)}
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    hdr = {"kid": private_jwk["kid"]} if headers is None else headers
    signing_key = key if key is not None else MockOktaOrg.private_pem(private_jwk)
    return jwt.encode(claims, signing_key, algorithm=alg, headers=hdr)


def token_request(org, client_assertion, scope=SCOPES, **extra):
    form = {"grant_type": "client_credentials", "scope": scope,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": client_assertion, **extra}
    return requests.post(org.token_url, data=form, timeout=5)


def get_token(org, keys, scope=SCOPES) -> str:
    r = token_request(org, assertion(org, keys[0]), scope)
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def api(org, token, path, **params):
    return requests.get(org.org_url + path, params=params, headers={"Authorization": f"Bearer {token}"}, timeout=5)


def test_key_helpers(keys):
    private, public = keys
    assert {"kty", "n", "e", "d", "p", "q", "dp", "dq", "qi", "kid", "alg"} <= set(private)
    assert private["alg"] == "RS256" and private["kid"] == public["kid"] == "client-key-1"
    assert "d" not in public and public["n"] == private["n"]
    assert MockOktaOrg.private_pem(private).startswith("-----BEGIN PRIVATE KEY-----")


def test_client_assertion_gets_a_token_once(org, keys):
    a = assertion(org, keys[0])
    r = token_request(org, a)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600 and body["scope"] == SCOPES
    assert len(body["access_token"]) >= 40
    assert r.headers["Cache-Control"] == "no-store"
    [issued] = [t for t in org.issued_tokens() if t["access_token"] == body["access_token"]]
    assert set(issued["scopes"]) == set(SCOPES.split()) and issued["expires_at"] > time.time() + 3500
    replay = token_request(org, a)
    assert replay.status_code == 401 and replay.json()["error"] == "invalid_client"
    assert "replay" in replay.json()["error_description"]
    recs = org.token_requests()
    assert [r["status"] for r in recs] == [200, 401]
    assert recs[0]["assertion_claims"]["iss"] == CLIENT_ID and recs[0]["assertion_header"]["alg"] == "RS256"


def _hs256(org, keys):
    return assertion(org, keys[0], alg="HS256", key=json.dumps(keys[1]).encode() * 2)


@pytest.mark.parametrize("build,needle", [
    (lambda org, k: assertion(org, k[0], aud=org.org_url), "aud"),
    (lambda org, k: assertion(org, k[0], aud=[org.token_url]), "aud"),
    (lambda org, k: assertion(org, k[0], iss="0oaSOMEONEELSE"), "iss"),
    (lambda org, k: assertion(org, k[0], sub="0oaSOMEONEELSE"), "sub"),
    (lambda org, k: assertion(org, k[0], iat=int(time.time()) - 600, exp=int(time.time()) - 1), "expired"),
    (lambda org, k: assertion(org, k[0], exp=int(time.time()) + 7200), "lifetime"),
    (lambda org, k: assertion(org, k[0], iat=int(time.time()) + 300, exp=int(time.time()) + 600), "future"),
    (lambda org, k: assertion(org, k[0], jti=None), "jti"),
    (lambda org, k: assertion(org, k[0], exp=None), "exp"),
    (_hs256, "HS256"),
    (lambda org, k: assertion(org, k[0], key=MockOktaOrg.private_pem(MockOktaOrg.new_client_key()[0])),
     "signature"),
    (lambda org, k: assertion(org, k[0], headers={"kid": "other-key"}), "kid"),
    (lambda org, k: jwt.encode({"iss": CLIENT_ID}, None, algorithm="none"), "none"),
])
def test_bad_assertions_refused(org, keys, build, needle):
    r = token_request(org, build(org, keys))
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "invalid_client"
    assert needle in r.json()["error_description"]
    assert org.token_requests()[0]["reason"] == r.json()["error_description"]


def test_token_framing_and_scopes(org, keys):
    r = token_request(org, assertion(org, keys[0]), scope="okta.users.read okta.users.manage")
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"
    assert "okta.users.manage" in r.json()["error_description"]
    r = token_request(org, assertion(org, keys[0]), grant_type="password")
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
    r = token_request(org, assertion(org, keys[0]), client_secret="s3cret")
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = requests.post(org.token_url, auth=(CLIENT_ID, "x"), timeout=5, data={
        "grant_type": "client_credentials", "scope": SCOPES, "client_assertion": assertion(org, keys[0]),
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = requests.post(org.token_url, json={"grant_type": "client_credentials"}, timeout=5)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    assert get_token(org, keys, scope="okta.users.read")


def test_token_script(org, keys):
    org.script_token([{"status": 500}, {"status": 429, "reset_in": 2}])
    a = assertion(org, keys[0])
    assert token_request(org, a).status_code == 500
    r = token_request(org, a)
    assert r.status_code == 429 and int(r.headers["X-Rate-Limit-Reset"]) >= time.time() + 1
    assert token_request(org, a).status_code == 200  # faults come before verification: the jti is unspent


def test_api_needs_a_valid_token_with_scope(org, keys):
    uid = org.add_user("tok.user@example.com", "Tok", "User")
    assert requests.get(f"{org.org_url}/api/v1/users/{uid}", timeout=5).status_code == 401
    r = api(org, "not-a-token", f"/api/v1/users/{uid}")
    assert r.status_code == 401 and r.json()["errorCode"] == "E0000011"
    for h in ("X-Rate-Limit-Limit", "X-Rate-Limit-Remaining", "X-Rate-Limit-Reset"):
        assert r.headers[h].isdigit()
    users_only = get_token(org, keys, scope="okta.users.read")
    assert api(org, users_only, f"/api/v1/users/{uid}").status_code == 200
    gid = org.add_group("scoped")
    r = api(org, users_only, f"/api/v1/groups/{gid}/users")
    assert r.status_code == 403 and r.json()["errorCode"] == "E0000006"
    assert requests.post(f"{org.org_url}/api/v1/users/{uid}", timeout=5,
                         headers={"Authorization": f"Bearer {users_only}"}).status_code == 405
    assert api(org, users_only, "/api/v1/nope").status_code == 404
    org.revoke_tokens()
    assert api(org, users_only, f"/api/v1/users/{uid}").status_code == 401
    assert [c["auth_ok"] for c in org.api_calls()] == [False, False, True, True, False, True, False]


def test_user_object_lookup_and_delete(org, keys):
    token = get_token(org, keys)
    uid = org.add_user("Bob.Stone@Example.com", "Bob", "Stone", status="STAGED")
    org.update_profile(uid, mobilePhone="+14155550123")
    org.set_status(uid, "ACTIVE")
    r = api(org, token, f"/api/v1/users/{uid}")
    assert r.status_code == 200
    u = r.json()
    assert u == org.user(uid)
    assert u["id"] == uid and uid.startswith("00u") and len(uid) == 20 and u["status"] == "ACTIVE"
    assert {"created", "activated", "statusChanged", "lastLogin", "lastUpdated", "passwordChanged", "type",
            "credentials", "_links"} <= set(u)
    assert u["profile"] == {"firstName": "Bob", "lastName": "Stone", "email": "Bob.Stone@Example.com",
                            "login": "Bob.Stone@Example.com", "mobilePhone": "+14155550123", "secondEmail": None}
    assert u["_links"]["self"]["href"] == f"{org.org_url}/api/v1/users/{uid}"
    assert api(org, token, "/api/v1/users/" + quote("bob.stone@example.com")).json()["id"] == uid
    org.delete_user(uid)
    r = api(org, token, f"/api/v1/users/{uid}")
    assert r.status_code == 404 and r.json()["errorCode"] == "E0000007" and "(User)" in r.json()["errorSummary"]


def walk(org, token, url):
    """Follows rel="next" Link headers; returns (items, pages)."""
    items, pages = [], 0
    while url:
        r = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert r.status_code == 200, r.text
        items += r.json()
        pages += 1
        nxt = [l for l in r.headers.get("Link", "").split(", ") if 'rel="next"' in l]
        assert r.raw.headers.getlist("Link")[0].endswith('rel="self"')
        url = nxt[0][1:nxt[0].index(">")] if nxt else None
    return items, pages


def test_group_members_paginate_with_link_headers(org, keys):
    token = get_token(org, keys)
    gid = org.add_group("Connect agents")
    uids = [org.add_user(f"member{i}@example.com", f"M{i}", "Member") for i in range(5)]
    for uid in reversed(uids):          # membership order, not creation order
        org.add_to_group(gid, uid)
    items, pages = walk(org, token, f"{org.org_url}/api/v1/groups/{gid}/users?limit=2")
    assert [u["id"] for u in items] == list(reversed(uids)) and pages == 3
    assert items[0]["profile"]["login"] == "member4@example.com"
    org.remove_from_group(gid, uids[0])
    assert [u["id"] for u in walk(org, token, f"{org.org_url}/api/v1/groups/{gid}/users")[0]] == uids[:0:-1]
    r = api(org, token, f"/api/v1/groups/{gid}/users", after="forged")
    assert r.status_code == 400
    r = api(org, token, "/api/v1/groups/00gNOSUCHGROUP0000000/users")
    assert r.status_code == 404 and "(UserGroup)" in r.json()["errorSummary"]


def test_user_groups_everyone_first(org, keys):
    token = get_token(org, keys)
    uid = org.add_user("grouped@example.com", "G", "U")
    gids = [org.add_group(f"g{i}") for i in range(3)]
    for gid in gids:
        org.add_to_group(gid, uid)
    groups, pages = walk(org, token, f"{org.org_url}/api/v1/users/{uid}/groups?limit=2")
    assert [g["id"] for g in groups] == [EVERYONE_ID, *gids] and pages == 2
    assert groups[0]["type"] == "BUILT_IN" and groups[0]["profile"]["name"] == "Everyone"
    assert groups[1]["type"] == "OKTA_GROUP" and groups[1]["profile"] == {"name": "g0", "description": None}
    assert groups[1]["objectClass"] == ["okta:user_group"]


def test_app_users_expand_and_single(org, keys):
    token = get_token(org, keys)
    app = org.add_app("Amazon Connect")
    a, b = org.add_user("a@example.com", "A", "A"), org.add_user("b@example.com", "B", "B")
    org.assign_app(app, a)
    r = api(org, token, f"/api/v1/apps/{app}/users", expand="user")
    [au] = r.json()
    assert au["id"] == a and au["scope"] == "USER" and au["credentials"] == {"userName": "a@example.com"}
    assert au["_embedded"]["user"] == org.user(a)
    assert au["_links"]["user"]["href"].endswith(f"/api/v1/users/{a}")
    assert "_embedded" not in api(org, token, f"/api/v1/apps/{app}/users").json()[0]
    single = api(org, token, f"/api/v1/apps/{app}/users/{a}")
    assert single.status_code == 200 and single.json()["id"] == a and "_embedded" not in single.json()
    r = api(org, token, f"/api/v1/apps/{app}/users/{b}")
    assert r.status_code == 404 and r.json()["errorCode"] == "E0000007"
    org.unassign_app(app, a)
    assert api(org, token, f"/api/v1/apps/{app}/users/{a}").status_code == 404
    assert "(AppInstance)" in api(org, token, "/api/v1/apps/0oaNOSUCHAPP000000000/users").json()["errorSummary"]


def test_scripted_429_window_marks_early_calls(org, keys):
    token = get_token(org, keys)
    uid = org.add_user("rl@example.com", "R", "L")
    org.script([{"status": 429, "reset_in": 1}])
    r = api(org, token, f"/api/v1/users/{uid}")
    assert r.status_code == 429 and r.json()["errorCode"] == "E0000047"
    assert r.headers["X-Rate-Limit-Remaining"] == "0"
    reset = int(r.headers["X-Rate-Limit-Reset"])
    assert time.time() < reset <= time.time() + 2
    early = api(org, token, f"/api/v1/users/{uid}")
    assert early.status_code == 429 and early.headers["X-Rate-Limit-Reset"] == str(reset)
    assert len(org.early_calls()) == 1 and org.early_calls()[0]["status"] == 429
    time.sleep(max(0.0, reset - time.time()) + 0.05)
    assert api(org, token, f"/api/v1/users/{uid}").status_code == 200
    assert [c["early"] for c in org.api_calls()] == [False, True, False]


def test_path_filtered_faults(org, keys):
    token = get_token(org, keys)
    uid = org.add_user("faults@example.com", "F", "S")
    gid = org.add_group("faults")
    org.script([{"path_contains": "/groups/", "status": 500}])
    assert api(org, token, f"/api/v1/users/{uid}").status_code == 200
    assert org.pending_script() == 1
    r = api(org, token, f"/api/v1/groups/{gid}/users")
    assert r.status_code == 500 and org.pending_script() == 0


def test_abort_and_hang(org, keys):
    token = get_token(org, keys)
    uid = org.add_user("hang@example.com", "H", "G")
    org.script([{"abort": True}, {"hang": 0.5}])
    with pytest.raises(requests.exceptions.ConnectionError):
        api(org, token, f"/api/v1/users/{uid}")
    t = time.monotonic()
    assert api(org, token, f"/api/v1/users/{uid}").status_code == 200
    assert time.monotonic() - t >= 0.5


# ---- Amazon Connect --------------------------------------------------------------------------------
@pytest.fixture()
def connect():
    m = MockConnect(AKID, SECRET, region=REGION, security_profiles={SP, SP2}, routing_profiles={RP, RP2})
    yield m
    m.close()


def cclient(mock, secret=SECRET):
    return boto3.client("connect", endpoint_url=mock.endpoint, region_name=REGION, aws_access_key_id=AKID,
                        aws_secret_access_key=secret,
                        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}))


def create(c, mock, username, **kw):
    args = {"Username": username, "InstanceId": mock.instance_id, "SecurityProfileIds": [SP],
            "RoutingProfileId": RP, "PhoneConfig": {"PhoneType": "SOFT_PHONE"},
            "IdentityInfo": {"FirstName": "First", "LastName": "Last", "Email": f"{username}@example.com"}}
    args.update(kw)
    return c.create_user(**args)


def error_of(excinfo) -> tuple[str, int]:
    resp = excinfo.value.response
    return resp["Error"]["Code"], resp["ResponseMetadata"]["HTTPStatusCode"]


def test_boto3_user_lifecycle_is_accepted(connect):
    c = cclient(connect)
    inst = connect.instance_id
    out = create(c, connect, "alice", Tags={"managed-by": "okta-edge-hooks"})
    uid = out["UserId"]
    assert out["UserArn"] == f"arn:aws:connect:{REGION}:111122223333:instance/{inst}/agent/{uid}"
    create(c, connect, "bob")
    found = c.search_users(InstanceId=inst, SearchCriteria={
        "StringCondition": {"FieldName": "Username", "Value": "alice", "ComparisonType": "EXACT"}})
    assert [u["Id"] for u in found["Users"]] == [uid] and found["ApproximateTotalCount"] == 1
    assert found["Users"][0]["IdentityInfo"] == {"FirstName": "First", "LastName": "Last"}
    tagged = c.search_users(InstanceId=inst, SearchFilter={"TagFilter": {
        "OrConditions": [[{"TagKey": "managed-by", "TagValue": "okta-edge-hooks"}]]}})
    assert [u["Username"] for u in tagged["Users"]] == ["alice"]
    page1 = c.search_users(InstanceId=inst, MaxResults=1)
    page2 = c.search_users(InstanceId=inst, MaxResults=1, NextToken=page1["NextToken"])
    assert [page1["Users"][0]["Username"], page2["Users"][0]["Username"]] == ["alice", "bob"]
    assert page1["ApproximateTotalCount"] == 2 and "NextToken" not in page2

    c.update_user_security_profiles(InstanceId=inst, UserId=uid, SecurityProfileIds=[SP, SP2])
    c.update_user_routing_profile(InstanceId=inst, UserId=uid, RoutingProfileId=RP2)
    c.update_user_identity_info(InstanceId=inst, UserId=uid, IdentityInfo={
        "FirstName": "Alicia", "LastName": "Last", "Mobile": "+14155550123"})
    c.update_user_phone_config(InstanceId=inst, UserId=uid, PhoneConfig={"PhoneType": "DESK_PHONE",
                                                                          "DeskPhoneNumber": "+14155550199"})
    c.tag_resource(resourceArn=out["UserArn"], tags={"okta-user-id": "00u123"})
    c.untag_resource(resourceArn=out["UserArn"], tagKeys=["managed-by"])
    user = c.describe_user(InstanceId=inst, UserId=uid)["User"]
    assert user["SecurityProfileIds"] == [SP, SP2] and user["RoutingProfileId"] == RP2
    assert user["IdentityInfo"] == {"FirstName": "Alicia", "LastName": "Last", "Mobile": "+14155550123"}
    assert user["PhoneConfig"]["PhoneType"] == "DESK_PHONE"
    assert user["Tags"] == {"okta-user-id": "00u123"} and user["LastModifiedRegion"] == REGION
    assert [u["Username"] for u in c.list_users(InstanceId=inst)["UserSummaryList"]] == ["alice", "bob"]
    c.delete_user(InstanceId=inst, UserId=uid)
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.describe_user(InstanceId=inst, UserId=uid)

    assert connect.rejected() == [] and all(r["signature_ok"] and r["model_errors"] == [] for r in connect.requests())
    assert [r["op"] for r in connect.writes()] == [
        "CreateUser", "CreateUser", "UpdateUserSecurityProfiles", "UpdateUserRoutingProfile",
        "UpdateUserIdentityInfo", "UpdateUserPhoneConfig", "TagResource", "UntagResource", "DeleteUser"]
    assert [u["Username"] for u in connect.users()] == ["bob"]


def test_usernames_are_case_sensitive_but_search_is_not(connect):
    c = cclient(connect)
    create(c, connect, "carol")
    with pytest.raises(c.exceptions.DuplicateResourceException) as e:
        create(c, connect, "carol")
    assert error_of(e) == ("DuplicateResourceException", 409)
    create(c, connect, "Carol")
    found = c.search_users(InstanceId=connect.instance_id, SearchCriteria={
        "StringCondition": {"FieldName": "Username", "Value": "CAROL", "ComparisonType": "EXACT"}})
    assert sorted(u["Username"] for u in found["Users"]) == ["Carol", "carol"]
    assert connect.user_by_username("Carol")["Username"] == "Carol" and connect.user_by_username("CAROL") is None
    either = c.search_users(InstanceId=connect.instance_id, SearchCriteria={"OrConditions": [
        {"StringCondition": {"FieldName": "FirstName", "Value": "fir", "ComparisonType": "STARTS_WITH"}},
        {"StringCondition": {"FieldName": "resourceId", "Value": "nope", "ComparisonType": "EXACT"}}]})
    assert either["ApproximateTotalCount"] == 2


def test_profiles_instance_and_tokens_checked(connect):
    c = cclient(connect)
    with pytest.raises(c.exceptions.InvalidParameterException):
        create(c, connect, "dave", SecurityProfileIds=["sp-unknown"])
    with pytest.raises(c.exceptions.InvalidParameterException):
        create(c, connect, "dave", RoutingProfileId="rp-unknown")
    with pytest.raises(c.exceptions.InvalidParameterException):
        create(c, connect, "dave+okta@example.com")
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        create(c, connect, "dave", InstanceId="99999999-2222-3333-4444-555555555555")
    with pytest.raises(c.exceptions.InvalidRequestException):
        c.search_users(InstanceId=connect.instance_id, NextToken="forged")
    connect.add_user("legacy", tags={"owner": "someone-else"})
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.tag_resource(resourceArn=connect.arn("00000000-0000-0000-0000-000000000000"), tags={"a": "b"})
    assert [u["Username"] for u in connect.users()] == ["legacy"]
    assert [r["outcome"] for r in connect.requests()] == ["error"] * 6


def test_wrong_secret_rejected(connect):
    c = cclient(connect, secret=SECRET[:-1] + "X")
    with pytest.raises(c.exceptions.ClientError) as e:
        create(c, connect, "eve")
    assert error_of(e) == ("InvalidSignatureException", 403)
    [rec] = connect.rejected()
    assert rec["signature_error"] == "signature mismatch" and connect.users() == []


def raw(mock, method, path, body: dict | None, content_type="application/json"):
    data = json.dumps(body).encode() if body is not None else b""
    headers = {"Content-Type": content_type} if body is not None else {}
    req = AWSRequest(method=method, url=mock.endpoint + path, data=data, headers=headers)
    SigV4Auth(Credentials(AKID, SECRET), "connect", REGION).add_auth(req)
    return requests.request(method, mock.endpoint + path, data=data, headers=dict(req.headers.items()), timeout=5)


def test_model_violations_rejected(connect):
    c = cclient(connect)
    with pytest.raises(c.exceptions.InvalidParameterException) as e:
        create(c, connect, "frank", SecurityProfileIds=[SP] * 11)
    assert error_of(e)[1] == 400
    assert any("SecurityProfileIds" in err for err in connect.rejected()[-1]["model_errors"])
    base = {"SecurityProfileIds": [SP], "RoutingProfileId": RP}
    path = f"/users/{connect.instance_id}"
    r = raw(connect, "PUT", path, base)
    assert r.status_code == 400 and r.headers["x-amzn-ErrorType"] == "InvalidParameterException"
    assert any("Username" in err for err in connect.rejected()[-1]["model_errors"])
    assert raw(connect, "PUT", path, dict(base, Username="ok", Surprise=1)).status_code == 400
    assert raw(connect, "PUT", path, dict(base, Username="ok", Tags={"aws:x": "y"})).status_code == 400
    assert raw(connect, "PUT", path, dict(base, Username="ok", IdentityInfo={"Mobile": "0123"})).status_code == 400
    r = raw(connect, "PUT", path, dict(base, Username="ok"), content_type="application/x-www-form-urlencoded")
    assert r.status_code == 400 and r.headers["x-amzn-ErrorType"] == "InvalidRequestException"
    r = raw(connect, "GET", "/no-such-operation", None)
    assert r.status_code == 404 and r.headers["x-amzn-ErrorType"] == "UnknownOperationException"
    assert connect.users() == [] and connect.calls() == []
    assert raw(connect, "PUT", path, dict(base, Username="ok")).status_code == 200
    arn = connect.user_by_username("ok")["Arn"]
    assert raw(connect, "POST", "/tags/" + quote(arn, safe=""), {"tags": {"k": "v"}}).status_code == 200
    assert connect.user_by_username("ok")["Tags"] == {"k": "v"}


def test_scripted_faults(connect):
    c = cclient(connect)
    connect.script([{"op": "CreateUser", "type": "ThrottlingException"},
                    {"type": "InternalServiceException"},
                    {"status": 500, "raw": "<html>oops</html>"}])
    with pytest.raises(c.exceptions.InternalServiceException) as e:      # the op-less entry, not CreateUser's
        c.search_users(InstanceId=connect.instance_id)
    assert error_of(e) == ("InternalServiceException", 500)
    with pytest.raises(c.exceptions.ThrottlingException) as e:
        create(c, connect, "grace")
    assert error_of(e) == ("ThrottlingException", 429)
    with pytest.raises(c.exceptions.ClientError) as e:
        create(c, connect, "grace")
    assert error_of(e)[1] == 500
    create(c, connect, "grace")
    assert connect.pending_script() == 0
    assert [r["outcome"] for r in connect.requests()] == ["error", "error", "error", "ok"]
    assert [r["applied"] for r in connect.requests()] == [False, False, False, True]


def test_invalid_requests_do_not_consume_the_script(connect):
    connect.script([{"type": "ThrottlingException"}])
    with pytest.raises(Exception):
        create(cclient(connect, secret="wrong"), connect, "henry")
    assert connect.pending_script() == 1


def test_apply_performs_the_write_and_answers_the_error(connect):
    c = cclient(connect)
    connect.script([{"op": "CreateUser", "type": "InternalServiceException", "apply": True}])
    with pytest.raises(c.exceptions.InternalServiceException):
        create(c, connect, "ivy")
    assert connect.user_by_username("ivy") is not None and connect.calls()[0]["applied"]
    with pytest.raises(c.exceptions.DuplicateResourceException):     # the retry finds the user
        create(c, connect, "ivy")


def test_connect_abort_and_hang(connect):
    c = cclient(connect)
    connect.script([{"op": "DescribeUser", "abort": True}, {"op": "ListUsers", "hang": 0.5}])
    uid = create(c, connect, "jack")["UserId"]
    with pytest.raises(Exception):
        c.describe_user(InstanceId=connect.instance_id, UserId=uid)
    t = time.monotonic()
    assert c.list_users(InstanceId=connect.instance_id)["UserSummaryList"][0]["Id"] == uid
    assert time.monotonic() - t >= 0.5
    assert [r["outcome"] for r in connect.requests()] == ["ok", "aborted", "ok"]
