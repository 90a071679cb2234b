"""Names and usernames end to end, on a Connect stand-in with SAML identity management
(`MockConnect(saml=True)`: FirstName and LastName required and in NFC, `@` only in an e-mail form).

The Worker always sends both names, NFC-normalized, trimmed, without control characters and at
most 100 characters; an Okta user without a first name gets the username's local part, without a
last name "-". A username that Connect (with SAML) or STS (as RoleSessionName) would refuse is
dead-lettered as INVALID_USERNAME at the first attempt and never reaches Connect.

The first tests check the mock's SAML mode itself with boto3 (no Worker)."""
from __future__ import annotations

import unicodedata
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from mocks.connect import MockConnect
from test_provisioning import dead_letters, deliver, event, member, reconcile, unique_login, user_logs, wait_until

AKID = "AKIDCONNECTNAMESTEST"
SECRET = "connect/names/secret/0123456789abcdef"
REGION = "us-east-1"


# ---- the mock's SAML mode ------------------------------------------------------------------------
@pytest.fixture()
def saml_connect():
    m = MockConnect(AKID, SECRET, region=REGION, security_profiles={"sp-agent"}, routing_profiles={"rp-basic"},
                    saml=True)
    yield m
    m.close()


def _client(mock):
    return boto3.client("connect", endpoint_url=mock.endpoint, region_name=REGION, aws_access_key_id=AKID,
                        aws_secret_access_key=SECRET, config=Config(retries={"total_max_attempts": 1, "mode": "standard"}))


def _create(c, mock, username, identity):
    return c.create_user(Username=username, InstanceId=mock.instance_id, SecurityProfileIds=["sp-agent"],
                         RoutingProfileId="rp-basic", PhoneConfig={"PhoneType": "SOFT_PHONE"}, IdentityInfo=identity)


def _refused(fn) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as e:
        fn()
    r = e.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"], r["Error"].get("Message", "")


def test_mock_saml_mode_requires_nfc_first_and_last_names(saml_connect):
    m, c = saml_connect, _client(saml_connect)
    for identity, needle in [({}, "FirstName"), ({"FirstName": "Ana"}, "LastName"),
                             ({"LastName": "García"}, "FirstName"), ({"FirstName": "", "LastName": "x"}, "FirstName"),
                             ({"FirstName": "Zoe\u0308", "LastName": "Smith"}, "Normalization Form C"),
                             ({"FirstName": "Ana", "LastName": "Garci\u0301a"}, "Normalization Form C"),
                             ({"FirstName": "Ana", "LastName": "García", "Email": "ana@example.com"}, "Email")]:
        code, status, msg = _refused(lambda: _create(c, m, "ana@example.com", identity))
        assert (code, status) == ("InvalidRequestException", 400) and needle in msg, (identity, msg)
    assert not m.users(), "nothing stored"
    uid = _create(c, m, "ana@example.com", {"FirstName": "Zoë", "LastName": "García"})["UserId"]
    code, status, _ = _refused(lambda: c.update_user_identity_info(
        InstanceId=m.instance_id, UserId=uid, IdentityInfo={"FirstName": "Zoe\u0308", "LastName": "García"}))
    assert (code, status) == ("InvalidRequestException", 400)
    code, _, _ = _refused(lambda: c.update_user_identity_info(
        InstanceId=m.instance_id, UserId=uid, IdentityInfo={"FirstName": "Zoë"}))
    assert code == "InvalidRequestException"
    c.update_user_identity_info(InstanceId=m.instance_id, UserId=uid, IdentityInfo={"FirstName": "Zoé", "LastName": "-"})
    assert m.user_by_username("ana@example.com")["IdentityInfo"] == {"FirstName": "Zoé", "LastName": "-"}


def test_mock_saml_mode_allows_at_only_in_an_email_form(saml_connect):
    m, c = saml_connect, _client(saml_connect)
    names = {"FirstName": "A", "LastName": "B"}
    for bad in ["testuser@example", "two@@example.com", "a@b@example.com", "@example.com", "ana@.com"]:
        code, status, _ = _refused(lambda: _create(c, m, bad, names))
        assert (code, status) == ("InvalidRequestException", 400), bad
    code, _, _ = _refused(lambda: _create(c, m, "dave+x@example.com", names))
    assert code == "InvalidParameterException", "outside [a-zA-Z0-9_-.@], as in the default mode"
    for good in ["testuser", "testuser@example.com", "a.b-c_d@mail.example.co.uk"]:
        _create(c, m, good, names)
    assert sorted(u["Username"] for u in m.users()) == ["a.b-c_d@mail.example.co.uk", "testuser",
                                                         "testuser@example.com"]


def test_mock_default_mode_is_unchanged():
    m = MockConnect(AKID, SECRET, region=REGION, security_profiles={"sp-agent"}, routing_profiles={"rp-basic"})
    try:
        c = _client(m)
        _create(c, m, "testuser@example", {})
        _create(c, m, "zoe@example.com", {"FirstName": "Zoe\u0308"})
        assert len(m.users()) == 2 and not m.rejected()
    finally:
        m.close()


# ---- the Worker on a SAML instance ---------------------------------------------------------------
@pytest.fixture(scope="module")
def saml(worker_factory, mocks):
    p = mocks.prov("prov-names-saml")
    p.connect.saml = True
    w = worker_factory.get("prov-names-saml", p.vars())
    return w, p


@pytest.fixture
def names(saml):
    w, p = saml
    p.connect.reset()
    return w, p


