"""Provisioning end to end: Okta event hook → Cloudflare Queue (Miniflare) → the Worker's consumer →
the local Okta org (token endpoint verifying the client assertion, Users/Groups/Apps API) → the local
Connect (SigV4 and bodies checked against botocore's `connect` model).

Okta's state decides: the tests change the org, deliver events, then wait for Connect to converge."""
from __future__ import annotations

import copy
import json
import time
import uuid

import pytest
import requests

from conftest import ADMIN_SECRET, CONNECT_APP_ID, CONNECT_GROUP_ID, EVENT_HOOK_SECRET
from helpers import fixture

WAIT_S = 25


def wait_until(pred, timeout: float = WAIT_S, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def deliver(w, events: list[dict], event_id: str | None = None) -> requests.Response:
    body = {"eventType": "com.okta.event_hook", "eventTypeVersion": "1.0", "cloudEventsVersion": "0.1",
            "source": "https://example.okta.com/api/v1/eventHooks/whoXXX", "eventId": event_id or str(uuid.uuid4()),
            "eventTime": "2026-11-21T10:00:00.000Z", "contentType": "application/json", "data": {"events": events}}
    r = w.request("POST", "/okta/events", data=json.dumps(body).encode(),
                  headers={"Content-Type": "application/json", "Authorization": EVENT_HOOK_SECRET})
    assert r.status_code == 200, r.text
    return r


def event(event_type: str, uid: str, login: str, *, group: str | None = None, app: str | None = None,
          result: str = "SUCCESS") -> dict:
    targets = [{"id": uid, "type": "User", "alternateId": login, "displayName": "Test User"}]
    if group:
        targets.append({"id": group, "type": "UserGroup", "alternateId": "unknown", "displayName": "agents"})
    if app:
        targets.insert(0, {"id": "0ua" + uid[3:], "type": "AppUser", "alternateId": login})
        targets.insert(1, {"id": app, "type": "AppInstance", "alternateId": "Amazon Connect"})
    return {"uuid": str(uuid.uuid4()), "published": "2026-11-21T10:00:00.000Z", "eventType": event_type,
            "version": "0", "severity": "INFO", "displayMessage": "x", "outcome": {"result": result, "reason": None},
            "actor": {"id": "00uADMIN", "type": "User", "alternateId": "admin@example.com"}, "target": targets}


def parse_line(line: str) -> dict:
    """The JSON object of a log line (wrangler may prefix and suffix it)."""
    return json.JSONDecoder().raw_decode(line[line.index("{"):])[0]


def user_logs(w, uid: str) -> list[dict]:
    return [parse_line(l) for l in w.log_lines() if '"msg":"provisioning"' in l and uid in l]


def dead_letters(w, uid: str) -> list[dict]:
    return [parse_line(l)["deadLetter"] for l in w.log_lines() if "provisioning dead letter" in l and uid in l]


def unique_login(tag: str) -> str:
    return f"{tag}.{uuid.uuid4().hex[:8]}@example.com"


@pytest.fixture
def prov(provisioning):
    w, p = provisioning
    p.org.reset()
    p.connect.reset()
    return w, p


def member(p, login: str, *, group: str | None = None, status: str = "ACTIVE", first="Test", last="User") -> str:
    uid = p.org.add_user(login, first, last, status=status)
    p.org.add_to_group(group or p.group, uid)
    return uid


# ---- the fixtures, end to end ---------------------------------------------------------------------
def test_each_fixture_converges_connect_to_okta(prov):
    w, p = prov
    ana, jordan, sam = "00u1a2b3c4d5e6f7g8h9", "00u9z8y7x6w5v4u3t2s1", "00u5k6l7m8n9o0p1q2r3"
    p.org.add_user("ana.garcia@example.com", "Ana", "García", id=ana)
    p.org.assign_app(CONNECT_APP_ID, ana)
    p.org.add_user("jordan.lee@example.com", "Jordan", "Lee", id=jordan)
    p.org.add_to_group(CONNECT_GROUP_ID, jordan)
    p.org.add_user("sam.taylor@example.com", "Sam", "Taylor", id=sam)

    for name in ("event-hook-app-membership-add.json", "event-hook-group-membership-add.json"):
        body = fixture(name)
        r = w.request("POST", "/okta/events", data=json.dumps(body).encode(),
                      headers={"Content-Type": "application/json", "Authorization": EVENT_HOOK_SECRET})
        assert r.status_code == 200
    ana_c = wait_until(lambda: p.connect.user_by_username("ana.garcia@example.com"), what="ana in Connect")
    jordan_c = wait_until(lambda: p.connect.user_by_username("jordan.lee@example.com"), what="jordan in Connect")
    # App assignment only: the default profiles. The Connect group: its routing profile.
    assert (sorted(ana_c["SecurityProfileIds"]), ana_c["RoutingProfileId"]) == (["sp-agent"], "rp-basic")
    assert (sorted(jordan_c["SecurityProfileIds"]), jordan_c["RoutingProfileId"]) == (["sp-agent"], "rp-sales")
    assert ana_c["IdentityInfo"] == {"FirstName": "Ana", "LastName": "García"}
    assert ana_c["PhoneConfig"]["PhoneType"] == "SOFT_PHONE"
    assert ana_c["Tags"] == {"managedBy": "okta-edge-hooks", "oktaUserId": ana}

    # Okta changes, then the mixed batch arrives: sam joins, jordan leaves, ana is deactivated.
    p.org.add_to_group(CONNECT_GROUP_ID, sam)
    p.org.remove_from_group(CONNECT_GROUP_ID, jordan)
    p.org.set_status(ana, "DEPROVISIONED")
    body = fixture("event-hook-batch-mixed.json")
    r = w.request("POST", "/okta/events", data=json.dumps(body).encode(),
                  headers={"Content-Type": "application/json", "Authorization": EVENT_HOOK_SECRET})
    assert r.status_code == 200
    wait_until(lambda: p.connect.user_by_username("sam.taylor@example.com"), what="sam created")
    wait_until(lambda: not p.connect.user_by_username("jordan.lee@example.com"), what="jordan deleted")
    wait_until(lambda: not p.connect.user_by_username("ana.garcia@example.com"), what="ana deleted")
    assert not p.connect.rejected(), p.connect.rejected()
    # Every Okta call carried a token obtained with a verified client assertion.
    assert p.org.token_requests() and all(t["status"] == 200 for t in p.org.token_requests())
    assert all(c["auth_ok"] for c in p.org.api_calls())


def test_token_is_reused_across_batches(prov):
    w, p = prov
    logins = [unique_login("reuse") for _ in range(3)]
    for login in logins:
        uid = member(p, login)
        deliver(w, [event("group.user_membership.add", uid, login, group=p.group)])
        wait_until(lambda login=login: p.connect.user_by_username(login), what=login)
    assert len(p.org.token_requests()) <= 1, "one token per isolate until shortly before it expires"


def test_duplicate_delivery_makes_one_user(prov):
    w, p = prov
    login = unique_login("dup")
    uid = member(p, login)
    e = event("group.user_membership.add", uid, login, group=p.group)
    deliver(w, [e, copy.deepcopy(e)])
    deliver(w, [copy.deepcopy(e)])               # Okta's retry of the same event
    e2 = event("group.user_membership.add", uid, login, group=p.group)
    deliver(w, [e2])                             # a second event for the same state
    # The hook drops the copies; the two distinct events may share a batch (one convergence) or not.
    wait_until(lambda: sum(len(l["events"]) for l in user_logs(w, uid) if l["outcome"] == "ack") >= 2,
               what="both distinct events handled")
    time.sleep(1.5)  # a copy slipping through would be handled by now
    assert sum(len(l["events"]) for l in user_logs(w, uid)) == 2
    assert [u["Username"] for u in p.connect.users()].count(login) == 1
    creates = [c for c in p.connect.calls("CreateUser") if c["params"]["Username"] == login]
    assert len(creates) == 1


def test_add_and_remove_out_of_order_converge_to_oktas_state(prov):
    w, p = prov
    login = unique_login("order")
    uid = p.org.add_user(login, "Out", "Oforder")
    add = event("group.user_membership.add", uid, login, group=p.group)
    remove = event("group.user_membership.remove", uid, login, group=p.group)
    # Okta: added then removed. The remove arrives first, the add last.
    deliver(w, [remove])
    deliver(w, [add])
    wait_until(lambda: sum(len(l["events"]) for l in user_logs(w, uid)) >= 2, what="both events handled")
    assert p.connect.user_by_username(login) is None
    assert {l["action"] for l in user_logs(w, uid)} == {"absent"}
    # Now Okta says member: the stale remove, delivered again, still creates the user.
    p.org.add_to_group(p.group, uid)
    deliver(w, [event("group.user_membership.remove", uid, login, group=p.group)])
    wait_until(lambda: p.connect.user_by_username(login), what="created from Okta's state")


def test_a_batch_mixing_relevant_and_irrelevant_events(prov):
    w, p = prov
    login = unique_login("mixed")
    uid = member(p, login)
    other = event("user.session.start", uid, login)
    failed = event("group.user_membership.add", uid, login, group=p.group, result="FAILURE")
    foreign = event("group.user_membership.add", uid, login, group="00gNOTCONNECT000000x")
    relevant = event("group.user_membership.add", uid, login, group=p.group)
    eid = str(uuid.uuid4())
    deliver(w, [other, failed, foreign, relevant], event_id=eid)
    line = [l for l in w.wait_for_log(eid) if '"msg":"okta event hook"' in l][0]
    hook = json.loads(line[line.index("{"):])
    assert (hook["received"], hook["relevant"], hook["enqueued"]) == (4, 1, 1)
    wait_until(lambda: p.connect.user_by_username(login), what="created")


def test_profile_changes_update_the_connect_user(prov):
    w, p = prov
    login = unique_login("drift")
    uid = member(p, login, first="Before")
    deliver(w, [event("group.user_membership.add", uid, login, group=p.group)])
    wait_until(lambda: p.connect.user_by_username(login), what="created")
    p.org.add_to_group(p.supervisors, uid)
    p.org.update_profile(uid, firstName="After")
    deliver(w, [event("group.user_membership.add", uid, login, group=p.supervisors)])
    u = wait_until(lambda: (u := p.connect.user_by_username(login)) and u["RoutingProfileId"] == "rp-escalations" and u,
                   what="updated")
    assert sorted(u["SecurityProfileIds"]) == ["sp-agent", "sp-supervisor"]
    assert u["IdentityInfo"]["FirstName"] == "After"
    ops = {c["op"] for c in p.connect.writes() if c["params"].get("UserId") == u["Id"]}
    assert ops == {"UpdateUserSecurityProfiles", "UpdateUserRoutingProfile", "UpdateUserIdentityInfo"}


def test_users_we_did_not_create_are_never_touched(prov):
    w, p = prov
    login = unique_login("legacy")
    uid = member(p, login)
    cid = p.connect.add_user(login, tags={"owner": "someone-else"}, security_profile_ids=["sp-quality"],
                             routing_profile_id="rp-basic")
    deliver(w, [event("group.user_membership.add", uid, login, group=p.group)])
    wait_until(lambda: user_logs(w, uid), what="handled")
    assert user_logs(w, uid)[-1]["action"] == "conflict"
    p.org.remove_from_group(p.group, uid)
    deliver(w, [event("group.user_membership.remove", uid, login, group=p.group)])
    wait_until(lambda: sum(len(l["events"]) for l in user_logs(w, uid)) >= 2, what="removal handled")
    assert not [c for c in p.connect.writes() if c["params"].get("UserId") == cid or c["params"].get("Username") == login]
    assert p.connect.user_by_username(login)["SecurityProfileIds"] == ["sp-quality"]


@pytest.mark.parametrize("fault", [
    {"op": "CreateUser", "type": "ThrottlingException"},
    {"op": "CreateUser", "type": "InternalServiceException"},
    {"op": "CreateUser", "type": "DuplicateResourceException", "apply": True},   # created, answer lost as 409
    {"op": "CreateUser", "type": "InternalServiceException", "apply": True},     # created, answer lost as 500
], ids=["429", "500", "409-after-create", "500-after-create"])
def test_connect_faults_end_with_exactly_one_user(prov, fault):
    w, p = prov
    login = unique_login("fault")
    uid = member(p, login)
    p.connect.script([fault])
    deliver(w, [event("group.user_membership.add", uid, login, group=p.group)])
    wait_until(lambda: any(l["outcome"] == "ack" for l in user_logs(w, uid)), what="converged")
    assert [u["Username"] for u in p.connect.users()].count(login) == 1
    assert p.connect.pending_script() == 0
    assert user_logs(w, uid)[-1]["action"] in ("created", "unchanged")


def test_okta_rate_limit_is_honoured(prov):
    w, p = prov
    login = unique_login("ratelimit")
    uid = member(p, login)
    p.org.script([{"status": 429, "reset_in": 2}])
    t0 = time.time()
    deliver(w, [event("group.user_membership.add", uid, login, group=p.group)])
    wait_until(lambda: p.connect.user_by_username(login), what="created after the reset")
    assert not p.org.early_calls(), "no call before X-Rate-Limit-Reset"
    assert time.time() - t0 >= 1.0


def test_poison_goes_to_the_dead_letter_queue_and_others_proceed(prov):
    w, p = prov
    bad_login = "dave+okta." + uuid.uuid4().hex[:6] + "@example.com"      # Connect refuses '+' with SAML
    bad = member(p, bad_login)
    broken_login = unique_login("broken")
    broken = member(p, broken_login)
    good_login = unique_login("good")
    good = member(p, good_login)
    # Connect keeps failing for `broken`: retried with backoff, then dead-lettered after 3 attempts.
    failing = {"op": "CreateUser", "type": "InternalServiceException"}
    p.connect.script([failing] * 12)
    deliver(w, [event("group.user_membership.add", u, l, group=p.group)
                for u, l in ((bad, bad_login), (broken, broken_login))])
    letter = wait_until(lambda: dead_letters(w, bad), what="the unprovisionable user dead-lettered")[0]
    assert letter["reason"] == "INVALID_USERNAME" and letter["attempts"] == 1
    assert letter["message"]["userId"] == bad
    # Meanwhile another user goes through (after the scripted failures are used up or interleaved).
    letter = wait_until(lambda: dead_letters(w, broken), timeout=40,
                        what="the failing user dead-lettered after its attempts")[0]
    assert letter["reason"] == "CONNECT_UNAVAILABLE" and letter["attempts"] == 3
    retries = [l for l in user_logs(w, broken) if l["outcome"] == "retry"]
    assert len(retries) == 2 and all(l["retryInS"] >= 1 for l in retries)
    deliver(w, [event("group.user_membership.add", good, good_login, group=p.group)])
    wait_until(lambda: p.connect.user_by_username(good_login), what="others proceed")
    errors = [l for l in user_logs(w, broken) if l["outcome"] == "dead-letter"]
    assert errors and errors[0]["level"] == "error" and errors[0]["reason"] == "CONNECT_UNAVAILABLE"


# ---- reconciliation -------------------------------------------------------------------------------
class Finished:
    """A reconciliation run that ended, read back from `GET /admin/provisioning/status`: `json()` is
    its report, `status_code` 200 when it is ok and 502 when it is not (the answer a synchronous run
    used to give), `started` the 202's status document."""

    def __init__(self, report: dict, started: dict):
        self._report, self.started = report, started
        self.status_code = 200 if report["ok"] else 502
        self.text = json.dumps(report)

    def json(self) -> dict:
        return self._report


def start_reconcile(w, dry_run: bool = False, token: str = ADMIN_SECRET) -> requests.Response:
    path = "/admin/provisioning/reconcile" + ("?dryRun=true" if dry_run else "")
    return w.request("POST", path, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def reconcile_status(w, token: str = ADMIN_SECRET) -> dict:
    r = w.request("GET", "/admin/provisioning/status", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def wait_for_run(w, run_id: str, timeout: float = 120) -> dict:
    """The report of run `run_id`, once it has ended."""
    def ended():
        s = reconcile_status(w)
        return s["last"] if s["state"] == "idle" and (s.get("last") or {}).get("id") == run_id else None
    return wait_until(ended, timeout=timeout, what=f"reconciliation {run_id} to end")


def reconcile(w, dry_run: bool = False, token: str = ADMIN_SECRET, timeout: float = 120):
    """Starts a run (202) and waits for its end (`Finished`); any other answer is returned as is."""
    r = start_reconcile(w, dry_run, token)
    if r.status_code != 202:
        return r
    started = r.json()
    assert started["state"] == "running" and started["run"]["dryRun"] is dry_run, started
    return Finished(wait_for_run(w, started["run"]["id"], timeout), started)


def test_reconciliation_dry_run_then_apply(reconciling):
    w, p = reconciling
    p.org.reset()
    p.connect.reset()
    # Okta: three agents, one supervisor, one suspended member, one app-only user.
    agents = [member(p, f"agent{i}@example.com") for i in range(3)]
    member(p, "sup@example.com", group=p.supervisors)
    suspended = member(p, "gone@example.com", status="SUSPENDED")
    app_only = p.org.add_user("apponly@example.com", "App", "Only")
    p.org.assign_app(p.app, app_only)
    tags = lambda uid: {"managedBy": "okta-edge-hooks", "oktaUserId": uid}
    # Connect: agent0 in sync, agent1 drifted, the suspended user, an orphan, and an unmanaged user.
    p.connect.add_user("agent0@example.com", tags=tags(agents[0]), security_profile_ids=["sp-agent"],
                       routing_profile_id="rp-sales", first_name="Test", last_name="User")
    p.connect.add_user("agent1@example.com", tags=tags(agents[1]), security_profile_ids=["sp-quality"],
                       routing_profile_id="rp-sales", first_name="Test", last_name="User")
    p.connect.add_user("gone@example.com", tags=tags(suspended), security_profile_ids=["sp-agent"],
                       routing_profile_id="rp-sales")
    p.connect.add_user("orphan@example.com", tags=tags("00uORPHAN0000000000x"), security_profile_ids=["sp-agent"],
                       routing_profile_id="rp-basic")
    p.connect.add_user("admin", tags={}, security_profile_ids=["sp-supervisor"], routing_profile_id="rp-basic")
    before = p.connect.users()

    r = reconcile(w, dry_run=True)
    assert r.status_code == 200, r.text
    rep = r.json()
    assert rep["dryRun"] is True and rep["ok"] is True
    assert rep["planned"] == {"create": 3, "update": 1, "delete": 2, "adopt": 0, "unchanged": 1, "conflict": 0,
                              "unprovisionable": 0}
    assert rep["applied"] == {"create": 0, "update": 0, "delete": 0, "adopt": 0, "unchanged": 0, "conflict": 0,
                              "unprovisionable": 0}
    assert (rep["okta"]["users"], rep["connect"]["users"]) == (5, 4)
    assert p.connect.users() == before, "a dry run changes nothing"
    assert not p.connect.writes()
    planned = {(c["action"], c["username"]) for c in rep["changes"]}
    assert planned == {("create", "agent2@example.com"), ("create", "sup@example.com"),
                       ("create", "apponly@example.com"), ("update", "agent1@example.com"),
                       ("delete", "gone@example.com"), ("delete", "orphan@example.com")}

    r = reconcile(w)
    assert r.status_code == 200, r.text
    rep = r.json()
    assert rep["applied"]["create"] == 3 and rep["applied"]["update"] == 1 and rep["applied"]["delete"] == 2
    names = sorted(u["Username"] for u in p.connect.users())
    assert names == ["admin", "agent0@example.com", "agent1@example.com", "agent2@example.com",
                     "apponly@example.com", "sup@example.com"]
    s = p.connect.user_by_username("sup@example.com")
    assert (sorted(s["SecurityProfileIds"]), s["RoutingProfileId"]) == (["sp-agent", "sp-supervisor"], "rp-escalations")
    assert p.connect.user_by_username("agent1@example.com")["SecurityProfileIds"] == ["sp-agent"]
    assert p.connect.user_by_username("admin")["SecurityProfileIds"] == ["sp-supervisor"], "unmanaged: untouched"
    assert not p.connect.rejected()
    # Idempotent: a second run plans nothing.
    rep = reconcile(w, dry_run=True).json()
    assert rep["planned"]["unchanged"] == 5 and rep["planned"]["create"] == rep["planned"]["update"] == rep["planned"]["delete"] == 0
    lines = [l for l in w.log_lines() if '"msg":"provisioning-reconcile"' in l]
    assert lines and "agent" not in "".join(lines), "the log line carries counts, not usernames"


def test_reconciliation_needs_the_admin_secret(reconciling):
    w, _ = reconciling
    r = reconcile(w, token="wrong-" + ADMIN_SECRET)
    assert r.status_code == 401
    r = w.request("POST", "/admin/provisioning/reconcile")
    assert r.status_code == 401
    assert w.request("GET", "/admin/provisioning/reconcile", headers={"Authorization": f"Bearer {ADMIN_SECRET}"}).status_code == 405


def test_reconciliation_aborts_when_okta_listing_fails(reconciling):
    w, p = reconciling
    p.org.reset()
    p.connect.reset()
    # Refused (the service app lost okta.groups.read): not worth retrying, so the run ends at once.
    # (A 5xx is retried across alarms with backoff first; the native tests cover that.)
    p.org.script([{"path_contains": "/groups/", "status": 403}] * 3)
    r = reconcile(w)
    assert r.status_code == 502
    assert "listing Okta failed" in r.json()["error"]
    assert not p.connect.writes()


def test_cron_runs_the_reconciliation(reconciling):
    w, p = reconciling
    p.org.reset()
    uid = member(p, "cron.user@example.com")
    r = w.request("GET", "/cdn-cgi/handler/scheduled", params={"cron": "17 3 * * *"})
    assert r.status_code == 200
    wait_until(lambda: p.connect.user_by_username("cron.user@example.com"), what="the cron reconciliation")
    lines = wait_until(lambda: [parse_line(l) for l in w.log_lines() if '"trigger":"cron"' in l],
                       what="the run's log line")
    assert lines[-1]["msg"] == "provisioning-reconcile" and lines[-1]["applied"]["create"] >= 1
    assert p.connect.user_by_username("cron.user@example.com")["Tags"]["oktaUserId"] == uid