def _created(w, p, login: str) -> dict:
    return wait_until(lambda: p.connect.user_by_username(login), what=f"{login} in Connect")


def _identity(w, p, uid: str, login: str) -> dict:
    deliver(w, [event("group.user_membership.add", uid, login, group=p.group)])
    return _created(w, p, login)["IdentityInfo"]


@pytest.mark.parametrize("first,last,expect", [
    (None, "García", ("{local}", "García")),
    ("Ana", None, ("Ana", "-")),
    (None, None, ("{local}", "-")),
    ("", "   ", ("{local}", "-")),
    ("\t\u0007", "\n", ("{local}", "-")),
])
def test_missing_names_get_the_documented_fallbacks(names, first, last, expect):
    w, p = names
    login = unique_login("noname")
    uid = member(p, login, first=first, last=last)
    local = login.split("@")[0]
    got = _identity(w, p, uid, login)
    assert (got["FirstName"], got["LastName"]) == tuple(e.format(local=local) for e in expect), got
    assert not p.connect.rejected() and not [r for r in p.connect.requests() if r["outcome"] == "error"]


def test_decomposed_names_are_sent_composed(names):
    w, p = names
    login = unique_login("zoe")
    uid = member(p, login, first="  Zoe\u0308\tAnn ", last="Mu\u0308ller-\u1100\u1161\u11a8")
    got = _identity(w, p, uid, login)
    assert got == {"FirstName": "Zo\u00eb Ann", "LastName": "M\u00fcller-\uac01"}
    assert all(unicodedata.is_normalized("NFC", v) for v in got.values())
    create = p.connect.calls("CreateUser")[-1]["params"]
    assert create["IdentityInfo"] == got and "Email" not in create["IdentityInfo"]


def test_long_names_are_cut_to_100_characters_composed(names):
    w, p = names
    login = unique_login("long")
    uid = member(p, login, first="e\u0308" * 150, last="\u5c71" * 101)
    got = _identity(w, p, uid, login)
    assert got == {"FirstName": "\u00eb" * 100, "LastName": "\u5c71" * 100}


def test_a_name_removed_or_decomposed_in_okta_is_updated_as_connect_takes_it(names):
    w, p = names
    login = unique_login("update")
    uid = member(p, login, first="Ana", last="García")
    assert _identity(w, p, uid, login) == {"FirstName": "Ana", "LastName": "García"}
    p.org.update_profile(uid, firstName="Jose\u0301", lastName=None)
    deliver(w, [event("user.account.update_profile", uid, login)])
    wait_until(lambda: p.connect.user_by_username(login)["IdentityInfo"] == {"FirstName": "Jos\u00e9", "LastName": "-"},
               what="the names updated")
    assert p.connect.calls("UpdateUserIdentityInfo")
    assert not [r for r in p.connect.requests() if r["outcome"] in ("error", "rejected")]


@pytest.mark.parametrize("login,needle", [
    ("two@@{tag}.example.com", "`@`"),
    ("a@{tag}@example.com", "`@`"),
    ("{tag}@example", "e-mail form"),
    ("@{tag}.example.com", "e-mail form"),
    ("bad!{tag}@example.com", "'!'"),
    ("dave+{tag}@example.com", "'+'"),
    ("zoë.{tag}@example.com", "'ë'"),
    ("{short}", "2 to 64"),
    ("{tag}" + "x" * 60 + "@example.com", "2 to 64"),
])
def test_a_username_connect_or_sts_would_refuse_is_dead_lettered_and_never_sent(names, login, needle):
    w, p = names
    tag = uuid.uuid4().hex[:8]
    login = login.format(tag=tag, short=tag[0])
    uid = member(p, login, first="Ana", last="García")
    good_login = unique_login("good")
    good = member(p, good_login)
    deliver(w, [event("group.user_membership.add", uid, login, group=p.group),
                event("group.user_membership.add", good, good_login, group=p.group)])
    letter = wait_until(lambda: dead_letters(w, uid), what="the unprovisionable user dead-lettered")[0]
    assert letter["reason"] == "INVALID_USERNAME" and letter["attempts"] == 1, letter
    assert "RoleSessionName" in letter["error"] and needle in letter["error"], letter["error"]
    line = next(l for l in user_logs(w, uid) if l.get("outcome") == "dead-letter")
    assert line["reason"] == "INVALID_USERNAME" and line["level"] == "error"
    _created(w, p, good_login)
    assert not [r for r in p.connect.requests() if (r["params"] or {}).get("Username") == login], \
        "never sent to Connect"


def test_the_reconciliation_skips_invalid_usernames_and_names_everyone_else(names):
    w, p = names
    bad_login = "two@@" + uuid.uuid4().hex[:8] + ".example.com"
    bad = member(p, bad_login)
    ok_login = unique_login("recon")
    member(p, ok_login, first=None, last="O\u0301")
    rep = reconcile(w).json()
    assert rep["applied"]["unprovisionable"] >= 1 or rep["planned"]["unprovisionable"] >= 1, rep
    skipped = [c for c in rep["changes"] if c.get("oktaUserId") == bad or c.get("username") == bad_login]
    assert skipped and "INVALID_USERNAME" in skipped[0]["reason"], skipped
    assert p.connect.user_by_username(ok_login)["IdentityInfo"] == {"FirstName": ok_login.split("@")[0],
                                                                    "LastName": "\u00d3"}
    assert not [r for r in p.connect.requests() if (r["params"] or {}).get("Username") == bad_login]
